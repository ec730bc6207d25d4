"""README.md stays true: its Python example runs as written, its loss table lists every
registered loss, and its two set-up commands are the ones .ci/run executes."""
from __future__ import annotations

import re
from pathlib import Path

from cvloss.losses import list_losses

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_example_runs_as_written():
    example = _blocks("python")[0]  # the losses in your own code; "From Python" runs in tests/test_api.py
    exec(compile(example, "README.md", "exec"), {})


def test_loss_table_lists_every_registered_loss():
    section = README.split("\n## Losses\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M))
    assert listed == {i.name for i in list_losses()}


def test_setup_commands_are_what_ci_runs():
    section = README.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    cpu_only, setup = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:2]
    install, test = setup.strip().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci and test in ci
    # the CPU-only command comes first, pins the pair pyproject admits, and is not run by CI
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu_only and cpu_only.strip() not in "\n".join(ci)
    assert README.index(cpu_only) < README.index(setup)

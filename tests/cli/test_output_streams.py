"""Streams of a real command, run as a subprocess with stdout and stderr kept apart:
stdout carries only the table and the results path; progress and the random-weights
warning go to stderr, the warning once; ``--quiet`` leaves stderr empty.

The subprocess is offline by construction: cvloss's check that the weights' server
answers says it does not, and torch hub's downloader, were it reached anyway, prints its
notice on stdout (as the real one does) and fails.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

OFFLINE_CLI = """
import sys, urllib.error
import torch.hub
import cvloss.losses.features as features

def offline(url, *args, **kwargs):
    print(f'Downloading: "{url}" to /nowhere/{url.rsplit("/", 1)[-1]}')  # torch.hub writes this on stdout
    raise urllib.error.URLError("offline (simulated by the test)")

torch.hub.download_url_to_file = offline
features._unreachable = lambda url, timeout: "offline (simulated by the test)"
from cvloss.cli import main
sys.argv = ["cvloss", *sys.argv[1:]]
main()
"""

ARGS = ["compare", "--task", "sr", "--losses", "l1,l1+0.01*perceptual", "--seeds", "1", "--threads", "1",
        "--set", "epochs=1", "--set", "repeat=1", "--set", "hr_size=32", "--set", "patch=16"]


def _run(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "torch"), OMP_NUM_THREADS="1")
    env.pop("CVLOSS_RESULTS", None)
    return subprocess.run([sys.executable, "-c", OFFLINE_CLI, *ARGS, "--out", str(tmp_path / "out"), *extra],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


@pytest.mark.parametrize("quiet", [False, True], ids=["verbose", "quiet"])
def test_stdout_is_tables_and_paths_and_each_warning_prints_once(tmp_path, quiet):
    proc = _run(tmp_path, *(["--quiet"] if quiet else []))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    head, legend = out.index(next(line for line in out if line.startswith("loss "))), out.index(
        next(line for line in out if line.startswith("Legend: ")))
    title = " ".join(line.strip() for line in out[:head])  # wrapped to 120 characters in a pipe
    assert title.startswith("sr / skimage-photos") and "features: random(seed=0)" in title
    assert out[-1].startswith("results: ") and out[-1].endswith("compare--l1--l1+0.01xperceptual")
    verdict = [line for line in out if line.startswith(("Primary metric", "Smallest difference"))]
    assert len(verdict) == 2  # what the table allows one to conclude, under it
    assert "no paired test is possible with one seed" in verdict[0]  # --seeds 1: no test, not "none differs"
    table = [line for line in out[head:legend] if line and not line.startswith(("loss ", "---"))]
    # "(untrained model)": split on spaces
    assert {line.split()[0] for line in table} == {"l1", "l1+0.01*perceptual", "(bicubic)", "(untrained"}
    assert all(len(line) <= 120 for line in out[:-1])
    assert "Downloading" not in proc.stdout and "warning" not in proc.stdout.lower()
    if quiet:  # nothing but the outcome line of failed trials (1 step of sr may end below bicubic: degenerate)
        assert all(line.startswith("failures: ") for line in proc.stderr.splitlines()), proc.stderr
    else:
        assert "Downloading" not in proc.stderr  # offline: the downloader is never called
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
        assert len(warnings) == 1 and "RANDOM vgg16 features" in warnings[0], proc.stderr
        assert "RandomFeaturesWarning" not in proc.stderr  # one line, not Python's two-line format

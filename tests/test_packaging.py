"""A real, non-editable install works: the wheel carries the dataset catalog, and the
installed ``cvloss`` lists datasets and runs a smoke comparison from outside the source
tree, writing into ./cvloss-results (never into a tracked folder).

The wheel is built from a copy of the tracked sources (so the checkout gets no build/ or
egg-info), installed with ``--no-deps`` into a plain venv whose one ``.pth`` file names the
site-packages folders of the interpreter running pytest (torch and the rest come from
there instead of being fetched again). ``--system-site-packages`` would not do: from
inside a venv it exposes the *base* interpreter, which lacks torch when the suite runs in
a plain ``python -m venv`` as users (and CI) set it up. Paths named in a ``.pth`` file are
added to ``sys.path`` without processing the ``.pth`` files inside them, so an editable
install of cvloss in the outer environment cannot shadow the wheel under test.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _tracked_copy(dest: Path) -> Path:
    """The files a clean clone has (git's list when available, else the source folders)."""
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
        names = [f.decode() for f in files if f]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    for name in names:
        if name.startswith(("cvloss/", "pyproject.toml", "README.md")) and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    # An untracked new module of the change under test must be in the wheel too.
    for path in (ROOT / "cvloss").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and not (dest / path.relative_to(ROOT)).exists():
            (dest / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / path.relative_to(ROOT))
    return dest


def _outer_site_dirs() -> list[str]:
    """The site-packages folders of the interpreter running pytest (its venv's, and the
    base interpreter's when that venv was made with system site packages)."""
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return list(dict.fromkeys(d for d in dirs if Path(d).is_dir()))


def _see_outer_packages(py: Path) -> None:
    """One ``.pth`` in the throw-away venv naming the outer site-packages folders."""
    out = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "_cvloss_test_outer.pth").write_text("".join(d + "\n" for d in _outer_site_dirs()))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("pkg")
    src = _tracked_copy(work / "src")
    # --no-build-isolation: build with this environment's setuptools (no index needed).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work / "dist"),
          str(src)], cwd=work)
    (wheel,) = (work / "dist").glob("cvloss-*.whl")
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(work / "venv")
    py = work / "venv" / "bin" / "python"
    _see_outer_packages(py)
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], cwd=work)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CVLOSS_RESULTS", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", CVLOSS_DATA=str(work / "data"), PATH=f"{py.parent}{os.pathsep}{env.get('PATH', '')}")
    return py, env


def test_the_wheel_holds_the_catalog_and_imports_from_the_venv(installed, tmp_path):
    py, env = installed
    code = ("import cvloss, cvloss.data.registry as r; print(cvloss.__file__); print(r.catalog_path()); "
            "print(len(r.load_catalog())); from cvloss.study.costs import seconds_per_epoch as s; print(len(s()))")
    out = _run([str(py), "-c", code], cwd=tmp_path, env=env).stdout.splitlines()
    venv_dir = str(py.parent.parent)
    assert out[0].startswith(venv_dir) and out[1].startswith(venv_dir), out
    assert out[1].endswith("datasets.toml") and int(out[2]) >= 10
    assert int(out[3]) == 6  # study check's cost table (cvloss/study/costs.toml) ships too: one row per task


def test_installed_cli_lists_datasets_and_runs_a_smoke_comparison(installed, tmp_path):
    py, env = installed
    cli = str(py.parent / "cvloss")
    listed = _run([cli, "datasets", "list"], cwd=tmp_path, env=env).stdout
    assert "oxford-pets" in listed and "synth-pets" in listed
    proc = _run([cli, "compare", "--task", "seg", "--losses", "ce", "--seeds", "1", "--threads", "1", "--quiet",
                 "--set", "epochs=1", "--set", "n_train=8", "--set", "n_val=4"], cwd=tmp_path, env=env)
    cmp_dir = tmp_path / "cvloss-results" / "seg" / "synth-pets" / "smoke+epochs=1+n_train=8+n_val=4" / "compare--ce"
    assert (cmp_dir / "compare.csv").is_file(), proc.stdout
    assert f"results: cvloss-results{os.sep}seg" in proc.stdout
    # --quiet: nothing on stderr but the one failures line a degenerate tiny trial may earn
    assert all(line.startswith("failures: ") for line in proc.stderr.splitlines()), proc.stderr

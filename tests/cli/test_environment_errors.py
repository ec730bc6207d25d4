"""A broken environment is not a bug in cvloss: a torch / torchvision pair that does not
load together, a compiled extension that does not load, CUDA without a driver -- one
``error:`` line naming both versions and the pip command that fixes them, exit code 2."""
from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest
import torch
from typer.testing import CliRunner

import cvloss.environment as env
from cvloss.cli import app
from cvloss.environment import environment_problem, install_command, installed_version, matching_torchvision
from cvloss.errors import UsageError

runner = CliRunner()
# The versions a user of the CUDA 12.4 wheels of torch 2.5.1 sees with a torchvision built for torch 2.4.
VERSIONS = {"torch": "2.5.1+cu124", "torchvision": "0.19.0"}
FIX = ' -m pip install "torch==2.5.1" "torchvision==0.20.*" --index-url https://download.pytorch.org/whl/cu124'


@pytest.fixture
def mismatched(monkeypatch):
    """The installed versions read as those of VERSIONS (whatever this machine has)."""
    monkeypatch.setattr(env, "installed_version", VERSIONS.get)


def _seg(out) -> list[str]:
    return ["compare", "--task", "seg", "--losses", "ce", "--out", str(out)]


def test_torchvision_operator_missing_is_one_line_naming_both_versions_and_the_fix(tmp_path, monkeypatch, mismatched):
    import cvloss.run.compare as compare

    def broken_torchvision(*args, **kwargs):  # what `import torchvision` raises against another torch
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(compare, "run_comparison", broken_torchvision)
    result = runner.invoke(app, _seg(tmp_path / "out"))
    (line,) = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr
    assert line.startswith("error: torch 2.5.1+cu124 and torchvision 0.19.0 do not load together "
                           "(RuntimeError: operator torchvision::nms does not exist)")
    assert line.endswith(f"{FIX}") and "bug" not in line.replace("not a bug in cvloss", "")
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_the_console_entry_point_reports_an_extension_that_does_not_load(monkeypatch, capsys, tmp_path, mismatched):
    """Through ``cvloss.cli.main`` (the console script), with the loader's ImportError of
    torchvision's compiled part, raised while handling another error (found in the chain)."""
    import cvloss.cli as cli
    import cvloss.run.compare as compare

    def broken_extension(*args, **kwargs):
        try:
            raise ImportError("/venv/lib/python3.12/site-packages/torchvision/_C.so: undefined symbol: _ZN3c104cuda")
        except ImportError as exc:
            raise ValueError("while loading the data") from exc

    monkeypatch.setattr(compare, "run_comparison", broken_extension)
    monkeypatch.setattr(sys, "argv", ["cvloss", *_seg(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out, err = capsys.readouterr()
    (line,) = err.strip().splitlines()
    assert exit_.value.code == 2 and out == ""
    assert "torch 2.5.1+cu124 and torchvision 0.19.0 do not load together (ImportError:" in line and line.endswith(FIX)


def test_a_bug_is_still_a_bug(tmp_path, monkeypatch):
    import cvloss.run.compare as compare

    def broken(*args, **kwargs):
        raise RuntimeError("shape '[2, 3]' is invalid for input of size 5")

    monkeypatch.setattr(compare, "run_comparison", broken)
    result = runner.invoke(app, _seg(tmp_path / "out"))
    assert result.exit_code == 1 and "internal error (a bug in cvloss" in result.stderr


@pytest.mark.parametrize("exc, expected", [
    (RuntimeError("operator torchvision::nms does not exist"), "do not load together"),
    (RuntimeError("Couldn't load custom C++ ops. This can happen if your PyTorch and torchvision versions are "
                  "incompatible"), "do not load together"),
    (ImportError("/x/torchvision/_C.so: undefined symbol: _ZN5torch3jit"), "do not load together"),
    (OSError("libc10_cuda.so: cannot open shared object file: No such file or directory"),
     "do not load (torch's compiled libraries fail)"),
    (ModuleNotFoundError("No module named 'torchvision._C'", name="torchvision._C"), "do not load together"),
    (ModuleNotFoundError("No module named 'torchvision'", name="torchvision"), "cannot both be imported"),
    (RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU"), "CUDA cannot be used"),
    (UsageError("bad"), None),
    (ZeroDivisionError("division by zero"), None),
    (OSError(28, "No space left on device"), None),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"), None),
    (ModuleNotFoundError("No module named 'ray'", name="ray"), None),
    (OSError("cannot identify image file 'x.png'"), None),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v))
def test_environment_problems_are_told_from_bugs(exc, expected, mismatched):
    problem = environment_problem(exc)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem and "torch 2.5.1+cu124" in problem


@pytest.mark.parametrize("torch_version, vision", [
    ("2.5.1", "0.20.*"), ("2.0.1", "0.15.*"), ("2.14.1+cu130", "0.29.*"), ("1.13.1+cpu", "0.14.*"),
    ("3.0.0", None), ("nightly", None),
])
def test_matching_torchvision(torch_version, vision):
    assert matching_torchvision(torch_version) == vision


def test_install_command_keeps_torch_and_its_build():
    assert install_command("2.4.1+cpu").endswith(
        ' -m pip install "torch==2.4.1" "torchvision==0.19.*" --index-url https://download.pytorch.org/whl/cpu')
    assert install_command("2.4.1").endswith(' -m pip install "torch==2.4.1" "torchvision==0.19.*"')
    assert install_command("2.4.1+cu121", index="cpu").endswith("/whl/cpu")
    assert install_command(None).endswith(' -m pip install "torch" "torchvision"')


def test_installed_version_falls_back_to_the_metadata_when_the_import_failed(monkeypatch):
    metadata = {"torchvision": "0.99.0"}

    def version(name):
        if name not in metadata:
            raise importlib.metadata.PackageNotFoundError(name)
        return metadata[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as after an import that raised
    assert installed_version("torchvision") == "0.99.0"
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(__version__="0.20.1+cpu"))
    assert installed_version("torchvision") == "0.20.1+cpu"  # imported: its own version, build tag included
    assert installed_version("no-such-dist") is None


def test_cuda_build_without_a_driver_names_the_pair_and_the_cpu_install(tmp_path, monkeypatch, mismatched):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    result = runner.invoke(app, [*_seg(tmp_path / "out"), "--device", "cuda"])
    (line,) = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert line.startswith("error: --device cuda requested but torch sees no CUDA device; torch 2.5.1+cu124 "
                           "(torchvision 0.19.0) is a CUDA 12.4 build but finds no usable NVIDIA GPU or driver")
    assert line.endswith(' -m pip install "torch==2.5.1" "torchvision==0.20.*" --index-url '
                         'https://download.pytorch.org/whl/cpu')


def test_cpu_only_build_and_hidden_gpus_say_so(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    advice = env.cuda_advice("2.5.1+cpu")
    assert "is a CPU-only build" in advice and '"torch==2.5.1" "torchvision==0.20.*" --index-url ' \
                                                'https://download.pytorch.org/whl/cuNNN' in advice
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in env.cuda_advice("2.5.1+cu124")

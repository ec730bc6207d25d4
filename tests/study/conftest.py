"""Study files for the study tests: written into a test's folder, read back as plans."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cvloss.study.check import check_study
from cvloss.study.schema import read_study

# Two smoke comparisons whose trials finish (not degenerate) at one epoch, 2 losses x 2
# seeds each, and three hypotheses: the study the end-to-end tests run.
SMOKE_STUDY = """
title = "two smoke comparisons"

[[comparison]]
name = "sr-pixel"
task = "sr"
losses = ["l1", "mse"]
seeds = 2
set = { epochs = 1 }
feature_weights = "random"

[[comparison]]
name = "style-gram"
task = "style"
losses = ["content+1000*style", "content+1000*texture"]
seeds = [0, 1]
set = { epochs = 1 }
feature_weights = "random"

[[hypothesis]]
name = "l1-psnr"
comparison = "sr-pixel"
a = "l1"
b = "mse"
metric = "psnr_y"

[[hypothesis]]
name = "l1-ssim-differs"
comparison = "sr-pixel"
a = "l1"
b = "mse"
metric = "ssim"
claim = "differs"
margin = 0.5
family = "secondary"

[[hypothesis]]
name = "texture-style"
comparison = "style-gram"
a = "content+1000*texture"
b = "content+1000*style"
metric = "style_dist"
"""


def _write(folder: Path, text: str, name: str = "study.toml") -> Path:
    path = Path(folder) / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def write_study(tmp_path):
    """``write_study(text, name="study.toml", folder=tmp_path)``: the file written, its path."""
    return lambda text, name="study.toml", folder=None: _write(folder or tmp_path, text, name)


@pytest.fixture
def plan_of():
    """``plan_of(path, out=None)``: the study at ``path`` read and checked."""
    return lambda path, out=None: check_study(read_study(path), out)


@pytest.fixture(scope="session")
def smoke_text() -> str:
    """:data:`SMOKE_STUDY`, for tests and module-scoped fixtures."""
    return SMOKE_STUDY


@pytest.fixture
def smoke_study(tmp_path) -> Path:
    """:data:`SMOKE_STUDY` written as ``tmp_path/study.toml``."""
    return _write(tmp_path, SMOKE_STUDY)

"""The scripts/ folder's modules, loaded by path (scripts/ is not a package)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[2] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def study():
    return _load("reference_study")


@pytest.fixture(scope="module")
def readme_table():
    return _load("study_readme_table")

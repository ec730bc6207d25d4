"""Shared fixtures of the data tests: the tiny Oxford-IIIT Pet layout and a clean network
environment (no proxies: the download tests talk to 127.0.0.1 only)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cvloss.data.registry import extraction_marker, get_dataset

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_oxford_pets", Path(__file__).resolve().parents[1] / "fixtures" / "oxford_pets.py"
)
oxford_fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oxford_fixture)


@pytest.fixture
def pets_root(tmp_path: Path) -> Path:
    root = tmp_path / "oxford-pets"
    oxford_fixture.build_oxford_pets(root)
    for f in get_dataset("oxford-pets").files:  # as `cvloss datasets download` leaves it
        extraction_marker(root, f.filename).touch()
    return root


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CVLOSS_DATA", raising=False)


@pytest.fixture
def oxford():
    """The fixture-builder module (TRAIN / VAL tables, trimap_array, image_array)."""
    return oxford_fixture

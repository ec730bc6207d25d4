"""Datasets: the catalog (``datasets.toml``), download/verify/extract, and loaders.

Entry points::

    from cvloss.data import load_catalog, load_dataset, resolve_data_dir, download, verify
    data = load_dataset("synth-pets", "train", size=64, limit=32, seed=0)   # SegData

Importing this package stays light: loaders are imported by their ``module:function``
string only when a dataset is loaded, and :mod:`cvloss.data.fetch` on first use.
"""
from __future__ import annotations

from typing import Any

from cvloss.data.registry import (
    ENV_VAR, SPLITS, DatasetInfo, FileInfo, dataset_dir, datasets_for, default_dataset,
    get_dataset, is_present, load_catalog, load_dataset, register_dataset, resolve_data_dir,
)
from cvloss.data.types import DatasetError, SegData

__all__ = [
    "ENV_VAR", "SPLITS", "DatasetError", "DatasetInfo", "FileInfo", "SegData",
    "dataset_dir", "datasets_for", "default_dataset", "get_dataset", "is_present", "load_catalog",
    "load_dataset", "register_dataset", "resolve_data_dir", "download", "verify", "FileCheck",
]


def __getattr__(name: str) -> Any:
    # fetch pulls in urllib/tarfile/zipfile: import it only when asked for.
    if name in ("download", "verify", "FileCheck"):
        from cvloss.data import fetch

        return getattr(fetch, name)
    raise AttributeError(f"module 'cvloss.data' has no attribute {name!r}")

"""A trial's configuration: everything that determines its result, and where it lives.

A trial is self-contained -- a resolved config in, a results folder out -- so any
executor (this process, a pool, a cluster job) can run it without change."""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cvloss.data.folders import dataset_label
from cvloss.errors import UsageError
from cvloss.io import loss_slug  # noqa: F401  (the results layout: re-exported)
from cvloss.run.budgets import budget_params

RESULTS_ENV = "CVLOSS_RESULTS"
DEFAULT_RESULTS = "cvloss-results"


def resolve_results_dir(cli: str | None = None) -> str:
    """``--out`` if given, else ``$CVLOSS_RESULTS`` if set and non-empty, else
    ``./cvloss-results``. Never the repository's tracked ``results/`` by default: that
    folder holds the reference study, and a user's runs must not mix into it."""
    if cli is not None:
        if not str(cli).strip():
            raise UsageError(f'--out is empty; give a folder (default: ${RESULTS_ENV}, else ./{DEFAULT_RESULTS})')
        return str(cli)
    return os.environ.get(RESULTS_ENV, "").strip() or DEFAULT_RESULTS


def budget_label(budget: str, overrides: dict[str, Any]) -> str:
    """``quick`` or, with overrides, ``quick+epochs=5+lr=0.001`` (sorted keys)."""
    if not overrides:
        return budget
    parts = [f"{k}={v}" for k, v in sorted(overrides.items())]
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", "+".join([budget] + parts))


@dataclass
class TrialConfig:
    """One trial: a task trained under one loss at one seed for one budget."""

    task: str
    loss: str  # canonical spec, as ``build_loss(...).spec`` prints it
    dataset: str  # a catalog name, or a dataset folder's resolved absolute path
    budget: str = "smoke"
    seed: int = 0
    device: str = "cpu"
    out: str = DEFAULT_RESULTS
    data_dir: str | None = None
    feature_weights: str = "auto"
    overrides: dict[str, Any] = field(default_factory=dict)
    # --fid-weights: the FID Inception file, recorded in trial.json; like a path, not identity
    fid_weights: str | None = None
    # --log: live curves of the run (cvloss.run.live_log); a view, not part of the identity
    log: str = "none"
    # torch threads of the process that trains it (--threads, or the executor's share of
    # the CPUs); recorded in trial.json, not identity. None: as the process has it
    threads: int | None = None
    # A fold of a k-fold protocol (LFW View 2): one sub-trial of the seed's trial, in
    # <seed dir>/fold<f>/; None for the seed's trial itself (see cvloss.run.folds).
    fold: int | None = None
    # Hyper-parameter search (cvloss.run.tune). ``tuned``: settings applied on top of the
    # overrides -- part of params and identity, not of the budget folder's name; ``name``:
    # the spec the loss folder is named after (the spec as compared, before tuned loss
    # arguments changed ``loss``); ``place``: "" (an ordinary trial), ``tune--<h>/t<i>/seed<s>``
    # (candidate i at tuning seed s: <budget>/tune--<h>/<loss>/t<i>/seed<s>/; ``tune--<h>/t<i>``
    # in the legacy layout) or ``+tuned-<h>`` (a retrained
    # winner: <budget>+tuned-<h>/<loss>/seed<k>/); ``test``: False for tuning trials, which
    # never read the test split.
    tuned: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    place: str = ""
    test: bool = True
    # a dataset folder's cvloss.data.folders.fingerprint (paths, sizes, mtimes): part of the
    # identity, so a changed folder is never resumed or skipped as if it were the same data
    data_fingerprint: str | None = None
    # --keep-checkpoints: a finished trial keeps checkpoint.pt and checkpoint.prev.pt beside
    # model.pt (by default they are deleted once summary.json is written); what is kept,
    # not what is trained: not part of the identity
    keep_checkpoints: bool = False
    # A rung of a successive-halving search (cvloss.run.tune.Halving): train under the full
    # budget's schedule up to this epoch, keep the checkpoint and stop (a later rung resumes
    # it). When to stop, not what is trained: not part of the identity
    stop_at_epoch: int | None = None

    @property
    def params(self) -> dict[str, Any]:
        params = budget_params(self.task, self.budget, {**self.overrides, **self.tuned})
        return params if self.fold is None else {**params, "fold": self.fold}

    @property
    def group_dir(self) -> Path:
        """``<out>/<task>/<dataset>/<budget>``: where a comparison's trials live; a dataset
        folder is ``<basename>-<8 hex of its path's sha256>`` there (:func:`dataset_label`)."""
        label = budget_label(self.budget, self.overrides)
        if self.place.startswith("+"):
            label += self.place  # a retrained winner of a search: <budget>+tuned-<h>
        return Path(self.out) / self.task / dataset_label(self.dataset) / label

    @property
    def trial_dir(self) -> Path:
        slug = loss_slug(self.name or self.loss)
        if self.place.startswith("tune--"):
            sub, leaf = self.place.split("/", 1)  # leaf: t<i> (legacy) or t<i>/seed<s>
            seed_dir = self.group_dir / sub / slug / leaf
        else:
            seed_dir = self.group_dir / slug / f"seed{self.seed}"
        return seed_dir if self.fold is None else seed_dir / f"fold{self.fold}"

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to resume this trial (device and paths may differ)."""
        d = asdict(self)
        for key in ("device", "out", "data_dir", "fid_weights", "log", "name", "place", "threads", "keep_checkpoints",
                    "stop_at_epoch"):
            d.pop(key)
        if d["data_fingerprint"] is None:  # a catalog dataset: the identity trials always had
            d.pop("data_fingerprint")
        d["params"] = self.params
        return d


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"params": {"lr": 0.1}}`` -> ``{"params.lr": 0.1}``; a non-dict is one entry."""
    if not isinstance(value, dict):
        return {prefix or "identity": value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _shown(value: Any) -> str:
    text = repr(value)  # repr: quotes a string, escapes a newline, so the line stays one line
    return text if len(text) <= 60 else text[:57] + "..."


def identity_difference(recorded: Any, requested: dict[str, Any], shown: int = 3) -> str | None:
    """Where a trial folder's recorded identity differs from the one a command requests
    (:meth:`TrialConfig.identity`), in a few words naming both values:
    ``feature_weights: recorded 'random:1', requested 'random:2'`` (nested settings as
    ``params.lr``; at most ``shown`` keys, then how many more). None when they are equal."""
    requested = json.loads(json.dumps(requested))  # as a file records it: tuples are lists
    if recorded == requested:
        return None
    then, now = _flat(recorded), _flat(requested)
    keys = [k for k in dict.fromkeys([*now, *then]) if then.get(k, _ABSENT) != now.get(k, _ABSENT)]
    if not keys:  # equal leaves, other containers (an empty object where none was)
        return f"identity: recorded {_shown(recorded)}, requested {_shown(requested)}"
    parts = [f"{k}: recorded {_shown(then.get(k, _ABSENT))}, requested {_shown(now.get(k, _ABSENT))}"
             for k in keys[:shown]]
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return "; ".join(parts) + more


class _Absent:
    def __repr__(self) -> str:
        return "(none)"


_ABSENT = _Absent()

"""A trial's configuration: its identity (:class:`TrialIdentity`, what must match for a
rerun to resume or skip it), its run context (:class:`RunContext`: device, paths, threads,
what may differ between runs) and where a search places it (:data:`Placement`), composed
by :class:`TrialConfig`, which names the trial's folder. The one module that writes and
reads the search's folder names (``tune--<h>``, ``+tuned-<H>``).

A trial is self-contained -- a resolved config in, a results folder out -- so any
executor (this process, a pool, a cluster job) can run it without change."""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Union

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


# ---------------------------------------------------------------- placement
# The only code that writes or reads the folder names of a search: its trials lie in
# <budget>/tune--<h>/, its retrained winners in <budget>+tuned-<H>/.
_SEARCH, _TUNED = "tune--", "+tuned-"
_CANDIDATE = re.compile(r"tune--([0-9a-f]+)/t(0|[1-9][0-9]*)(?:/seed(0|[1-9][0-9]*))?")
_WINNER = re.compile(r"\+tuned-([0-9a-f]+)")


@dataclass(frozen=True)
class Ordinary:
    """An ordinary trial of a comparison: ``<budget>/<loss-slug>/seed<k>/``."""


@dataclass(frozen=True)
class SearchCandidate:
    """Candidate ``index`` of a hyper-parameter search (:mod:`cvloss.run.tune`) at tuning
    seed ``seed``: ``<budget>/tune--<hash>/<loss-slug>/t<index>/seed<seed>/``. ``seed`` None:
    the legacy layout, the trial in ``t<index>/`` itself. ``hash``: the space's key (hex)."""

    hash: str
    index: int
    seed: int | None = None


@dataclass(frozen=True)
class TunedWinner:
    """A search's winner retrained at a reporting seed: ``<budget>+tuned-<hash>/<loss-slug>/seed<k>/``
    (``hash``: the space's tuned key, hex)."""

    hash: str


Placement = Union[Ordinary, SearchCandidate, TunedWinner]
ORDINARY = Ordinary()


def search_folder(space_key: str) -> str:
    """``tune--<h>``: the folder, inside its budget folder, of a search's trials."""
    return f"{_SEARCH}{space_key}"


def tuned_suffix(tuned_key: str) -> str:
    """``+tuned-<H>``: what a search's winners add to their budget folder's name."""
    return f"{_TUNED}{tuned_key}"


def tuned_glob(budget_folder: str) -> str:
    """The glob of every search's winners' folder beside ``budget_folder``."""
    return f"{budget_folder}{_TUNED}*"


def is_search_run(run: str) -> bool:
    """Whether ``run``, a trial folder relative to its budget folder (``ce/seed0``,
    ``tune--<h>/ce/t3/seed10003``), is a search trial."""
    return run.startswith(_SEARCH)


def _candidate_leaf(place: SearchCandidate) -> str:
    """``t<i>/seed<s>`` (legacy ``t<i>``): a candidate's folder below its loss folder."""
    return f"t{place.index}" if place.seed is None else f"t{place.index}/seed{place.seed}"


def format_place(place: Placement) -> str:
    """``place`` as trial.json's ``config.place`` records it: ``""``,
    ``tune--<h>/t<i>/seed<s>`` (legacy ``tune--<h>/t<i>``) or ``+tuned-<H>``."""
    if isinstance(place, SearchCandidate):
        return f"{search_folder(place.hash)}/{_candidate_leaf(place)}"
    if isinstance(place, TunedWinner):
        return tuned_suffix(place.hash)
    return ""


def parse_place(text: str) -> Placement:
    """The inverse of :func:`format_place` (a recorded ``config.place``); ValueError on
    any other text, so a hand-edited record never names a folder it was not written in."""
    if text == "":
        return ORDINARY
    if m := _WINNER.fullmatch(text):
        return TunedWinner(m[1])
    if m := _CANDIDATE.fullmatch(text):
        return SearchCandidate(m[1], int(m[2]), None if m[3] is None else int(m[3]))
    raise ValueError(f"not a trial placement: {text!r} (expected '', tune--<hex>/t<i>[/seed<s>] or +tuned-<hex>)")


# ---------------------------------------------------------------- identity and context
@dataclass(frozen=True)
class TrialIdentity:
    """What a trial is: a task trained under one loss at one seed for one budget. It must
    match for a rerun to resume or skip the trial; with the placement it names the folder.
    Field order is the order :meth:`record` (trial.json's ``identity``) writes."""

    task: str
    loss: str  # canonical spec, as ``build_loss(...).spec`` prints it
    dataset: str  # a catalog name, or a dataset folder's resolved absolute path
    budget: str = "smoke"
    seed: int = 0
    feature_weights: str = "auto"  # the --feature-weights request (what it resolves to is recorded apart)
    overrides: dict[str, Any] = field(default_factory=dict)
    # A fold of a k-fold protocol (LFW View 2): one sub-trial of the seed's trial, in
    # <seed dir>/fold<f>/; None for the seed's trial itself (see cvloss.run.folds).
    fold: int | None = None
    # a search's settings applied on top of the overrides: in params, not in the budget folder's name
    tuned: dict[str, Any] = field(default_factory=dict)
    test: bool = True  # False for tuning trials, which never read the test split
    # a dataset folder's cvloss.data.folders.fingerprint (paths, sizes, mtimes): a changed
    # folder is never resumed or skipped as if it were the same data; None for a catalog dataset
    data_fingerprint: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        params = budget_params(self.task, self.budget, {**self.overrides, **self.tuned})
        return params if self.fold is None else {**params, "fold": self.fold}

    def record(self) -> dict[str, Any]:
        """The identity as trial.json records it: the fields (``data_fingerprint`` only for a
        dataset folder, as trials on catalog data always had it), then the resolved ``params``."""
        d = asdict(self)
        if d["data_fingerprint"] is None:
            d.pop("data_fingerprint")
        d["params"] = self.params
        return d


@dataclass(frozen=True)
class RunContext:
    """How and where a trial runs: what may differ between a run and its resume."""

    device: str = "cpu"
    out: str = DEFAULT_RESULTS
    data_dir: str | None = None
    fid_weights: str | None = None  # --fid-weights: the FID Inception file, recorded in trial.json
    log: str = "none"  # --log: live curves of the run (cvloss.run.live_log)
    # torch threads of the process that trains it (--threads, or the executor's share of
    # the CPUs). None: as the process has it
    threads: int | None = None
    # --keep-checkpoints: a finished trial keeps checkpoint.pt and checkpoint.prev.pt beside
    # model.pt (by default they are deleted once summary.json is written)
    keep_checkpoints: bool = False
    # A rung of a successive-halving search (cvloss.run.tune.Halving): train under the full
    # budget's schedule up to this epoch, keep the checkpoint and stop (a later rung resumes it)
    stop_at_epoch: int | None = None


_IDENTITY = frozenset(f.name for f in fields(TrialIdentity))
_CONTEXT = frozenset(f.name for f in fields(RunContext))
# trial.json's "config": every field in the order the one flat config class wrote them
RECORD_ORDER = ("task", "loss", "dataset", "budget", "seed", "device", "out", "data_dir", "feature_weights",
                "overrides", "fid_weights", "log", "threads", "fold", "tuned", "name", "place", "test",
                "data_fingerprint", "keep_checkpoints", "stop_at_epoch")


@dataclass(frozen=True, init=False)
class TrialConfig:
    """One trial to run: its identity, its run context, where a search places it, and the
    spec its loss folder is named after. Built from flat keywords, ``TrialConfig(task=...,
    seed=..., device=...)``, or from parts; a part's field reads through (``cfg.seed`` is
    ``cfg.ident.seed``, ``cfg.device`` is ``cfg.context.device``) and ``dataclasses.replace``
    takes flat keywords too. Self-contained, so any executor can run it unchanged."""

    ident: TrialIdentity
    context: RunContext
    place: Placement
    # The spec the loss folder is named after: the spec as compared, before a search's loss
    # arguments changed ``loss``. None: ``loss`` itself. Names the folder, not the trial.
    name: str | None

    def __init__(self, *, ident: TrialIdentity | None = None, context: RunContext | None = None,
                 place: Placement = ORDINARY, name: str | None = None, **values: Any) -> None:
        unknown = set(values) - _IDENTITY - _CONTEXT
        if unknown:
            raise TypeError(f"TrialConfig got unknown fields: {', '.join(sorted(unknown))}")
        if not isinstance(place, (Ordinary, SearchCandidate, TunedWinner)):
            raise TypeError(f"TrialConfig place must be a Placement (parse_place reads a recorded one); got {place!r}")
        own = {k: v for k, v in values.items() if k in _IDENTITY}
        run = {k: v for k, v in values.items() if k in _CONTEXT}
        object.__setattr__(self, "ident", replace(ident, **own) if ident is not None else TrialIdentity(**own))
        object.__setattr__(self, "context", replace(context, **run) if context is not None else RunContext(**run))
        object.__setattr__(self, "place", place)
        object.__setattr__(self, "name", name)

    def __getattr__(self, key: str) -> Any:
        # only called for names that are no attribute: a part's fields
        if key in _IDENTITY:
            return getattr(self.ident, key)
        if key in _CONTEXT:
            return getattr(self.context, key)
        raise AttributeError(f"'TrialConfig' object has no attribute {key!r}")

    @classmethod
    def from_record(cls, config: Mapping[str, Any]) -> TrialConfig:
        """The config a trial.json's ``config`` records, as any version wrote it: a field it
        lacks takes its default, ``params`` and unknown keys are ignored, ``place`` is parsed."""
        values = {k: v for k, v in config.items() if k in _IDENTITY or k in _CONTEXT}
        return cls(**values, name=config.get("name"), place=parse_place(config.get("place") or ""))

    def record(self) -> dict[str, Any]:
        """The config as trial.json's ``config`` records it (and executors ship it): every
        field, flat, in :data:`RECORD_ORDER`, the placement as text."""
        values = {**asdict(self.ident), **asdict(self.context), "name": self.name, "place": format_place(self.place)}
        return {k: values[k] for k in RECORD_ORDER}

    @property
    def params(self) -> dict[str, Any]:
        return self.ident.params

    @property
    def group_dir(self) -> Path:
        """``<out>/<task>/<dataset>/<budget>``: where a comparison's trials live; a dataset
        folder is ``<basename>-<8 hex of its path's sha256>`` there (:func:`dataset_label`);
        a search's winners add ``+tuned-<H>`` to the budget folder."""
        label = budget_label(self.budget, self.overrides)
        if isinstance(self.place, TunedWinner):
            label += tuned_suffix(self.place.hash)
        return Path(self.out) / self.task / dataset_label(self.dataset) / label

    @property
    def seed_part(self) -> str:
        """The trial's folder below its loss folder, before any ``fold<f>``: ``seed<k>``, or a
        search candidate's ``t<i>/seed<s>`` (legacy ``t<i>``)."""
        if isinstance(self.place, SearchCandidate):
            return _candidate_leaf(self.place)
        return f"seed{self.seed}"

    @property
    def trial_dir(self) -> Path:
        group, slug = self.group_dir, loss_slug(self.name or self.loss)
        if isinstance(self.place, SearchCandidate):
            group = group / search_folder(self.place.hash)
        seed_dir = group / slug / self.seed_part
        return seed_dir if self.fold is None else seed_dir / f"fold{self.fold}"

    def identity(self) -> dict[str, Any]:
        """What must match for a rerun to resume this trial (device and paths may differ):
        :meth:`TrialIdentity.record`."""
        return self.ident.record()


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

"""A comparison's result: the typed form of ``compare.json``, read and written here only.

:class:`ComparisonResult` has one field per key of ``compare.json``, in the order the file
lists them. The comparison (:mod:`cvloss.run.compare`) builds one and writes it with
:meth:`ComparisonResult.write`; the report and scripts read one with
:meth:`ComparisonResult.from_json` (the file checked field by field first,
:func:`cvloss.io.check_comparison`). A key an older file lacks reads as None (or an empty
list or mapping), so ``result.best is None`` marks a comparison without corrected
statistics; keys this version does not know are kept in :attr:`extra`, so a file read and
written again loses nothing. ``rows`` are ``compare.csv``'s rows as plain mappings.

Ground level: the run layer writes results and the report layer reads them, and neither
may import the other's modules. See docs/report.md.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from cvloss.io import read_comparison, write_json


@dataclass(eq=True)
class ComparisonResult:
    """One comparison: several losses x several seeds on one task, dataset and budget.

    Lists run over ``losses`` (baseline first) and ``seeds`` in the comparison's order;
    mappings keyed by loss spec hold one entry per seed in ``seeds`` order."""

    task: str = ""
    dataset: str = ""
    budget: str = ""  # the budget folder's name: budget + sorted --set items (+ tuned-<hash>)
    losses: list[str] = field(default_factory=list)  # canonical specs; the first is the baseline
    seeds: list[int] = field(default_factory=list)
    baseline: str = ""
    references: list[str] = field(default_factory=list)  # model-free rows (bicubic, untrained model)
    metrics: list[str] = field(default_factory=list)
    directions: dict[str, bool] = field(default_factory=dict)  # metric -> higher is better
    bounds: dict[str, list[float | None]] | None = None  # metric -> [low, high] (None: unbounded side)
    rows: list[dict[str, Any]] = field(default_factory=list)  # compare.csv's rows
    feature_weights: list[str] | None = None  # the VGG weights the trials used (None: no feature network)
    trials: dict[str, list[str]] = field(default_factory=dict)  # loss -> trial folder per seed
    status: dict[str, list[str]] = field(default_factory=dict)  # loss -> trial status per seed
    split: str | None = None  # where the final numbers were measured (test)
    primary_metric: str | None = None
    compute: dict[str, Any] | None = None  # loss -> time, memory, updates (means over finished trials)
    success: dict[str, float] | None = None  # loss -> share of seeds that finished without failing
    best: dict[str, str | None] | None = None  # metric -> the loss that beats every other (None: older file)
    mde: dict[str, float] | None = None  # metric -> minimum detectable effect
    seeds_needed: dict[str, int] | None = None  # metric -> seeds to detect target_effect
    alpha: float | None = None
    power: float | None = None
    mde_level: float | None = None
    mde_how: str | None = None
    degenerate: dict[str, list[str | None]] | None = None  # loss -> reason per seed (decided on val)
    degenerate_on_test: dict[str, list[str | None]] | None = None
    degenerate_predates: dict[str, list[bool]] | None = None
    identical_replicates: dict[str, list[list[int]]] | None = None
    degenerate_rule: str | None = None
    replicate_unit: str | None = None
    itt: dict[str, Any] | None = None  # intent to treat: its best and mde
    folds: dict[str, list[dict[str, Any]]] | None = None  # k-fold protocols only
    provenance: dict[str, Any] | None = None  # code, torch, threads, devices of the trials
    target_effect: float | None = None
    dir: str | None = None  # the comparison folder
    tuning: dict[str, Any] | None = None  # a tuned comparison's search record (cvloss.run.tuning)
    item_analysis: dict[str, Any] | None = None  # per-item paired analysis, when the comparison made one
    plots: dict[str, str] = field(default_factory=dict)  # plot key -> file name in the folder
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer file, kept as read

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "ComparisonResult":
        """The result of a ``compare.json`` object as parsed (not checked: see
        :meth:`from_json`); a missing key gets its field's default, an unknown one goes to
        :attr:`extra`. Null in a list or mapping field reads as empty."""
        known = {f.name: f for f in _SCHEMA}
        values: dict[str, Any] = {}
        for key, value in obj.items():
            if key in known:
                values[key] = value if value is not None or key not in _CONTAINERS else known[key].default_factory()
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(**values, extra=extra)

    @classmethod
    def from_json(cls, path: str | Path, root: Path | None = None) -> "ComparisonResult":
        """The comparison in ``path``, read bounded (inside ``root`` when given) and its
        fields checked (:func:`cvloss.io.read_comparison`: a wrong shape is one
        :class:`~cvloss.errors.ResultsFileError` line naming the file and field)."""
        return cls.from_dict(read_comparison(Path(path), root))

    @classmethod
    def of(cls, result: "ComparisonResult | Mapping[str, Any]") -> "ComparisonResult":
        """``result`` itself, or the result of a ``compare.json`` mapping (unchecked): what
        the report's functions accept."""
        return result if isinstance(result, ComparisonResult) else cls.from_dict(result)

    def row(self, loss: str, metric: str, analysis: str = "completed") -> dict[str, Any] | None:
        """The table's row of ``loss`` (or of a reference) and ``metric``: ``mean``,
        ``ci95``, ``n``, the paired difference against the baseline and its verdict, ... (the
        columns of ``compare.csv``); ``analysis`` completed (the trials that finished
        without failing) or itt (intent to treat). None when the table has no such row."""
        for r in self.rows:
            if r.get("loss") == loss and r.get("metric") == metric \
                    and r.get("analysis", analysis) in (analysis, "reference"):
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        """The ``compare.json`` object: every field in the file's order, the optional ones
        (``folds``, ``tuning``, ``item_analysis``) only when set, then :attr:`extra`."""
        out = {f.name: getattr(self, f.name) for f in _SCHEMA
               if not (f.name in _OPTIONAL and getattr(self, f.name) is None)}
        return {**out, **self.extra}

    def write(self, path: str | Path) -> None:
        """Write ``compare.json`` atomically (NaN and infinities as null)."""
        write_json(Path(path), self.to_dict())


#: Fields that are keys of compare.json (``extra`` and fields of subclasses are not).
_SCHEMA = tuple(f for f in fields(ComparisonResult) if f.name != "extra")
#: Keys written only when the comparison has them.
_OPTIONAL = frozenset({"folds", "tuning", "item_analysis"})
#: Fields that are lists or mappings: null reads as empty.
_CONTAINERS = frozenset({"losses", "seeds", "references", "metrics", "directions", "rows", "trials", "status", "plots"})


def reads_result(fn):
    """Decorates a function whose first argument is a comparison: callers may pass a
    :class:`ComparisonResult` or a ``compare.json`` mapping, and ``fn`` always gets the
    former (:meth:`ComparisonResult.of`), so it reads attributes only."""

    @functools.wraps(fn)
    def wrapper(result, *args, **kwargs):
        return fn(ComparisonResult.of(result), *args, **kwargs)

    return wrapper

"""The study file (``study.toml``): read as untrusted input into typed entries.

A study file holds ``[[comparison]]`` tables -- what ``cvloss compare`` takes: ``name``,
``task``, ``dataset``, ``losses`` (the first is the baseline), ``budget``, ``seeds``,
``set``, the search (``tune``, ``tune_trials``, ...) and executor hints -- and
``[[hypothesis]]`` tables -- the claims they test: ``name``, ``comparison``, ``a``,
``b``, ``metric``, ``claim`` (``better`` or ``differs``), optional ``margin`` and
``family`` -- and an optional top-level ``title``. docs/protocol.md shows a whole file.

This module checks shapes and types only (names, kinds, ranges of plain numbers): what
a name means -- a task, a loss, a metric -- is :mod:`cvloss.study.check`'s job. Every
problem is one :class:`~cvloss.errors.UsageError` line naming the file, the table and
the key: ``study.toml: [[comparison]] 2 ("vessels"), key 'seeds': ...``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 needs the backport
    import tomli as tomllib  # type: ignore[no-redef]

from cvloss.errors import ResultsFileError, UsageError
from cvloss.io import read_bounded

#: A study file is a page of text; 1 MiB is far past any real one, and bounds what a
#: hostile or mistaken path (a log, a dataset archive) can make us parse.
MAX_STUDY_BYTES = 2**20
#: Names of comparisons, hypotheses and families: they become lock keys, table cells and
#: report anchors, so plain words only.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")
CLAIMS = ("better", "differs")
DEFAULT_FAMILY = "study"

COMPARISON_KEYS = ("name", "task", "dataset", "losses", "budget", "seeds", "set", "target_effect", "feature_weights",
                   "tune", "tune_trials", "tune_sampler", "tune_seed", "tune_seeds", "tune_repeats", "halving",
                   "jobs", "threads", "slurm")
SLURM_KEYS = ("cpus", "gpus", "time")
HYPOTHESIS_KEYS = ("name", "comparison", "a", "b", "metric", "claim", "margin", "family", "why")
TOP_KEYS = ("title", "comparison", "hypothesis")


@dataclass(frozen=True)
class SlurmHints:
    """What a comparison asks of Slurm: CPUs and GPUs per trial, each job's time limit."""

    cpus: int | None = None
    gpus: int | None = None
    time: str | None = None


@dataclass(frozen=True)
class Comparison:
    """One ``[[comparison]]`` table, as written (names not yet resolved). ``seeds`` is the
    text :func:`cvloss.run.compare.parse_seeds` reads; ``sets`` the ``--set`` items."""

    name: str
    task: str
    losses: tuple[str, ...]
    index: int = 1  # 1-based position among the [[comparison]] tables, for error lines
    dataset: str | None = None
    budget: str = "smoke"
    seeds: str = "3"
    sets: tuple[tuple[str, Any], ...] = ()
    target_effect: float | None = None
    feature_weights: str = "auto"
    tune: tuple[str, ...] = ()
    tune_trials: int | None = None
    tune_sampler: str | None = None  # None: the search's default sampler
    tune_seed: int = 0
    tune_seeds: int | None = None
    tune_repeats: int | None = None
    halving: bool | int | dict[str, int] | None = None  # true, eta, or {eta, min_epochs}
    jobs: int | None = None
    threads: int | None = None
    slurm: SlurmHints = field(default_factory=SlurmHints)


@dataclass(frozen=True)
class Hypothesis:
    """One ``[[hypothesis]]`` table: ``a`` better than ``b`` on ``metric`` (``claim =
    "better"``) or different either way (``"differs"``), in comparison ``comparison``;
    ``margin`` (metric units, > 0) asks for equivalence too; ``family`` is the set it is
    Holm-corrected with."""

    name: str
    comparison: str
    a: str
    b: str
    metric: str
    index: int = 1
    claim: str = "better"
    margin: float | None = None
    family: str = DEFAULT_FAMILY
    why: str = ""


@dataclass(frozen=True)
class Study:
    """A study file, read: its path, title, comparisons and hypotheses in file order."""

    path: Path
    comparisons: tuple[Comparison, ...]
    hypotheses: tuple[Hypothesis, ...] = ()
    title: str = ""

    @property
    def folder(self) -> Path:
        """Where the study's trials go unless ``--out``: the study file's folder."""
        return self.path.parent

    def comparison(self, name: str) -> Comparison:
        return next(c for c in self.comparisons if c.name == name)


# ---------------------------------------------------------------------------- errors
def where(path: Path, kind: str, index: int, name: Any = None, key: str | None = None) -> str:
    """``study.toml: [[comparison]] 2 ("vessels"), key 'seeds'`` -- the start of an error line."""
    text = f"{path}: [[{kind}]] {index}"
    if isinstance(name, str) and name:
        text += f' ("{name[:80]}")'
    return text + (f", key '{key}'" if key else "")


def _bad(at: str, why: str) -> UsageError:
    return UsageError(f"{at}: {why}")


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------- values
def _text(value: Any, at: str, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _bad(at, f"expected a string, got {_kind(value)}")
    if not empty and not value.strip():
        raise _bad(at, "is empty")
    return value.strip()


def _name(value: Any, at: str) -> str:
    text = _text(value, at)
    if not NAME.match(text):
        raise _bad(at, f"{text[:80]!r} is not a plain name (letters, digits, _ . + -; at most 80 characters)")
    return text


def _int(value: Any, at: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(at, f"expected an integer, got {_kind(value)}")
    if value < low:
        raise _bad(at, f"must be >= {low}; got {value}")
    return value


def _positive(value: Any, at: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(at, f"expected a number, got {_kind(value)}")
    if not (math.isfinite(value) and value > 0):
        raise _bad(at, f"must be a positive finite number; got {value}")
    return float(value)


def _texts(value: Any, at: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _bad(at, f"expected a non-empty array of strings, got {_kind(value)}")
    return tuple(_text(v, at) for v in value)


def _seeds(value: Any, at: str) -> str:
    """A count (``10``) or a list (``[0, 1, 2]``) as the text parse_seeds reads."""
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _bad(at, f"expected a count or an array of integers, got {_kind(value)}")


def _sets(value: Any, at: str) -> tuple[tuple[str, Any], ...]:
    """``set = { epochs = 1 }`` or ``set = ["epochs=1"]``: (key, value) pairs, each key once."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for item in value:
            key, eq, raw = _text(item, at).partition("=")
            if not eq or not key.strip():
                raise _bad(at, f"expected key=value items; got {item!r}")
            pairs.append((key.strip(), raw.strip()))
    else:
        raise _bad(at, f"expected a table (set = {{ epochs = 1 }}) or an array of key=value, got {_kind(value)}")
    seen: set[str] = set()
    for key, raw in pairs:
        if key in seen:
            raise _bad(at, f"{key} is given twice")
        seen.add(key)
        if not isinstance(raw, (str, int, float, bool)):
            raise _bad(at, f"{key} = {_kind(raw)}: expected a string, number or boolean")
    return tuple(pairs)


HALVING_KEYS = ("eta", "min_epochs")


def _halving(value: Any, at: str, sub: Any = None) -> bool | int | dict[str, int]:
    """``true`` (the search's default rungs), an integer eta (the 1/eta that continue at
    each rung) or ``{ eta = 3, min_epochs = 1 }``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        odd = sorted(set(value) - set(HALVING_KEYS))
        if odd:
            raise _bad(at, f"unknown key {odd[0]!r}; valid: {', '.join(HALVING_KEYS)}")
        return {k: _int(value[k], sub(k), 2 if k == "eta" else 1) for k in HALVING_KEYS if k in value}
    return _int(value, at, low=2)


def _slurm(value: Any, at: str, sub: Any = None) -> SlurmHints:
    """``{ cpus, gpus, time }``; ``sub(key)`` names a key inside the table in errors."""
    if not isinstance(value, dict):
        raise _bad(at, f"expected a table such as {{ cpus = 1, gpus = 0, time = \"4:00:00\" }}, got {_kind(value)}")
    odd = sorted(set(value) - set(SLURM_KEYS))
    if odd:
        raise _bad(at, f"unknown key {odd[0]!r}; valid: {', '.join(SLURM_KEYS)}")
    return SlurmHints(cpus=_int(value["cpus"], sub("cpus"), 1) if "cpus" in value else None,
                      gpus=_int(value["gpus"], sub("gpus"), 0) if "gpus" in value else None,
                      time=_text(value["time"], sub("time")) if "time" in value else None)


# ---------------------------------------------------------------------------- tables
def _table(raw: Any, path: Path, kind: str, index: int, keys: tuple[str, ...], required: tuple[str, ...]) -> dict:
    at = where(path, kind, index)
    if not isinstance(raw, dict):
        raise _bad(at, f"expected a table, got {_kind(raw)} (write [[{kind}]] tables)")
    name = raw.get("name")
    odd = [k for k in raw if k not in keys]
    if odd:
        raise _bad(where(path, kind, index, name, odd[0]), f"unknown key; valid keys: {', '.join(keys)}")
    for key in required:
        if key not in raw:
            raise _bad(where(path, kind, index, name, key), "is required")
    return raw


def read_comparison(raw: Any, path: Path, index: int) -> Comparison:
    """One ``[[comparison]]`` table (``index`` 1-based), types checked."""
    raw = _table(raw, path, "comparison", index, COMPARISON_KEYS, ("name", "task", "losses"))
    at = lambda key: where(path, "comparison", index, raw.get("name"), key)  # noqa: E731
    conv = {
        "dataset": _text, "budget": _text, "feature_weights": _text, "tune_sampler": _text,
        "seeds": _seeds, "set": _sets, "tune": _texts,
        "target_effect": _positive,
        "tune_trials": lambda v, a: _int(v, a, 1), "tune_seed": _int, "tune_seeds": lambda v, a: _int(v, a, 1),
        "tune_repeats": lambda v, a: _int(v, a, 1), "jobs": lambda v, a: _int(v, a, 1),
        "threads": lambda v, a: _int(v, a, 1),
    }
    fields_ = {("sets" if k == "set" else k): fn(raw[k], at(k)) for k, fn in conv.items()
               if k in raw and k not in ("slurm", "halving")}
    for k, fn in (("slurm", _slurm), ("halving", _halving)):  # tables: errors name the key inside
        if k in raw:
            fields_[k] = fn(raw[k], at(k), lambda sub, k=k: at(f"{k}.{sub}"))
    return Comparison(name=_name(raw["name"], at("name")), task=_text(raw["task"], at("task")),
                      losses=_texts(raw["losses"], at("losses")), index=index, **fields_)


def read_hypothesis(raw: Any, path: Path, index: int) -> Hypothesis:
    """One ``[[hypothesis]]`` table (``index`` 1-based), types checked."""
    raw = _table(raw, path, "hypothesis", index, HYPOTHESIS_KEYS, ("name", "comparison", "a", "b", "metric"))
    at = lambda key: where(path, "hypothesis", index, raw.get("name"), key)  # noqa: E731
    claim = _text(raw.get("claim", "better"), at("claim"))
    if claim not in CLAIMS:
        raise _bad(at("claim"), f"{claim[:40]!r} is not a claim; valid: {', '.join(CLAIMS)} "
                                f"(better: A better than B; differs: A and B differ either way)")
    a, b = _text(raw["a"], at("a")), _text(raw["b"], at("b"))
    if a == b:
        raise _bad(at("b"), f"compares {a!r} with itself")
    return Hypothesis(name=_name(raw["name"], at("name")), comparison=_name(raw["comparison"], at("comparison")),
                      a=a, b=b, metric=_text(raw["metric"], at("metric")), index=index, claim=claim,
                      margin=_positive(raw["margin"], at("margin")) if "margin" in raw else None,
                      family=_name(raw["family"], at("family")) if "family" in raw else DEFAULT_FAMILY,
                      why=_text(raw.get("why", ""), at("why"), empty=True))


def _unique(names: list[tuple[str, int]], path: Path, kind: str) -> None:
    seen: dict[str, int] = {}
    for name, index in names:
        if name in seen:
            raise _bad(where(path, kind, index, name, "name"), f"the name is already used by [[{kind}]] {seen[name]}")
        seen[name] = index


def parse_study(text: str, path: Path) -> Study:
    """A study from the TOML ``text`` of ``path``: shapes, types and unique names checked;
    every hypothesis names a comparison of the file."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise UsageError(f"{path}: nests arrays or tables too deeply") from None
    odd = sorted(set(raw) - set(TOP_KEYS))
    if odd:
        raise UsageError(f"{path}: unknown top-level key {odd[0]!r}; a study holds [[comparison]] and [[hypothesis]] "
                         f"tables and an optional title")
    tables = {kind: raw.get(kind, []) for kind in ("comparison", "hypothesis")}
    for kind, items in tables.items():
        if not isinstance(items, list):
            raise UsageError(f"{path}: '{kind}' must be [[{kind}]] tables, not {_kind(items)}")
    if not tables["comparison"]:
        raise UsageError(f"{path}: no [[comparison]] table; a study runs at least one comparison")
    comparisons = tuple(read_comparison(t, path, i) for i, t in enumerate(tables["comparison"], 1))
    hypotheses = tuple(read_hypothesis(t, path, i) for i, t in enumerate(tables["hypothesis"], 1))
    _unique([(c.name, c.index) for c in comparisons], path, "comparison")
    _unique([(h.name, h.index) for h in hypotheses], path, "hypothesis")
    names = [c.name for c in comparisons]
    for h in hypotheses:
        if h.comparison not in names:
            raise _bad(where(path, "hypothesis", h.index, h.name, "comparison"),
                       f"no [[comparison]] named {h.comparison!r}; the study has: {', '.join(names)}")
    title = _text(raw["title"], f"{path}: key 'title'", empty=True) if "title" in raw else ""
    return Study(path=path, comparisons=comparisons, hypotheses=hypotheses, title=title)


def read_study(path: str | Path) -> Study:
    """The study file at ``path``, read bounded (a regular file of at most
    :data:`MAX_STUDY_BYTES`, UTF-8) and parsed by :func:`parse_study`."""
    path = Path(path).expanduser()
    try:
        data = read_bounded(path, limit=MAX_STUDY_BYTES, what="study file")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such study file") from None
    except ResultsFileError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_study(text, path)

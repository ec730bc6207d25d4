"""Results I/O: every file is written to a temporary name in the same folder and then
renamed, so a crash never leaves a half-written results file behind (os.replace is
atomic on POSIX and Windows). Temporary names are unique (``mkstemp``), so several
threads or processes writing the same file never collide: the last rename wins, and
every reader sees one whole version.

Results files are also read back as untrusted input (a folder someone mailed, a
hand-edited file): the readers here check each file's shape and raise
:class:`~cvloss.errors.ResultsFileError` with one line naming the file, and
:func:`plain_file_name` / :func:`file_inside` keep names a file gives from leading
outside its folder. Checkpoints and weights files are loaded with
``weights_only=True`` only, and a refusal is explained in our own words
(:func:`torch_load_refusal`)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import re
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch

from cvloss.errors import CheckpointError, CvlossError, ResultsFileError

_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:  # read once: os.umask is process-wide, toggling it races other threads
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return _UMASK


class WriteError(OSError, CvlossError):
    """A results file that could not be written (a full disk, a read-only folder, no
    permission), said in one line naming it: ``cannot write <file>: no space left on
    device``. Still an :class:`OSError` with the original ``errno`` and ``filename`` the
    file meant, so code that handles a folder it cannot write keeps doing so."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {(self.strerror or 'failed').lower()}"


def _write_error(path: Path, exc: OSError) -> WriteError:
    if isinstance(exc, WriteError):
        return exc
    return WriteError(exc.errno, exc.strerror or type(exc).__name__, str(path))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path next to ``path`` (same suffix, so writers that pick a format
    by extension, such as matplotlib's ``savefig``, keep working); on a clean exit it is
    renamed onto ``path``, on an error removed. ``with atomic_path(p) as tmp: fig.savefig(tmp)``.
    An :class:`OSError` on the way (ENOSPC from a write or fsync has no file name of its
    own) comes out as a :class:`WriteError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; results are meant to be shared like any file the user writes.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        _write_synced(tmp, data)


def _json_safe(obj: Any) -> Any:
    """NaN/Inf are not JSON: write them as null so any reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, (json.dumps(_json_safe(obj), indent=2, sort_keys=False) + "\n").encode())


# ---------------------------------------------------------------- bounded reads
#: The largest results file read (compare.json, summary.json, trial.json, runs.csv, ...).
#: The largest cvloss writes -- a tuned comparison of tens of losses at 10,000 candidates
#: each, or the runs.csv of a few thousand trials -- stay within a few MB; 32 MiB leaves
#: room for more, while a hostile file (or /dev/zero) cannot fill the memory.
MAX_RESULTS_BYTES = 32 * 2**20
#: The deepest JSON nesting read. cvloss's own files nest 7 deep at most (compare.json ->
#: tuning -> losses -> loss -> rungs -> rung -> candidates); deeper is no file of ours, and an
#: unbounded depth ends in a RecursionError in the parser or in any code that walks it.
MAX_JSON_DEPTH = 64


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _inside(path: Path, root: Path | None) -> Path:
    """The real path of ``path`` (links followed), refused unless it lies in ``root``'s real
    path -- by default ``path``'s own folder, so a file that is a link leads nowhere else."""
    try:
        real = path.resolve()
        folder = (Path(root) if root is not None else path.parent).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop (Python < 3.13)
        raise ResultsFileError(f"{path} cannot be followed ({exc}); not read") from None
    if real != folder and folder not in real.parents:
        raise ResultsFileError(f"{path} is a symbolic link out of {folder} (to {real}); not read")
    return real


def read_bounded(path: Path, root: Path | None = None, limit: int = MAX_RESULTS_BYTES,
                 what: str = "results file") -> bytes:
    """The bytes of ``path``, read only when it is a regular file (no FIFO, which would
    block the reader forever, no device such as /dev/zero, no folder) whose real path lies
    inside ``root`` (default: its own folder; links are followed only within it) and that
    holds at most ``limit`` bytes; else :class:`ResultsFileError`, one line naming the file.
    A missing file raises :class:`FileNotFoundError` as ``open`` would."""
    path = Path(path)
    real = _inside(path, root)
    st = os.stat(real)
    if not stat.S_ISREG(st.st_mode):
        raise ResultsFileError(f"{path} is {_kind_of(st.st_mode)}, not a regular {what}; not read")
    # O_NONBLOCK: should a FIFO be swapped in after the stat, opening it does not wait for a writer
    fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ResultsFileError(f"{path} is {_kind_of(st.st_mode)}, not a regular {what}; not read")
        if st.st_size > limit:
            raise ResultsFileError(f"{path} holds {st.st_size} bytes, more than a {what} may ({limit}); not read")
        data = fh.read(limit + 1)  # a file that grows while it is read is cut off here, not in memory
    if len(data) > limit:
        raise ResultsFileError(f"{path} holds more than the {limit} bytes a {what} may; not read")
    return data


def _depth_within(obj: Any, limit: int) -> bool:
    """Whether ``obj`` (parsed JSON) nests at most ``limit`` containers deep; iterative, so
    the check itself cannot overflow the stack."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return False
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return True


def read_json(path: Path, root: Path | None = None) -> Any:
    """A results JSON file, read through :func:`read_bounded` (a regular file inside
    ``root``, at most :data:`MAX_RESULTS_BYTES`) and nested at most :data:`MAX_JSON_DEPTH`
    deep; anything else is one :class:`ResultsFileError` line naming it."""
    data = read_bounded(path, root)
    try:
        obj = json.loads(data)
    except RecursionError:
        obj = None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        raise ResultsFileError(f"corrupt results file {path}: {_first_line(exc)}") from None
    else:
        if _depth_within(obj, MAX_JSON_DEPTH):
            return obj
    raise ResultsFileError(f"{path} nests deeper than {MAX_JSON_DEPTH} levels: no cvloss results file does; not read")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode())


def csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as CSV text: every key of any row is a column, in first-seen order; a
    float is written as its ``repr`` (exact round trip), NaN/Inf as ``nan``/``inf``."""
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format_cell(v) for k, v in row.items()})
    return buf.getvalue()


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    write_text(path, csv_text(rows))


def _format_cell(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    return v


def read_csv(path: Path, root: Path | None = None) -> list[dict[str, str]]:
    """The rows of a results CSV (``metrics.csv``, ``runs.csv``) as dicts, read through
    :func:`read_bounded` (a regular file inside ``root``, bounded); a file that is not
    UTF-8 CSV is one :class:`ResultsFileError` line naming it."""
    data = read_bounded(path, root)
    try:
        return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFileError(f"corrupt results file {path}: {_first_line(exc)}") from None


def save_checkpoint(path: Path, state: dict, keep_previous: Path | None = None) -> None:
    """Write ``state`` atomically; with ``keep_previous``, the checkpoint it replaces is
    first renamed there, so a good one survives whatever happens to the new file."""
    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_path(path) as tmp:
        _write_synced(tmp, buf.getvalue())
        if keep_previous is not None and Path(path).exists():
            os.replace(path, keep_previous)


# ---------------------------------------------------------------- torch files
# Modules whose globals a plain torch.save of tensors, dicts and numbers refers to.
_TORCH_SAFE_MODULES = ("torch", "collections", "_codecs", "numpy")


def _pickle_globals(data: bytes) -> list[str]:
    """``module.name`` of every global a pickle stream would import (GLOBAL, INST,
    STACK_GLOBAL), read with pickletools -- nothing is executed. Stops quietly where the
    stream ends or breaks."""
    found, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # truncated or not a pickle: what was read so far counts
        pass
    return found


def _foreign_globals(path: Path) -> list[str]:
    """Globals outside torch's plain-data set that the pickle(s) of ``path`` import."""
    data = Path(path).read_bytes()
    streams = [data]
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                streams = [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
        except (zipfile.BadZipFile, OSError, ValueError):
            streams = []
    names = []
    for stream in streams:
        for g in _pickle_globals(stream):
            if g.split(".")[0] not in _TORCH_SAFE_MODULES and g not in names:
                names.append(g)
    return names


def torch_load_refusal(path: Path, exc: BaseException) -> tuple[str, bool]:
    """Why ``torch.load(path, weights_only=True)`` failed, in one line of our own words,
    and whether the file holds code. torch's own message is not passed on: it advises
    ``weights_only=False``, which would run a hostile file's code."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        return f"cannot be read ({(err.strerror or type(err).__name__).lower()})", False
    if size == 0:
        return "it is empty (0 bytes)", False
    m = re.search(r"unsupported GLOBAL ([\w.]+?)(?: whose|\s|$)", str(exc))
    names = [m.group(1)] if m else []
    if not names and isinstance(exc, pickle.UnpicklingError):
        names = _foreign_globals(path)
    if names:
        return (f"it holds code (loading it would import {', '.join(names[:3])}), so it was not loaded; "
                "use only files you made or trust"), True
    return f"it is corrupt or truncated ({size} bytes that torch cannot read as tensors and plain data)", False


#: The largest torch file read: ImageNet VGG19 weights are 548 MB and a checkpoint of the
#: largest reference model (CycleGAN at the full budget, with Adam's two moments) a few
#: hundred MB; a file past 4 GiB is no file of ours, and /dev/zero could fill the memory.
MAX_TORCH_BYTES = 4 * 2**30


def _open_torch_file(path: Path, what: str, root: Path | None, contained: bool):
    """An open binary file of ``path`` when it is a regular file (a FIFO would block
    torch.load forever, a device such as /dev/zero never ends) of at most
    :data:`MAX_TORCH_BYTES`, and -- when ``contained`` -- whose real path lies in ``root``
    (default: its own folder); else :class:`CheckpointError`, one line naming it."""
    path = Path(path)
    try:
        real = _inside(path, root) if contained else path
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except ResultsFileError as exc:
        raise CheckpointError(f"{what} {path} refused: it {str(exc).removeprefix(f'{path} ')}") from None
    except OSError as exc:
        raise CheckpointError(f"{what} {path} refused: it cannot be read "
                              f"({(exc.strerror or type(exc).__name__).lower()})") from None
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    problem = (f"is {_kind_of(st.st_mode)}, not a regular file" if not stat.S_ISREG(st.st_mode)
               else f"holds {st.st_size} bytes, more than a {what} may ({MAX_TORCH_BYTES})"
               if st.st_size > MAX_TORCH_BYTES else None)
    if problem is not None:
        fh.close()
        raise CheckpointError(f"{what} {path} refused: it {problem}; not read")
    return fh


def load_torch_file(path: Path, what: str = "checkpoint", root: Path | None = None, contained: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU of a regular file of at most
    :data:`MAX_TORCH_BYTES` (inside ``root`` when ``contained``), or a
    :class:`CheckpointError` whose one-line message names ``what``, the file, and the reason."""
    with _open_torch_file(path, what, root, contained) as fh:
        try:
            import warnings

            with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
                warnings.simplefilter("ignore", UserWarning)
                return torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:
            reason, holds_code = torch_load_refusal(path, exc)
            raise CheckpointError(f"{what} {path} refused: {reason}", holds_code=holds_code) from None


def load_checkpoint(path: Path, root: Path | None = None) -> dict:
    """Load with ``weights_only=True``: a checkpoint holds tensors and plain data only, in a
    regular file inside ``root`` (default: its own folder; a link leads nowhere else).
    Whether it fits its trial is the trainer's check (``_apply_checkpoint``)."""
    state = load_torch_file(path, root=root, contained=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} refused: it holds a {type(state).__name__}, not a checkpoint")
    return state


# ---------------------------------------------------------------- untrusted results files
_NUMBER = (int, float)


def _is_number(v: Any, nullable: bool = True) -> bool:
    return (v is None and nullable) or (isinstance(v, _NUMBER) and not isinstance(v, bool))


def _fail(path: Path, what: str, detail: str) -> ResultsFileError:
    return ResultsFileError(f"{path} is not a valid {what}: {detail}")


def read_json_object(path: Path, what: str, root: Path | None = None) -> dict[str, Any]:
    """A JSON file that must hold an object (``what`` names the kind in the error)."""
    obj = read_json(path, root)
    if not isinstance(obj, dict):
        raise _fail(path, what, f"it holds a JSON {type(obj).__name__}, not an object")
    return obj


def _check_metric_map(path: Path, what: str, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _fail(path, what, f"{key!r} must be an object of metric values")
    for m, v in value.items():
        if not _is_number(v):
            raise _fail(path, what, f"{key}[{m!r}] = {v!r} is not a number")


#: Version of summary.json's contents. 3: schema 2 plus ``degenerate`` and
#: ``degenerate_on_test`` (the task's degenerate rule on val -- the status ``degenerate``
#: -- and on test -- a note; null when the rule passed). 2: ``metrics`` are measured on the
#: test split, with ``val_metrics``, ``untrained`` (test), ``split`` and the compute
#: fields; 1 (no ``schema`` key): ``metrics`` were measured on what was then the val split.
SUMMARY_SCHEMA = 3
#: The schemas this cvloss reads: 2 is 3 without the degenerate fields (a trial that
#: predates the rule; a report may apply the rule's numbers part to it, as a note).
READABLE_SUMMARY_SCHEMAS = (2, 3)


def check_summary(obj: Any, path: Path) -> dict[str, Any]:
    """A trial's ``summary.json``: an object of this :data:`SUMMARY_SCHEMA` with a
    ``status`` string and ``metrics`` mapping names to numbers (or null); optional
    ``reference`` / ``at_init`` / ``untrained`` / ``val_metrics`` blocks too."""
    what = "trial summary"
    if not isinstance(obj, dict):
        raise _fail(path, what, f"it holds a JSON {type(obj).__name__}, not an object")
    if not isinstance(obj.get("status"), str):
        raise _fail(path, what, "no 'status' string")
    if obj.get("schema") not in READABLE_SUMMARY_SCHEMAS or isinstance(obj.get("schema"), bool):
        raise ResultsFileError(
            f"{path}: trial summary of schema {obj.get('schema', 1)!r}, this cvloss reads schemas "
            f"{' and '.join(map(str, READABLE_SUMMARY_SCHEMAS))} (older summaries scored the final model on what is "
            f"now the val split); rerun the trial with this version (delete its folder) or read it with the version "
            f"that wrote it")
    for key in ("degenerate", "degenerate_on_test"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise _fail(path, what, f"{key!r} must be a string (the reason) or null")
    _check_metric_map(path, what, "metrics", obj.get("metrics", {}))
    for block in ("at_init", "untrained", "val_metrics"):
        if obj.get(block) is not None:
            _check_metric_map(path, what, block, obj[block])
    refs = obj.get("reference") or {}
    if not isinstance(refs, dict):
        raise _fail(path, what, "'reference' must be an object")
    for name, vals in refs.items():
        _check_metric_map(path, what, f"reference[{name!r}]", vals)
    if obj.get("feature_weights") is not None and not isinstance(obj["feature_weights"], str):
        raise _fail(path, what, "'feature_weights' must be a string")
    return obj


def read_summary(path: Path, root: Path | None = None) -> dict[str, Any]:
    return check_summary(read_json(path, root), path)


def check_untrained(obj: Any, path: Path, names: Iterable[str]) -> dict[str, float | None]:
    """A trial's ``untrained.json``: an object whose keys are exactly the task's metric
    ``names`` (what its ``evaluate`` reports), each a finite number or null (a NaN is
    written as null); else :class:`ResultsFileError` naming the file and what is wrong."""
    what = "untrained-model metrics file"
    if not isinstance(obj, dict):
        raise _fail(path, what, f"it holds a JSON {type(obj).__name__}, not an object")
    names = set(names)
    if set(obj) != names:
        odd, missing = sorted(set(obj) - names)[:3], sorted(names - set(obj))[:3]
        raise _fail(path, what, "its keys are not this task's metrics"
                    + (f" (not a metric: {', '.join(repr(k[:40]) for k in odd)})" if odd else "")
                    + (f" (missing: {', '.join(missing)})" if missing else ""))
    for k, v in obj.items():
        if not (v is None or isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53
                or isinstance(v, float) and math.isfinite(v)):
            raise _fail(path, what, f"{k[:40]!r} = {str(v)[:40]!r} is not a finite number or null")
    return obj


_ROW_NUMBERS = ("mean", "ci95", "diff_vs_baseline", "diff_ci95", "p_value")
_ROW_COUNTS = ("n", "n_pairs", "diverged", "collapsed", "degenerate", "crashed", "missing")


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def check_comparison(obj: Any, path: Path) -> dict[str, Any]:
    """A ``compare.json``: its fields have the types the report and the tables read."""
    what = "comparison file"
    if not isinstance(obj, dict):
        raise _fail(path, what, f"it holds a JSON {type(obj).__name__}, not an object")
    missing = [k for k in ("task", "dataset", "budget", "losses", "seeds", "baseline", "metrics", "rows") if k not in obj]
    if missing:
        raise _fail(path, what, f"missing {', '.join(missing)}")
    for key in ("task", "dataset", "budget", "baseline"):
        if not isinstance(obj[key], str):
            raise _fail(path, what, f"{key!r} must be a string")
    if not _is_str_list(obj["losses"]) or not obj["losses"]:
        raise _fail(path, what, "'losses' must be a non-empty list of loss specs")
    seeds = obj["seeds"]
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                      for s in seeds)) or len(set(seeds)) != len(seeds):
        raise _fail(path, what, "'seeds' must be a list of distinct non-negative integers")
    for key in ("metrics", "references"):
        if not _is_str_list(obj.get(key, [])):
            raise _fail(path, what, f"{key!r} must be a list of strings")
    if obj.get("feature_weights") is not None and not _is_str_list(obj["feature_weights"]):
        raise _fail(path, what, "'feature_weights' must be a list of strings or null")
    if obj.get("primary_metric") is not None and not isinstance(obj["primary_metric"], str):
        raise _fail(path, what, "'primary_metric' must be a string")
    directions = obj.get("directions", {})
    if not isinstance(directions, dict) or not all(isinstance(v, bool) for v in directions.values()):
        raise _fail(path, what, "'directions' must map metrics to true/false")
    status = obj.get("status", {})
    if not isinstance(status, dict) or not all(_is_str_list(v) for v in status.values()):
        raise _fail(path, what, "'status' must map losses to lists of strings")
    plots = obj.get("plots", {})
    if not isinstance(plots, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in plots.items()):
        raise _fail(path, what, "'plots' must map names to file names")
    if not isinstance(obj["rows"], list):
        raise _fail(path, what, "'rows' must be a list")
    for k, row in enumerate(obj["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("loss"), str) or not isinstance(row.get("metric"), str) \
                or "n" not in row:
            raise _fail(path, what, f"rows[{k}] must be an object with 'loss', 'metric' and 'n'")
        bad = [f for f in _ROW_NUMBERS if not _is_number(row.get(f))]
        bad += [f for f in _ROW_COUNTS if not (_is_number(row.get(f, 0), nullable=False) and row.get(f, 0) >= 0)]
        if bad:
            raise _fail(path, what, f"rows[{k}] has non-numeric {', '.join(bad)}")
        if "mean" not in row:  # the tables read it by name (null: no value)
            raise _fail(path, what, f"rows[{k}] has no 'mean'")
    _check_comparison_stats(obj, path)
    _check_intervals(obj, path)
    if obj.get("tuning") is not None:
        check_tuning(obj["tuning"], obj["losses"], path)
    return obj


def _map_of(value: Any, item_ok) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and item_ok(v) for k, v in value.items())


def _list_of(value: Any, item_ok) -> bool:
    return isinstance(value, list) and all(item_ok(v) for v in value)


def _is_text(v: Any, nullable: bool = True) -> bool:
    return (v is None and nullable) or isinstance(v, str)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _compute_ok(c: Any) -> bool:
    """One loss's ``compute`` record: numbers (or null), and the two words it carries."""
    return c is None or _map_of(c, lambda v: True) and all(
        _is_text(v) if k in _COMPUTE_TEXT else _is_number(v) for k, v in c.items())


def _provenance_ok(p: Any) -> bool:
    scalar = lambda v: v is None or isinstance(v, (str, int, float, bool))  # noqa: E731
    return _map_of(p, lambda v: True) and _list_of(p.get("combinations", []), lambda c: _map_of(c, scalar)) \
        and _list_of(p.get("commits", []), lambda c: isinstance(c, str)) \
        and all(isinstance(p.get(k, False), bool) for k in ("mixed", "dirty"))


def _fold_ok(f: Any) -> bool:
    return _map_of(f, lambda v: True) and _is_count(f.get("seed")) and _is_number(f.get("mean")) \
        and _is_number(f.get("se")) and _is_text(f.get("protocol"))


_COMPUTE_TEXT = ("optimizer", "peak_mem_how")
# The statistics and records compare.py writes beside the rows, each optional (older
# comparisons lack some): what each must be, in the words of the error line.
_STATS_FIELDS: dict[str, tuple[Any, str]] = {
    "split": (_is_text, "a string"),
    "bounds": (lambda v: _map_of(v, lambda b: _list_of(b, _is_number) and len(b) == 2),
               "an object of [low, high] pairs of numbers or null"),
    "compute": (lambda v: _map_of(v, _compute_ok), "an object of per-loss objects of numbers"),
    "success": (lambda v: _map_of(v, _is_number), "an object of numbers"),
    "best": (lambda v: _map_of(v, _is_text), "an object of loss names or null"),
    "mde": (lambda v: _map_of(v, _is_number), "an object of numbers or null"),
    "seeds_needed": (lambda v: _map_of(v, lambda n: isinstance(n, int) and not isinstance(n, bool)),
                     "an object of whole numbers"),
    "alpha": (lambda v: _is_number(v, nullable=False), "a number"),
    "power": (lambda v: _is_number(v, nullable=False), "a number"),
    "mde_level": (lambda v: _is_number(v, nullable=False), "a number"),
    "target_effect": (_is_number, "a number or null"),
    "itt": (lambda v: _map_of(v, lambda x: True) and _map_of(v.get("best", {}), _is_text)
            and _map_of(v.get("mde", {}), _is_number), "an object with 'best' (loss names) and 'mde' (numbers)"),
    "provenance": (_provenance_ok, "an object with 'combinations' (objects), 'commits' (strings), 'mixed' and "
                                   "'dirty' (true/false)"),
    "folds": (lambda v: _map_of(v, lambda fs: _list_of(fs, _fold_ok)),
              "an object of lists of {seed, mean, se, protocol}"),
    # per loss, one entry per seed: the degenerate reason (null: none), on val and on test
    "degenerate": (lambda v: _map_of(v, lambda rs: _list_of(rs, _is_text)), "an object of lists of strings or null"),
    "degenerate_on_test": (lambda v: _map_of(v, lambda rs: _list_of(rs, _is_text)),
                           "an object of lists of strings or null"),
    # per loss, one entry per seed: a trial written before the degenerate rule (its test
    # note is the rule applied to its stored numbers; its status stays as written)
    "degenerate_predates": (lambda v: _map_of(v, lambda rs: _list_of(rs, lambda b: isinstance(b, bool))),
                            "an object of lists of true/false"),
    # per loss, groups of seeds whose trials are identical replicates
    "identical_replicates": (lambda v: _map_of(v, lambda gs: _list_of(gs, lambda g: _list_of(g, _is_count))),
                             "an object of lists of seed lists"),
    "replicate_unit": (_is_text, "a string"),
    "degenerate_rule": (_is_text, "a string"),
    "mde_how": (_is_text, "a string"),
}


def _check_comparison_stats(obj: dict[str, Any], path: Path) -> None:
    """The optional fields of :data:`_STATS_FIELDS` have their types, and ``best`` names
    losses of the comparison: the tables index and format them without looking again."""
    for key, (ok, expected) in _STATS_FIELDS.items():
        if key in obj and not ok(obj[key]):
            raise _fail(path, "comparison file", f"{key!r} must be {expected}")
    for key, best in (("best", obj.get("best")), ("itt.best", (obj.get("itt") or {}).get("best"))):
        strangers = sorted({v for v in (best or {}).values() if v is not None and v not in obj["losses"]})
        if strangers:
            raise _fail(path, "comparison file",
                        f"{key!r} names {', '.join(map(repr, strangers))}, not a loss of 'losses'")


def _check_intervals(obj: dict[str, Any], path: Path) -> None:
    """Each metric's bounds are ``low <= high``, a row's CI half-widths are >= 0 and its
    mean lies within its metric's bounds: the plots draw whiskers from them, and a
    negative one is no interval (matplotlib refuses it)."""
    bounds = obj.get("bounds") or {}
    for metric, pair in bounds.items():
        if None not in pair and pair[0] > pair[1]:
            raise _fail(path, "comparison file", f"bounds[{metric!r}] = {pair} has low above high")
    for k, row in enumerate(obj["rows"]):
        for key in ("ci95", "diff_ci95"):
            if row.get(key) is not None and row[key] < 0:
                raise _fail(path, "comparison file", f"rows[{k}] has a negative {key} ({row[key]!r})")
        low, high = bounds.get(row["metric"]) or (None, None)
        mean = row["mean"]
        if mean is not None and ((low is not None and mean < low) or (high is not None and mean > high)):
            raise _fail(path, "comparison file",
                        f"rows[{k}] mean {mean!r} lies outside bounds[{row['metric']!r}] = [{low}, {high}]")


def check_tuning(t: Any, losses: list[str], path: Path) -> dict[str, Any]:
    """A tuned comparison's search record (``compare.json``'s ``tuning``, written by
    :func:`cvloss.run.tuning.run_tuned_comparison`): the space as ``NAME=dist(...)`` texts,
    whole ``trials`` and ``sampler_seed``, and per loss of ``losses`` ``trials`` candidates
    (objects of the same names), val scores and statuses, a ``chosen_index`` among them and
    the chosen values, so the report can index every list without looking again."""
    what = "comparison file"

    def bad(detail: str) -> ResultsFileError:
        return _fail(path, what, f"'tuning' {detail}")

    if not isinstance(t, dict):
        raise bad("must be an object")
    if not _list_of(t.get("space"), lambda d: isinstance(d, str) and "=" in d):
        raise bad("'space' must be a list of NAME=dist(...) texts")
    trials = t.get("trials")
    if not (_is_count(trials) and trials >= 1):
        raise bad("'trials' must be a whole number >= 1")
    if not (isinstance(t.get("sampler_seed"), int) and not isinstance(t.get("sampler_seed"), bool)):
        raise bad("'sampler_seed' must be a whole number")
    for key in ("sampler", "metric", "hash", "tuning_seeds"):
        if not isinstance(t.get(key), str):
            raise bad(f"{key!r} must be a string")
    if not isinstance(t.get("higher_is_better", True), bool):
        raise bad("'higher_is_better' must be true or false")
    per_loss = t.get("losses")
    if not isinstance(per_loss, dict) or any(spec not in per_loss for spec in losses):
        raise bad("'losses' must hold a record for every loss of the comparison")
    scalar = lambda v: isinstance(v, (str, int, float, bool))  # noqa: E731
    for key in ("tune_seeds", "repeats", "trial_epochs"):  # seeds, repeats, halving; absent: an older record (K = 1)
        if key in t and not _is_count(t[key]):
            raise bad(f"{key!r} must be a whole number")
    if not _list_of(t.get("rungs", []), _is_count) or not _is_text(t.get("secondary_metric")) \
            or not _is_text(t.get("search_hash")) or not (t.get("halving") is None or _map_of(t["halving"], _is_count)):
        raise bad("'rungs' must be whole numbers, 'secondary_metric' and 'search_hash' strings, 'halving' an object")
    for spec in losses:
        rec = per_loss[spec]
        where = f"losses[{spec!r}]"
        if not isinstance(rec, dict):
            raise bad(f"{where} must be an object")
        cands = rec.get("candidates")
        if not _list_of(cands, lambda c: _map_of(c, scalar)) or len(cands) != trials:
            raise bad(f"{where}['candidates'] must be {trials} objects of values")
        if any(set(c) != set(cands[0]) for c in cands):  # a loss trains its own dimensions: the same in each
            raise bad(f"{where}['candidates'] must all name the same parameters")
        _check_search_extras(rec, trials, lambda detail: bad(f"{where}{detail}"))
        if not _list_of(rec.get("val_scores"), _is_number) or len(rec["val_scores"]) != trials:
            raise bad(f"{where}['val_scores'] must be {trials} numbers or null")
        if not _list_of(rec.get("status"), lambda v: isinstance(v, str)) or len(rec["status"]) != trials:
            raise bad(f"{where}['status'] must be {trials} strings")
        index = rec.get("chosen_index")
        if not (_is_count(index) and index < trials):
            raise bad(f"{where}['chosen_index'] must be a whole number below {trials}")
        if not _map_of(rec.get("chosen"), scalar) or set(rec["chosen"]) != set(cands[index]):
            raise bad(f"{where}['chosen'] must be an object of the candidates' parameters")
        if not isinstance(rec.get("trained_spec"), str) or not _is_number(rec.get("cost_s"), nullable=False) \
                or not _list_of(rec.get("flags"), lambda v: isinstance(v, str)):
            raise bad(f"{where} needs 'trained_spec' (a string), 'cost_s' (a number) and 'flags' (strings)")
    return t


def _check_search_extras(rec: dict[str, Any], trials: int, bad) -> None:
    """The optional parts of one loss's search record (tuning seeds, repeats, halving), each what the report
    indexes: per candidate SE and secondary score, the set within 1 SE and the repeats'
    winners (candidate indices), the repeats' wins and spread, each halving rung."""
    index = lambda v: _is_count(v) and v < trials  # noqa: E731
    for key in ("val_se", "secondary_scores"):
        if key in rec and not (_list_of(rec[key], _is_number) and len(rec[key]) == trials):
            raise bad(f"[{key!r}] must be {trials} numbers or null")
    if "indistinguishable" in rec and not _list_of(rec["indistinguishable"], index):
        raise bad("['indistinguishable'] must be candidate indices")
    if "trained_epochs" in rec and not _is_count(rec["trained_epochs"]):
        raise bad("['trained_epochs'] must be a whole number")
    st = rec.get("stability")
    value = lambda x: isinstance(x, (str, int, float)) and not isinstance(x, bool)  # noqa: E731
    if st is not None and not (isinstance(st, dict) and _list_of(st.get("winners"), index)
                               and _map_of(st.get("wins"), _is_count)
                               and _map_of(st.get("spread"), lambda v: _list_of(v, value))):
        raise bad("['stability'] must hold 'winners' (indices), 'wins' (counts) and 'spread' (lists of values)")
    rung_ok = lambda r: (  # noqa: E731
        isinstance(r, dict) and _is_count(r.get("epochs")) and _list_of(r.get("candidates"), index)
        and _list_of(r.get("scores"), _is_number) and len(r["scores"]) == len(r["candidates"]))
    if "rungs" in rec and not _list_of(rec["rungs"], rung_ok):
        raise bad("['rungs'] must be objects of 'epochs', 'candidates' (indices) and their 'scores'")


def read_comparison(path: Path, root: Path | None = None) -> dict[str, Any]:
    return check_comparison(read_json(path, root), path)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")


def plain_file_name(name: Any) -> bool:
    """True for a bare image file name: no folder part, not ``.``/``..``, not absolute,
    no drive or NUL (a name read from a results file must not lead anywhere else)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\:\0")
            and name.lower().endswith(_IMAGE_SUFFIXES))


def file_inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` (``folder`` resolved) when ``name`` is a plain file name
    (:func:`plain_file_name`) of a regular file of ``folder`` itself; else None. A link
    is refused even when it points inside: a symbolic link can lead anywhere, and a hard
    link (``st_nlink > 1``) may be a file of another folder, so only the folder's own
    files are shown or embedded. Readers check again on the open file
    (:func:`cvloss.report.html.data_uri`)."""
    if not plain_file_name(name):
        return None
    path = Path(folder).resolve() / name  # a plain name: its parent is the folder
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return path if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else None


# ---------------------------------------------------------------- loss folder names
#: One term of a readable slug: ``[<weight>x]<name>[-<key>=<value>...]`` (see :func:`_unslug`).
_SLUG_TERM = re.compile(r"(?:(?P<weight>[0-9][0-9.e+-]*)x)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:-(?P<args>.+))?")
#: Where terms part: a ``+`` that is no exponent's sign (``1e+39xce`` is one term).
_SLUG_TERM_START = re.compile(r"(?<![0-9]e)\+")
_SLUG_ARG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^=]+")
#: Where one ``-<key>=<value>`` of a slug begins: a ``-`` followed by a name and ``=``.
_SLUG_ARG_START = re.compile(r"-(?=[A-Za-z_][A-Za-z0-9_]*=)")
#: The tail every hashed slug ends with, and no kept readable slug may end with.
_SLUG_HASH_TAIL = re.compile(r"-[0-9a-f]{8}$")


def _readable_slug(spec: str) -> str:
    """``ce+0.1*topo(mu=0.5)`` -> ``ce+0.1xtopo-mu=0.5``: ``*`` -> ``x``, ``(`` and ``,``
    -> ``-``, ``)`` dropped, any other character outside ``[A-Za-z0-9_.+=-]`` -> ``_``
    (so ``/``, ``"``, ``é`` never reach a folder name). Lossy in general."""
    slug = spec.replace("*", "x").replace("(", "-").replace(")", "").replace(",", "-")
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", slug)


def _unslug(slug: str) -> str | None:
    """The one canonical spec that a readable slug reads as, or None: terms split on
    ``+`` (not an exponent's), each ``[<weight>x]<name>`` and its ``-<key>=<value>``
    arguments. A function of the slug alone -- that is what makes the slugs
    :func:`loss_slug` keeps injective."""
    terms = []
    for piece in _SLUG_TERM_START.split(slug):
        m = _SLUG_TERM.fullmatch(piece)
        if m is None:
            return None
        call = m["name"]
        if m["args"] is not None:
            args = _SLUG_ARG_START.split("-" + m["args"])[1:]
            if not args or not all(_SLUG_ARG.fullmatch(a) for a in args):
                return None
            call += "(" + ",".join(args) + ")"
        terms.append(call if m["weight"] is None else f"{m['weight']}*{call}")
    return "+".join(terms)


def loss_slug(spec: str) -> str:
    """The folder name of a canonical loss spec; two specs never share one.

    The readable form (``ce+0.1*topo(mu=0.5)`` -> ``ce+0.1xtopo-mu=0.5``,
    :func:`_readable_slug`) is kept when it is at most 80 characters and reads back as
    exactly ``spec`` (:func:`_unslug`), so every such name stands for one spec: the names
    of existing results folders stay as they were. A readable form that would lose
    information -- ``weights=/x/a/b.pt`` and ``weights=/x/a_b.pt`` both read
    ``weights=_x_a_b.pt``; ``lossé`` and ``lossè`` both ``loss_`` -- holds an upper-case
    letter (``mining=A`` and ``mining=a`` are one folder where case is ignored) or is too long is
    ``<first 60 characters>-<8 hex of sha1(spec)>`` (the form long specs always had). No
    kept name ends like that, so the two kinds never meet; two hashed names meet only on
    a 32-bit hash collision, and even then the trial's recorded identity tells them apart
    (:func:`cvloss.run.trainer.identity_mismatch`)."""
    readable = _readable_slug(spec)
    # lower case only: on a case-insensitive file system (macOS, Windows) ``A`` and ``a`` meet
    if (len(readable) <= 80 and readable == readable.lower() and _unslug(readable) == spec
            and not _SLUG_HASH_TAIL.search(readable)):
        return readable
    return readable[:60] + "-" + hashlib.sha1(spec.encode()).hexdigest()[:8]

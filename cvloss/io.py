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
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch

from cvloss.errors import CheckpointError, ResultsFileError

_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:  # read once: os.umask is process-wide, toggling it races other threads
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return _UMASK


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path next to ``path`` (same suffix, so writers that pick a format
    by extension, such as matplotlib's ``savefig``, keep working); on a clean exit it is
    renamed onto ``path``, on an error removed. ``with atomic_path(p) as tmp: fig.savefig(tmp)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; results are meant to be shared like any file the user writes.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"corrupt results file {path}: {exc}") from None


def write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode())


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format_cell(v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def _format_cell(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    return v


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


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


def load_torch_file(path: Path, what: str = "checkpoint") -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU, or a :class:`CheckpointError`
    whose one-line message names ``what``, the file, and the reason."""
    try:
        import warnings

        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason, holds_code = torch_load_refusal(path, exc)
        raise CheckpointError(f"{what} {path} refused: {reason}", holds_code=holds_code) from None


def load_checkpoint(path: Path) -> dict:
    """Load with ``weights_only=True``: a checkpoint holds tensors and plain data only."""
    state = load_torch_file(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} refused: it holds a {type(state).__name__}, not a checkpoint")
    return state


# ---------------------------------------------------------------- untrusted results files
_NUMBER = (int, float)


def _is_number(v: Any, nullable: bool = True) -> bool:
    return (v is None and nullable) or (isinstance(v, _NUMBER) and not isinstance(v, bool))


def _fail(path: Path, what: str, detail: str) -> ResultsFileError:
    return ResultsFileError(f"{path} is not a valid {what}: {detail}")


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold an object (``what`` names the kind in the error)."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise _fail(path, what, f"it holds a JSON {type(obj).__name__}, not an object")
    return obj


def _check_metric_map(path: Path, what: str, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _fail(path, what, f"{key!r} must be an object of metric values")
    for m, v in value.items():
        if not _is_number(v):
            raise _fail(path, what, f"{key}[{m!r}] = {v!r} is not a number")


#: Version of summary.json's contents. 2: ``metrics`` are measured on the test split, with
#: ``val_metrics``, ``untrained`` (test), ``split`` and the compute fields; 1 (no ``schema``
#: key): ``metrics`` were measured on what was then the val split.
SUMMARY_SCHEMA = 2


def check_summary(obj: Any, path: Path) -> dict[str, Any]:
    """A trial's ``summary.json``: an object of this :data:`SUMMARY_SCHEMA` with a
    ``status`` string and ``metrics`` mapping names to numbers (or null); optional
    ``reference`` / ``at_init`` / ``untrained`` / ``val_metrics`` blocks too."""
    what = "trial summary"
    if not isinstance(obj, dict):
        raise _fail(path, what, f"it holds a JSON {type(obj).__name__}, not an object")
    if not isinstance(obj.get("status"), str):
        raise _fail(path, what, "no 'status' string")
    if obj.get("schema") != SUMMARY_SCHEMA:
        raise ResultsFileError(
            f"{path}: trial summary of schema {obj.get('schema', 1)!r}, this cvloss reads schema {SUMMARY_SCHEMA} "
            f"(older summaries scored the final model on what is now the val split); rerun the trial with this "
            f"version (delete its folder) or read it with the version that wrote it")
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


def read_summary(path: Path) -> dict[str, Any]:
    return check_summary(read_json(path), path)


_ROW_NUMBERS = ("mean", "ci95", "diff_vs_baseline", "diff_ci95", "p_value")
_ROW_COUNTS = ("n", "n_pairs", "diverged", "collapsed", "crashed", "missing")


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
    return obj


def read_comparison(path: Path) -> dict[str, Any]:
    return check_comparison(read_json(path), path)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")


def plain_file_name(name: Any) -> bool:
    """True for a bare image file name: no folder part, not ``.``/``..``, not absolute,
    no drive or NUL (a name read from a results file must not lead anywhere else)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\:\0")
            and name.lower().endswith(_IMAGE_SUFFIXES))


def file_inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` when ``name`` is a plain file name of a regular file whose real
    path (links followed) lies in ``folder``; else None."""
    if not plain_file_name(name):
        return None
    folder = Path(folder).resolve()
    path = (folder / name).resolve()
    return path if path.parent == folder and path.is_file() else None


def loss_slug(spec: str) -> str:
    """A folder name for a canonical loss spec: ``ce+0.1*topo(mu=0.5)`` -> ``ce+0.1xtopo-mu=0.5``.

    Long specs keep a readable prefix and an 8-hex hash so two specs never share a folder.
    """
    slug = spec.replace("*", "x").replace("(", "-").replace(")", "").replace(",", "-")
    slug = re.sub(r"[^A-Za-z0-9_.+=-]", "_", slug)
    if len(slug) > 80:
        slug = slug[:60] + "-" + hashlib.sha1(spec.encode()).hexdigest()[:8]
    return slug

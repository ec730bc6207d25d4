"""The dataset catalog (``datasets.toml``), where data lives, and :func:`load_dataset`.

Data directory: ``--data-dir`` > ``$CVLOSS_DATA`` > ``platformdirs.user_cache_dir("cvloss")``;
dataset ``NAME`` lives in ``<data-dir>/NAME/`` unless an adopted copy is used in place
(:mod:`cvloss.data.adopt`): :func:`dataset_root` is what a loader reads,
:func:`data_cache_dir` where derived caches go. A user catalog (``--catalog FILE``,
``$CVLOSS_CATALOG``) adds entries; a folder path is a dataset (:mod:`cvloss.data.folders`).

A catalog is data, never code: ``loader`` names a registered loader (:data:`LOADERS`,
:func:`register_loader`, the :data:`LOADER_ENTRY_POINTS` group); a ``module:function``
is imported only from a trusted catalog (cvloss's, ``--trust-catalog`` via
:data:`TRUST_ENV`, ``trusted=True``). Names pass :func:`check_name`, folders stay in the
data dir (:func:`dataset_dir`), a catalog is a regular file <= :data:`MAX_CATALOG_BYTES`
with every field type-checked. The rules in full: ``docs/data.md``, "Where data lives".
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import inspect
import os
import re
import stat
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable, Literal, TypeVar

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 needs the backport
    import tomli as tomllib  # type: ignore[no-redef]

from cvloss.data import adopt
from cvloss.data.cache import DATA_SUBDIR, cache_dir, cached_load
from cvloss.data.folders import _NAME, check_name
from cvloss.data.types import SPLITS, DatasetError, check_split

__all__ = [
    "SPLITS", "ENV_VAR", "DatasetError", "FileInfo", "DatasetInfo", "catalog_path",
    "load_catalog", "get_dataset", "datasets_for", "default_dataset", "resolve_data_dir",
    "dataset_dir", "extraction_marker", "missing_layout", "presence_problem", "is_present",
    "require_present", "ensure_present", "dataset_root", "adopted_copy", "data_cache_dir", "copy_note",
    "RESERVED_NAMES",
    "load_dataset", "CATALOG_ENV", "user_catalog_path", "TRUST_ENV", "MAX_CATALOG_BYTES",
    "LOADERS", "LOADER_ENTRY_POINTS", "register_loader", "loader_names", "resolve_loader", "check_name",
    "user_catalog_digest", "URL_SCHEMES", "DATASETS", "register_dataset",
]

from cvloss.registry import Registry  # noqa: E402
from cvloss.task_registry import TASKS, task_names, task_spec  # noqa: E402

ENV_VAR = "CVLOSS_DATA"
CATALOG_ENV = "CVLOSS_CATALOG"
#: the sha256 (hex) of the catalog bytes that --trust-catalog trusts; set by the CLI for the
#: run and inherited by its workers; bytes that differ (an edited file) are not trusted
TRUST_ENV = "CVLOSS_TRUSTED_CATALOG"
LOADER_ENTRY_POINTS = "cvloss.loaders"
MAX_CATALOG_BYTES = 1 << 20  # the shipped catalog is ~25 KB
URL_SCHEMES = ("https", "http")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")  # as cvloss.data.archive reads them

_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_TARGET = re.compile(rf"{_DOTTED}:{_DOTTED}")

_REQUIRED = (
    "name", "tasks", "description", "urls", "files", "layout", "size_bytes", "license",
    "citation", "loader", "embedded", "real", "splits",
)
_FILE_REQUIRED = ("url", "filename", "size")
_CHECKSUM_KEYS = ("md5", "sha256", "checksum")

# The catalog's schema: field -> what it must be (the words of the error line).
_STR, _COUNT, _BOOL = "a string", "an integer >= 0", "true or false"
_STRS, _TABLE, _TABLES = "a list of strings", "a table", "a list of tables"
_DATASET_FIELDS = {
    "name": _STR, "tasks": _STRS, "description": _STR, "urls": _STRS, "files": _TABLES, "layout": _STRS,
    "size_bytes": _COUNT, "license": _STR, "citation": _STR, "loader": _STR, "embedded": _BOOL, "real": _STR,
    "splits": _TABLE, "counts": _TABLE, "aliases": _STRS,
}
#: folders cvloss keeps in its cache home, which is the default data dir too: no dataset's name
RESERVED_NAMES = (adopt.RECORD_DIR, DATA_SUBDIR)
_FILE_FIELDS = {"url": _STR, "filename": _STR, "size": _COUNT, "md5": _STR, "sha256": _STR, "checksum": _STR,
                "mirrors": _STRS}


def _fits(value: Any, kind: str) -> bool:
    """Whether a parsed TOML value is of the schema kind ``kind`` (bools are no integers)."""
    if kind == _STR:
        return isinstance(value, str)
    if kind == _COUNT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _STRS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == _TABLE:
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)  # _TABLES


def _show(value: Any, limit: int = 60) -> str:
    """A value for an error line: its repr (quotes and escapes keep it one line), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- loaders
#: cvloss's own loaders: name -> ``module:function``, imported when first used
LOADERS: dict[str, str] = {
    "oxford-pets": "cvloss.data.pets:load_oxford_pets",
    "synth-pets": "cvloss.data.synthetic:load_synth_pets",
    "synth-vessels": "cvloss.data.synthetic:load_synth_vessels",
    "div2k": "cvloss.data.div2k:load_div2k",
    "skimage-photos": "cvloss.data.skimage_photos:load_skimage_photos",
    "lfw": "cvloss.data.lfw:load_lfw",
    "synth-ids": "cvloss.data.synth_ids:load_synth_ids",
    "horse2zebra": "cvloss.data.horse2zebra:load_horse2zebra",
    "synth-stripes": "cvloss.data.synth_stripes:load_synth_stripes",
    "ring8": "cvloss.data.toy2d:load_ring8",
    "grid25": "cvloss.data.toy2d:load_grid25",
    # a user's data in <data-dir>/NAME/, in the layouts of cvloss.data.folders
    "seg-folder": "cvloss.data.folders:load_seg_folder",
    "sr-folder": "cvloss.data.folders:load_sr_folder",
    "embed-folder": "cvloss.data.folders:load_embed_folder",
    "translate-folder": "cvloss.data.folders:load_translate_folder",
}
_REGISTERED: dict[str, Callable[..., Any]] = {}  # register_loader: name -> function
_ENTRY_POINTS: dict[str, str] = {}  # installed plugins: name -> "module:function"
_EP_STATE: dict[str, Any] = {"read": False}  # "read": the sys.path the entry points were read for
F = TypeVar("F", bound=Callable[..., Any])


def _target_of(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"


def register_loader(name: str) -> Callable[[F], F]:
    """Decorator: ``@register_loader("my-data")`` on ``fn(root, split, size=..., limit=...,
    seed=..., **options)`` (the shape :func:`load_dataset` calls) lets any catalog say
    ``loader = "my-data"``. A ``--plugin`` module (or an installed plugin's) calls it when
    imported; the catalog then names code the user chose to run, not code of its own.

    The name follows :func:`check_name`; one taken by cvloss or by another function is
    refused (:class:`DatasetError`); registering the same function again is a no-op."""
    check_name(name, "loader name")

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise DatasetError(f"register_loader({name!r}) needs a function, got {_show(fn)}")
        if name in LOADERS:
            raise DatasetError(f"loader name {name!r} is cvloss's own ({LOADERS[name]}); register yours under another")
        held = _REGISTERED.get(name)
        if held is not None and _target_of(held) != _target_of(fn):
            raise DatasetError(f"loader name {name!r} is registered already (by {_target_of(held)}); "
                               f"register {_target_of(fn)} under another name")
        _REGISTERED[name] = fn
        return fn

    return decorate


def _entry_points() -> dict[str, str]:
    """The ``cvloss.loaders`` entry points of installed packages, read once and again
    when ``sys.path`` changed (names only: nothing is imported until a dataset uses one)."""
    path = tuple(sys.path)
    if _EP_STATE["read"] != path:
        _EP_STATE["read"] = path
        _ENTRY_POINTS.clear()
        try:
            eps = importlib.metadata.entry_points(group=LOADER_ENTRY_POINTS)
        except Exception:  # pragma: no cover - broken metadata of some distribution
            eps = ()
        for ep in sorted(eps, key=lambda e: (e.name, e.value)):
            usable = _NAME.fullmatch(ep.name) and ".." not in ep.name and _TARGET.fullmatch(ep.value)
            if usable and ep.name not in LOADERS:  # cvloss's own names stay cvloss's
                _ENTRY_POINTS.setdefault(ep.name, ep.value)
    return _ENTRY_POINTS


def loader_names() -> list[str]:
    """Every registered loader name, sorted: what a catalog's ``loader`` may say."""
    return sorted({*LOADERS, *_REGISTERED, *_entry_points()})


def _named_target(name: str) -> str | None:
    """The ``module:function`` of the registered loader ``name``, or ``None``."""
    if name in LOADERS:
        return LOADERS[name]
    if name in _REGISTERED:
        return _target_of(_REGISTERED[name])
    return _entry_points().get(name)


def _is_registered_target(target: str) -> bool:
    return (target in LOADERS.values() or any(_target_of(fn) == target for fn in _REGISTERED.values())
            or target in _entry_points().values())


def _unknown_loader(dataset: str, loader: str) -> str:
    return (f"dataset '{dataset}': unknown loader {_show(loader)}; registered loaders: {', '.join(loader_names())}; "
            f"a plugin's loader needs --plugin MODULE (the module that calls register_loader) or the plugin installed")


def resolve_loader(loader: str, dataset: str = "?") -> Callable[..., Any]:
    """The function of ``loader``: a registered name, or a ``module:function`` that the
    catalog reader let through (a registered loader's, or a trusted catalog's). Importing
    happens here, when a dataset is loaded, never when a catalog is read."""
    if loader in _REGISTERED:
        return _REGISTERED[loader]
    for fn in _REGISTERED.values():  # a plugin file's function: found by identity, not imported by name
        if _target_of(fn) == loader:
            return fn
    target = loader if ":" in loader else _named_target(loader)
    if target is None:
        raise DatasetError(_unknown_loader(dataset, loader))
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # ImportError, AttributeError, or whatever a trusted module raises
        raise DatasetError(f"dataset '{dataset}': cannot import loader {loader}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise DatasetError(f"dataset '{dataset}': loader {loader} is not a function")
    return obj


def _check_loader(where: str, text: str, trusted: bool) -> str:
    """The ``loader`` of a catalog entry as :class:`DatasetInfo` keeps it: the
    ``module:function`` of a registered loader, a trusted catalog's ``module:function``, or
    a name no loader has yet (a ``--plugin`` may register it before the data is loaded:
    :func:`get_dataset` with a task refuses it when none has). A ``module:function`` of
    an untrusted catalog is refused here, before anything is imported."""
    if _NAME.fullmatch(text) and ".." not in text:
        return _named_target(text) or text
    if not _TARGET.fullmatch(text):
        raise DatasetError(f"{where}: loader = {_show(text)} is not a loader name ({', '.join(loader_names())})")
    if trusted or _is_registered_target(text):
        return text
    raise DatasetError(
        f"{where}: loader = {_show(text)} names Python code to import and run, and this catalog is not trusted; "
        f"name a registered loader ({', '.join(loader_names())}), or pass --trust-catalog if you trust this file "
        f"as you would trust code (README: Security)")


@dataclass(frozen=True)
class FileInfo:
    """One downloadable file of a dataset.

    ``algo``/``checksum`` are what the source publishes (``"md5"``/``"sha256"``), or
    ``algo = ""`` and ``checksum = ""`` when nothing is published. ``size`` is in bytes,
    0 when not recorded. ``url`` and ``mirrors`` are ``https://`` or ``http://``.
    """

    url: str
    filename: str
    size: int = 0
    algo: Literal["md5", "sha256", ""] = ""
    checksum: str = ""
    mirrors: tuple[str, ...] = ()

    @property
    def is_archive(self) -> bool:
        return self.filename.lower().endswith(ARCHIVE_SUFFIXES)

    @property
    def sources(self) -> tuple[str, ...]:
        """The URL first, then the mirrors: the order the downloader tries them."""
        return (self.url, *self.mirrors)


@dataclass(frozen=True)
class DatasetInfo:
    """One ``[datasets.NAME]`` table of ``datasets.toml`` (field meanings are documented at
    the top of that file). ``loader`` is the ``module:function`` of its loader (of the
    registered name the catalog gives), or a name no loader has registered yet."""

    name: str
    tasks: tuple[str, ...]
    description: str
    urls: tuple[str, ...]
    files: tuple[FileInfo, ...]
    layout: tuple[str, ...]
    size_bytes: int
    license: str
    citation: str
    loader: str
    embedded: bool
    real: str | None
    splits: dict[str, str] = field(default_factory=dict, compare=False)
    root: str | None = None  # a folder dataset's own folder (cvloss.data.folders), not <data-dir>/NAME
    #: what an extracted copy must hold (the catalog's ``counts``; keys: see cvloss.data.adopt)
    counts: dict[str, int] = field(default_factory=dict, compare=False)
    #: other names of an extracted copy's folder (torchvision's ``oxford-iiit-pet``, ``lfw-py``)
    aliases: tuple[str, ...] = ()

    @property
    def task(self) -> str:
        """The main task (first of ``tasks``)."""
        return self.tasks[0]

    def loader_function(self) -> Callable[..., Any]:
        """The loader (:func:`resolve_loader`); :class:`DatasetError` if it cannot be had."""
        return resolve_loader(self.loader, self.name)

    def load(self, split: str, *, data_dir: str | Path | None = None, size: int | None = None,
             limit: int | None = None, seed: int = 0, **options: Any) -> Any:
        """Same as :func:`load_dataset` for this dataset."""
        return _load(self, split, data_dir=data_dir, size=size, limit=limit, seed=seed, **options)


# ----------------------------------------------------------------------------- plugin datasets
#: embedded datasets added from Python (:func:`register_dataset`) or by installed packages
#: (entry-point group ``cvloss.datasets``: ``name = "module:ATTR"``, ATTR the DatasetInfo
#: that ``register_dataset`` returned); :func:`load_catalog` lists them after the catalog's
DATASETS: Registry[DatasetInfo] = Registry("dataset", group="cvloss.datasets", option="dataset")


def register_dataset(name: str, *, tasks: str | tuple[str, ...] | list[str], loader: Callable[..., Any],
                     description: str, splits: dict[str, str] | None = None, real: str | None = None,
                     license: str = "", citation: str = "") -> DatasetInfo:
    """Add an embedded (generated) dataset: what a plugin task ships so that it runs
    offline. ``loader(root, split, size=..., limit=..., seed=..., **options)`` is called
    as :func:`load_dataset` calls a catalog loader (``root`` is ``<data-dir>/<name>``, not
    created); ``tasks`` the tasks it serves (the first is its main one); ``splits`` says
    what each split holds (default: a seed stream each). The name follows
    :func:`check_name` and may be no built-in loader's; registering the same dataset
    again is a no-op. Returns its :class:`DatasetInfo`."""
    check_name(name)
    task_tuple = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not task_tuple or not all(isinstance(t, str) and t for t in task_tuple):
        raise DatasetError(f"register_dataset({name!r}): tasks must name one task or more, got {_show(tasks)}")
    register_loader(name)(loader)
    info = DatasetInfo(
        name=name, tasks=task_tuple, description=description, urls=(), files=(), layout=(), size_bytes=0,
        license=license or "generated", citation=citation, loader=_target_of(loader), embedded=True, real=real or None,
        splits=dict(splits) if splits else {s: f"generated from its own seed stream ({s})" for s in SPLITS},
    )
    DATASETS.register(name, info)
    return info


def _plugin_datasets(catalog: dict[str, DatasetInfo]) -> dict[str, DatasetInfo]:
    """:data:`DATASETS`' entries whose tasks are all installed (a dataset of a task that is
    not, e.g. its plugin's folder no longer on ``sys.path``, cannot be used: left out).
    An entry that is no DatasetInfo, or takes a catalog dataset's name, is the plugin's
    mistake: one :class:`DatasetError` line."""
    out = {}
    for name in DATASETS.names():
        info = DATASETS.get(name)
        if not isinstance(info, DatasetInfo) or info.name != name:
            raise DatasetError(f"plugin dataset {name!r} is not the DatasetInfo that register_dataset({name!r}) "
                               f"returns; got {_show(info)}")
        if name in catalog:
            raise DatasetError(f"plugin dataset {name!r} has the name of a catalog dataset; register it under another")
        if all(t in TASKS for t in info.tasks):
            out[name] = info
    return out


# ----------------------------------------------------------------------------- catalog
def catalog_path() -> Path:
    """The ``datasets.toml`` that ships inside the package (``cvloss/data/datasets.toml``),
    found through :mod:`importlib.resources`, so a wheel install has it as much as a source
    checkout does."""
    from importlib import resources

    path = Path(str(resources.files("cvloss.data") / "datasets.toml"))
    if not path.is_file():  # a broken install: say which file is missing, not a KeyError later
        raise DatasetError(f"the dataset catalog {path} is missing from this cvloss install; reinstall cvloss")
    return path


def _read_bounded(p: Path) -> bytes:
    """The bytes of the catalog ``p``: a regular file (a FIFO would block, ``/dev/zero``
    never ends) of at most :data:`MAX_CATALOG_BYTES`, opened without blocking and checked
    again once open (a file swapped in between is refused too)."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise DatasetError(f"dataset catalog {p} not found") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read dataset catalog {p}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DatasetError(f"dataset catalog {p} is a folder, not a datasets.toml-style file")
    too_big = f"dataset catalog {p} is larger than {MAX_CATALOG_BYTES:,} bytes, the most a catalog may have"
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"dataset catalog {p} is not a regular file (a FIFO, device or socket): refused; give a "
                           f"datasets.toml-style file")
    if st.st_size > MAX_CATALOG_BYTES:
        raise DatasetError(too_big)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise DatasetError(f"cannot read dataset catalog {p}: {exc.strerror or exc}") from None
    chunks: list[bytes] = []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DatasetError(f"dataset catalog {p} is not a regular file: refused")
        left = MAX_CATALOG_BYTES + 1
        while left > 0:
            block = os.read(fd, min(left, 1 << 16))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
    except OSError as exc:
        raise DatasetError(f"cannot read dataset catalog {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_CATALOG_BYTES:  # it grew since the stat
        raise DatasetError(too_big)
    return data


def _check_fields(where: str, raw: dict[str, Any], schema: dict[str, str], required: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in raw]
    if missing:
        raise DatasetError(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise DatasetError(f"{where} has unknown keys {unknown}")
    for key, kind in schema.items():
        if key in raw and not _fits(raw[key], kind):
            raise DatasetError(f"{where}: {key} must be {kind}, got {_show(raw[key])}")


def _check_url(where: str, url: str) -> str:
    """``url`` when it is an ``https://`` or ``http://`` URL with a host and no blanks or
    control characters (``file://``, ``ftp://`` and the like would read what the user
    never meant to share)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in URL_SCHEMES or not parts.netloc or \
            any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise DatasetError(f"{where}: url {_show(url)} is not an https:// or http:// URL; cvloss downloads over "
                           f"http(s) only")
    return url


def _check_layout(where: str, entry: str) -> str:
    """A layout entry (``a`` or ``a|b``): relative paths that stay inside the dataset
    folder (no ``..``, nothing absolute, no drive, no backslash)."""
    for alt in entry.split("|"):
        parts = PurePosixPath(alt).parts
        if not alt or "\\" in alt or "\0" in alt or PurePosixPath(alt).is_absolute() or \
                PureWindowsPath(alt).drive or ".." in parts:
            raise DatasetError(f"{where}: layout entry {_show(entry)} must be a relative path inside the dataset "
                               f"folder (no '..', not absolute)")
    return entry


def _parse_file(where: str, ds: str, raw: dict[str, Any]) -> FileInfo:
    _check_fields(where, raw, _FILE_FIELDS, _FILE_REQUIRED)
    name = raw["filename"]
    if not _FILENAME.fullmatch(name):
        raise DatasetError(f"{where}: file name {_show(name)} of '{ds}' must be a plain file name (letters, digits, "
                           f"'.', '_', '+', '-'; not starting with '.')")
    present = [k for k in _CHECKSUM_KEYS if k in raw]
    if len(present) != 1:
        raise DatasetError(
            f"{where}: file {name} of '{ds}' needs exactly one of md5 / sha256 / "
            f'checksum = "" (none published), got {present or "none"}'
        )
    key = present[0]
    value = raw[key].strip().lower()
    if key == "checksum":
        if value:
            raise DatasetError(
                f"{where}: file {name} of '{ds}': write the digest as md5 = ... or "
                f'sha256 = ...; checksum = "" only marks "no published checksum"'
            )
        algo = ""
    else:
        algo = key
        want = 32 if key == "md5" else 64
        if len(value) != want or any(c not in "0123456789abcdef" for c in value):
            raise DatasetError(f"{where}: file {name} of '{ds}': bad {key} {_show(value)}")
    url = _check_url(f"{where}: file {name}", raw["url"])
    mirrors = tuple(_check_url(f"{where}: file {name}, mirror", m) for m in raw.get("mirrors", ()))
    return FileInfo(url=url, filename=name, size=raw["size"], algo=algo,  # type: ignore[arg-type]
                    checksum=value, mirrors=mirrors)


def _parse_dataset(label: str, key: str, raw: Any, user: bool = False, trusted: bool = False) -> DatasetInfo:
    """One ``[datasets.KEY]`` table of the catalog ``label`` (its path), checked field by
    field; every refusal is one line naming the file, the dataset and the field."""
    check_name(key, f"{label}: dataset name")
    where = f"{label}: dataset '{key}'"
    if not isinstance(raw, dict):
        raise DatasetError(f"{where} must be a table ([datasets.{key}] with its fields), got {_show(raw)}")
    _check_fields(where, raw, _DATASET_FIELDS, _REQUIRED)
    if raw["name"] != key:
        raise DatasetError(f"{label}: [datasets.{key}] has name = {_show(raw['name'])}")
    tasks = tuple(raw["tasks"])
    bad = [t for t in tasks if t not in TASKS]
    if not tasks or bad:
        raise DatasetError(f"{where} has tasks {_show(list(tasks))}; valid: {', '.join(task_names())}")
    loader = _check_loader(where, raw["loader"], trusted)
    splits = raw["splits"]
    if set(splits) != set(SPLITS) or not all(isinstance(v, str) and v.strip() for v in splits.values()):
        raise DatasetError(f"{where} must describe each split {', '.join(SPLITS)} in its splits table (a string "
                           f"each); got {_show(splits)}")
    layout = tuple(_check_layout(where, entry) for entry in raw["layout"])
    if key in RESERVED_NAMES:
        raise DatasetError(f"{where}: the name '{key}' is a folder cvloss keeps in its cache (and default data) dir; "
                           f"give the dataset another name")
    counts = raw.get("counts", {})
    if not all(isinstance(k, str) and _fits(v, _COUNT) for k, v in counts.items()):
        raise DatasetError(f"{where}: counts must map names to integers >= 0, got {_show(counts)}")
    aliases = tuple(raw.get("aliases", ()))
    bad_alias = [a for a in aliases if not _FILENAME.fullmatch(a)]
    if bad_alias:
        raise DatasetError(f"{where}: alias {_show(bad_alias[0])} must be a plain folder name (letters, digits, "
                           f"'.', '_', '+', '-'; not starting with '.')")
    real = raw["real"]
    if real:
        check_name(real, f"{where}: real =")
    files = tuple(_parse_file(f"{where}, files[{i}]", key, f) for i, f in enumerate(raw["files"]))
    seen = [f.filename for f in files]
    if len(set(seen)) != len(seen):
        raise DatasetError(f"{where} lists a file name twice in files: {sorted(seen)}")
    if not raw["embedded"] and not files and not user:  # a user's data may be placed by hand
        raise DatasetError(f"{where} is not embedded but lists no files")
    return DatasetInfo(
        name=key, tasks=tasks, description=raw["description"], urls=tuple(raw["urls"]), files=files, layout=layout,
        size_bytes=raw["size_bytes"], license=raw["license"], citation=raw["citation"], loader=loader,
        embedded=raw["embedded"], real=real or None, splits={k: splits[k] for k in SPLITS},
        counts=dict(counts), aliases=aliases,
    )


def _trusted_bytes(data: bytes) -> bool:
    """Whether ``--trust-catalog`` trusts these bytes (their sha256 is :data:`TRUST_ENV`)."""
    want = os.environ.get(TRUST_ENV, "").strip().lower()
    return bool(want) and want == hashlib.sha256(data).hexdigest()


def user_catalog_digest() -> str | None:
    """The sha256 of the user catalog's bytes (read as :func:`load_catalog` reads them),
    or ``None`` without one: what ``--trust-catalog`` exports as :data:`TRUST_ENV`."""
    p = user_catalog_path()
    return None if p is None else hashlib.sha256(_read_bounded(p)).hexdigest()


def _read_one(p: Path, user: bool = False, trusted: bool = False) -> tuple[dict[str, DatasetInfo], dict[str, str]]:
    data = _read_bounded(p)
    trusted = trusted or _trusted_bytes(data)
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"cannot read dataset catalog {p}: not UTF-8 text ({exc.reason} at byte "
                           f"{exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"dataset catalog {p} is not valid TOML: {exc}") from None
    except RecursionError:
        raise DatasetError(f"dataset catalog {p} nests arrays or tables too deeply") from None
    if user and "defaults" in raw:
        raise DatasetError(f"user catalog {p}: a [defaults] table is not allowed (the defaults stay the embedded "
                           f"datasets); name your dataset with --dataset")
    unknown = sorted(set(raw) - {"datasets", "defaults"})
    if unknown:
        raise DatasetError(f"dataset catalog {p}: unknown top-level keys {_show(unknown)}; a catalog holds "
                           f"[datasets.NAME] tables" + ("" if user else " and [defaults]"))
    datasets, defaults = raw.get("datasets", {}), raw.get("defaults", {})
    if not isinstance(datasets, dict):
        raise DatasetError(f"dataset catalog {p}: datasets must be tables [datasets.NAME], got {_show(datasets)}")
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        raise DatasetError(f"dataset catalog {p}: [defaults] must map tasks to dataset names, got {_show(defaults)}")
    label = f"user catalog {p}" if user else str(p)
    catalog = {k: _parse_dataset(label, k, v, user, trusted) for k, v in datasets.items()}
    return catalog, dict(defaults)


def user_catalog_path() -> Path | None:
    """``$CVLOSS_CATALOG`` (``--catalog FILE`` sets it for the run), or ``None``."""
    env = os.environ.get(CATALOG_ENV, "").strip()
    return Path(env).expanduser() if env else None


def _read(path: str | Path | None, trusted: bool = False) -> tuple[dict[str, DatasetInfo], dict[str, str]]:
    p = Path(path) if path is not None else catalog_path()
    catalog, defaults = _read_one(p, trusted=trusted or path is None)  # the shipped catalog is cvloss's own
    user = user_catalog_path() if path is None else None
    if user is not None:
        extra, _ = _read_one(user, user=True)
        clash = sorted(set(extra) & set(catalog))
        if clash:
            raise DatasetError(f"user catalog {user}: dataset '{clash[0]}' is a built-in dataset of cvloss; give "
                               f"yours another name")
        catalog = {**catalog, **extra}
    if path is None:
        catalog = {**catalog, **_plugin_datasets(catalog)}
    for task, name in defaults.items():
        if task not in TASKS or name not in catalog or task not in catalog[name].tasks:
            raise DatasetError(f"dataset catalog {p}: [defaults] {task} = {_show(name)} is not a {task} dataset")
    for info in catalog.values():
        if info.real is not None and info.real not in catalog:
            raise DatasetError(f"dataset catalog {p}: '{info.name}' has real = {info.real!r}, not in the catalog")
    return catalog, defaults


def load_catalog(path: str | Path | None = None, *, trusted: bool = False) -> dict[str, DatasetInfo]:
    """Parse ``datasets.toml`` (default: :func:`catalog_path`, plus the user catalog of
    :func:`user_catalog_path`) into ``{name: DatasetInfo}``, in file order. Malformed
    entries raise :class:`DatasetError` naming the file, the entry and the field.
    ``trusted=True``: the file at ``path`` may name ``module:function`` loaders (the
    caller vouches for it as for code); the user catalog is trusted only by
    :data:`TRUST_ENV`."""
    return _read(path, trusted)[0]


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise DatasetError(f"unknown task '{task}'; valid: {', '.join(task_names())}")


def datasets_for(task: str, catalog: dict[str, DatasetInfo] | None = None) -> list[DatasetInfo]:
    """Every dataset serving ``task``, in catalog order."""
    _check_task(task)
    catalog = load_catalog() if catalog is None else catalog
    return [info for info in catalog.values() if task in info.tasks]


def default_dataset(task: str, path: str | Path | None = None) -> str:
    """The name of the task's default dataset: ``[defaults]`` of ``datasets.toml`` for a
    built-in task (the embedded one, so that every task runs offline), else the task's
    ``spec.default_dataset`` (a plugin task's own, e.g. one of :func:`register_dataset`)."""
    _check_task(task)
    catalog, defaults = _read(path)
    if task in defaults:
        return defaults[task]
    own = getattr(task_spec(task), "default_dataset", None)
    if not own:
        raise DatasetError(f"task '{task}' has no default dataset (datasets.toml [defaults], or its spec's "
                           f"default_dataset); name one with --dataset")
    return own


def get_dataset(name: str, task: str | None = None,
                catalog: dict[str, DatasetInfo] | None = None) -> DatasetInfo:
    """Look up ``name``; unknown names (or a dataset of another task when ``task`` is given)
    raise :class:`DatasetError` listing the valid names. With ``task`` (the dataset is
    about to be trained on) a loader name that no loader has registered is refused now,
    before anything is written."""
    catalog = load_catalog() if catalog is None else catalog
    valid = [i.name for i in datasets_for(task, catalog)] if task is not None else list(catalog)
    if name in valid:
        info = catalog[name]
        if task is not None and ":" not in info.loader and _named_target(info.loader) is None:
            raise DatasetError(_unknown_loader(info.name, info.loader))
        return info
    from cvloss.data import folders

    if name not in catalog and (folders.looks_like_path(name) or (name and Path(name).expanduser().is_dir())):
        return _folder_info(name, task)
    where = f" for task '{task}'" if task is not None else ""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    if name in catalog:
        served = ", ".join(catalog[name].tasks)
        raise DatasetError(f"dataset '{name}' serves {served}, not '{task}'; valid{where}: {', '.join(valid)}")
    raise DatasetError(f"unknown dataset {_show(name)}{where}{hint}; valid: {', '.join(valid)}")


def _folder_info(name: str, task: str | None) -> DatasetInfo:
    """The entry of the dataset folder ``name`` (:mod:`cvloss.data.folders`): named by its
    resolved absolute path (what ``TrialConfig.dataset`` holds), ``root`` that folder, the
    loader that of its task. Only the layout is looked at here; ``index_folder`` checks
    the files."""
    from cvloss.data import folders

    root = folders.resolve_folder(name)
    task = folders.detect_task(root, task)
    return DatasetInfo(
        name=str(root), tasks=(task,), description=f"your {task} data in {root}", urls=(), files=(), layout=(),
        size_bytes=0, license="yours", citation="", loader=_target_of(folders.LOADERS.get(task).loader),
        embedded=False, real=None, splits={s: f"{root / 'splits' / s}.txt, else seeded" for s in SPLITS},
        root=str(root),
    )


# ----------------------------------------------------------------------------- disk
def resolve_data_dir(cli: str | Path | None = None) -> Path:
    """``--data-dir`` if given, else ``$CVLOSS_DATA`` if set and non-empty, else
    ``platformdirs.user_cache_dir("cvloss")``. ``~`` is expanded; nothing is created."""
    if cli is not None and str(cli) != "":
        return Path(cli).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cvloss"))


def dataset_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """``<data-dir>/<name>``: where the dataset's archives and extracted files live.

    ``name`` follows :func:`check_name`, and the folder is checked to lie directly in the
    data dir once both are made absolute and normalised (a wrong name is one
    :class:`DatasetError` line, nothing created). A link the user put at
    ``<data-dir>/<name>`` (data kept on another disk) is theirs and is followed. A dataset
    folder of :mod:`cvloss.data.folders` is named by its resolved absolute path: that
    existing folder is its own (catalog names are never absolute)."""
    if os.path.isabs(name) and Path(name) == Path(os.path.normpath(name)) and Path(name).is_dir():
        return Path(name)
    check_name(name)
    base = resolve_data_dir(data_dir)
    root = base / name
    base_abs = os.path.normpath(os.path.abspath(base))
    if os.path.dirname(os.path.normpath(os.path.abspath(root))) != base_abs:  # belt and braces over the name rule
        raise DatasetError(f"dataset name {name!r} leaves the data dir {base}: refused")
    return root


def extraction_marker(root: Path, filename: str) -> Path:
    """``<root>/.extracted-<filename>``: written last, once archive ``filename`` is extracted
    completely (see :func:`cvloss.data.archive.safe_extract`)."""
    return root / f".extracted-{filename}"


def missing_layout(info: DatasetInfo, root: Path) -> list[str]:
    """The entries of ``info.layout`` absent under ``root``; an entry ``a|b`` needs either."""
    return [entry for entry in info.layout if not any((root / alt).exists() for alt in entry.split("|"))]


def presence_problem(info: DatasetInfo, data_dir: str | Path | None = None) -> str | None:
    """``None`` when ``info`` is present, else one line saying what is missing and what to
    run. Present: embedded, or every archive of ``info.files`` has its extraction marker
    and every layout entry exists, or an extracted copy of it is adopted and unchanged
    (:mod:`cvloss.data.adopt`: in the data dir, or the record's). Folders extracted
    without markers (by an older cvloss, or by a run that was killed) do not count:
    downloading again re-extracts them from the archives already on disk, and a complete
    copy extracted by other means is adopted (the line says how)."""
    return _presence(info, data_dir)[0]


def _presence(info: DatasetInfo, data_dir: str | Path | None, fresh: bool = False
              ) -> tuple[str | None, adopt.Found | None]:
    """(problem, what :func:`cvloss.data.adopt.find` found; ``None`` when not asked)."""
    if info.embedded or info.root is not None:
        return None, None
    problem = _download_problem(info, dataset_dir(info.name, data_dir))
    if problem is None or not info.files:  # present, or placed by hand (its layout is its presence)
        return problem, None
    found = adopt.find(info, resolve_data_dir(data_dir), fresh=fresh)
    return (None if found.trusted else problem + adopt.hint(info, found)), found


def _download_problem(info: DatasetInfo, root: Path) -> str | None:
    """The problem of ``<data-dir>/<name>`` as downloads leave it: every archive's
    marker and every layout entry (placed by hand: the layout alone)."""
    if not info.files:  # a user catalog's dataset placed by hand: nothing to download
        missing = missing_layout(info, root)
        if root.is_dir() and not missing:
            return None
        return (f"dataset '{info.name}' is not in {root}" + (f" (lacks {', '.join(missing)})" if root.is_dir() else "")
                + f": place its files there (add --data-dir if you use one)")
    unmarked = [f.filename for f in info.files if f.is_archive and not extraction_marker(root, f.filename).exists()]
    missing = missing_layout(info, root)
    if not unmarked and not missing:
        return None
    started = any((root / f.filename).exists() for f in info.files) or len(missing) < len(info.layout)
    if not started:
        return _missing_message(info, root)
    what = []
    if unmarked:
        what.append(f"no completion marker for {', '.join(unmarked)} (extracted by an older cvloss, or interrupted)")
    if missing:
        what.append(f"lacks {', '.join(missing)}")
    return (f"dataset '{info.name}' in {root} is incomplete: {'; '.join(what)}; run `cvloss datasets download "
            f"{info.name}` (add --data-dir if you use one): it re-extracts from the archives already there")


def dataset_root(info: DatasetInfo, data_dir: str | Path | None = None) -> Path:
    """The folder the loader of ``info`` reads: a dataset folder's own, ``<data-dir>/<name>``
    when it is there as downloads leave it, else the adopted copy when its record is
    trusted (:func:`cvloss.data.adopt.find`), else ``<data-dir>/<name>`` (absent)."""
    return _root_and_owned(info, data_dir)[0]


def _root_and_owned(info: DatasetInfo, data_dir: str | Path | None) -> tuple[Path, bool]:
    """(the folder the loader reads, whether cvloss made it: only then may it write there)."""
    if info.root is not None:
        return Path(info.root), False
    root = dataset_dir(info.name, data_dir)
    if info.embedded or not info.files or _download_problem(info, root) is None:
        return root, True
    found = adopt.find(info, resolve_data_dir(data_dir))
    return (found.copy, False) if found.trusted and found.copy is not None else (root, True)


def adopted_copy(info: DatasetInfo, data_dir: str | Path | None = None) -> Path | None:
    """The adopted copy a run of ``info`` reads (its record trusted), or ``None`` (a
    download, an embedded dataset, a dataset folder, or nothing usable)."""
    root, owned = _root_and_owned(info, data_dir)
    return None if owned or info.root is not None else root


def data_cache_dir(info: DatasetInfo, data_dir: str | Path | None = None) -> Path:
    """Where caches derived from ``info``'s data go (decoded splits, U-Net border maps):
    :func:`cvloss.data.cache.cache_dir` of :func:`dataset_root` -- ``<root>/.cvloss-cache``
    for a folder cvloss made and may write, else under ``$CVLOSS_CACHE`` (or
    ``$XDG_CACHE_HOME/cvloss``); an adopted copy or a dataset folder of your own is never
    written into."""
    return cache_dir(*_root_and_owned(info, data_dir))


def copy_note(info: DatasetInfo, data_dir: str | Path | None = None) -> str | None:
    """For ``datasets list``: where an extracted copy of ``info`` is that is not (or no
    longer) usable as adopted, and what to run; ``None`` without one."""
    _, found = _presence(info, data_dir)
    if found is None or found.trusted or found.copy is None:
        return None
    if found.changed is not None:
        return f"adopted copy {found.copy} changed ({found.changed}): cvloss datasets adopt {info.name} {found.copy}"
    managed = dataset_dir(info.name, data_dir)
    if managed.is_dir() and os.path.samefile(found.copy, managed):  # a download's folder, half done or by hand
        return (f"incomplete: {managed} (run cvloss datasets download {info.name}; extracted completely by other "
                f"means: cvloss datasets adopt {info.name} {managed})")
    return f"extracted copy {found.copy}, not adopted: cvloss datasets adopt {info.name} {found.copy}"


def ensure_present(info: DatasetInfo, data_dir: str | Path | None = None,
                   say: Callable[[str], None] | None = None) -> None:
    """:func:`require_present` for a run (the CLI's data check, before any training): an
    extracted copy in the data dir that was never adopted, or whose files (or the
    catalog's expectations) changed since, is checked now (:func:`cvloss.data.adopt.
    adopt_dataset`), once, and used if it passes; ``say`` gets the one line that says so.
    A copy that fails raises :class:`cvloss.data.adopt.AdoptionError`, one line per
    problem. ``<data-dir>/<name>`` holding its archives but not their markers keeps its
    own line (downloading again re-extracts them)."""
    problem, found = _presence(info, data_dir, fresh=True)
    if problem is None:
        return
    if found is None or found.copy is None:
        raise DatasetError(problem)
    try:
        done = adopt.adopt_dataset(info, found.copy)
    except adopt.AdoptionError as exc:
        managed = dataset_dir(info.name, data_dir)
        own = managed.is_dir() and os.path.samefile(found.copy, managed)
        if own and any((managed / f.filename).is_file() for f in info.files if f.is_archive):
            raise DatasetError(problem) from None
        what = (f"the adopted copy of {info.name} in {found.copy} changed since it was adopted ({found.changed}), "
                f"and checking it again found" if found.changed is not None
                else f"checking the extracted copy of {info.name} in {found.copy} (not adopted yet) found")
        first, *rest = exc.problems
        raise adopt.AdoptionError([f"{what}: {first}", *rest]) from None
    counts = ", ".join(f"{k} {v}" for k, v in done.counts.items())
    if say is not None:
        say(f"note: the adopted copy of {info.name} in {done.root} changed since it was adopted ({found.changed}); "
            f"checked again ({counts}): it passes; record {done.record}" if found.changed is not None else
            f"note: checked the extracted copy of {info.name} in {done.root} once ({counts}) and adopted it: record "
            f"{done.record}, trusted while its files stay as they are")


def is_present(info: DatasetInfo, data_dir: str | Path | None = None) -> bool:
    """Embedded datasets are always present; a downloadable one when every archive's
    extraction marker and every ``layout`` entry exist, or its adopted copy is unchanged
    (see :func:`presence_problem`)."""
    return presence_problem(info, data_dir) is None


# ----------------------------------------------------------------------------- loading
def require_present(info: DatasetInfo, data_dir: str | Path | None = None) -> None:
    """Raise :class:`DatasetError` naming what to fetch and where, unless ``info`` is
    embedded or present under the data dir (the CLI calls it before any training)."""
    problem = presence_problem(info, data_dir)
    if problem is not None:
        raise DatasetError(problem)


def _missing_message(info: DatasetInfo, root: Path) -> str:
    names = ", ".join(f.filename for f in info.files)
    return (
        f"dataset '{info.name}' is not in {root}: run `cvloss datasets download {info.name}` "
        f"(add --data-dir if you use one), or place {names} in {root} by hand and run that command "
        f"to verify and extract them"
    )


def _load(info: DatasetInfo, split: str, *, data_dir: str | Path | None, size: int | None,
          limit: int | None, seed: int, **options: Any) -> Any:
    check_split(split, f"dataset '{info.name}'")
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be >= 1, got {limit}")
    fn = info.loader_function()
    require_present(info, data_dir)
    root, owned = _root_and_owned(info, data_dir)  # an adopted copy is read in place, never written
    folder = cache_dir(root, owned)
    # Loaders share the shape ``fn(root, split, size=..., limit=..., seed=..., **options)``;
    # pass only what a loader accepts (a real dataset's fixed split ignores ``seed``) and
    # leave ``size`` out when not given so the loader's own default applies.
    kwargs: dict[str, Any] = {"limit": limit, "seed": seed, **options}
    if size is not None:
        kwargs["size"] = size
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown:
        raise DatasetError(f"dataset '{info.name}' does not take option(s) {', '.join(unknown)}")
    kwargs = {k: v for k, v in kwargs.items() if takes_any or k in params}
    if "cache_dir" in params:  # a loader with a cache of its own (oxford-pets): ours, never the copy's folder
        kwargs["cache_dir"] = folder
    return cached_load(info.name, info.loader, fn, root, split, kwargs, real=not info.embedded,  # decoded once, on disk
                       folder=folder)


def load_dataset(name: str, split: str, *, data_dir: str | Path | None = None, size: int | None = None,
                 limit: int | None = None, seed: int = 0, task: str | None = None,
                 optional: dict[str, Any] | None = None, **options: Any) -> Any:
    """Load split ``split`` (``"train"`` | ``"val"`` | ``"test"``, see :data:`SPLITS`) of
    dataset ``name``. The three splits are pairwise disjoint for every dataset (which
    files, people or seed streams each holds: the ``splits`` table of its catalog entry);
    ``test`` takes the same keyword arguments as ``val``.

    Args:
        name: catalog name; unknown names raise :class:`DatasetError` with the valid ones
            (for ``task`` when given). A name that is no catalog name but a folder's path
            (``./x``, ``/x``, ``~/x`` or an existing directory) loads that dataset folder
            (:mod:`cvloss.data.folders`; without ``task`` its layout says which task).
        data_dir: ``--data-dir`` (see :func:`resolve_data_dir`); embedded datasets ignore it.
        size: output side in pixels (the loader's default when ``None``).
        limit: at most this many samples (a deterministic subset; see the loader).
        seed: generation seed of embedded datasets; real datasets' splits are fixed.
        options: extra keyword arguments a specific loader accepts.
        optional: options passed only to a loader whose signature takes them (a task's
            settings for one dataset, e.g. ``scale`` for div2k's official LR files), so a
            task never branches on the dataset's name.

    Returns what the loader returns (:class:`~cvloss.data.types.SegData` for ``seg``).
    A downloadable dataset that is not on disk raises :class:`DatasetError` saying to run
    ``cvloss datasets download NAME`` or where to place the archives.
    """
    info = get_dataset(name, task)
    if optional:
        params = inspect.signature(info.loader_function()).parameters
        options = {**{k: v for k, v in optional.items() if k in params}, **options}
    return _load(info, split, data_dir=data_dir, size=size, limit=limit, seed=seed, **options)

"""The dataset catalog (``datasets.toml``), where data lives on disk, and one entry point
to load any split: :func:`load_dataset`.

Data directory precedence: ``--data-dir`` > ``$CVLOSS_DATA`` > the user cache dir
(``platformdirs.user_cache_dir("cvloss")``). Dataset ``NAME`` lives in
``<data-dir>/NAME/``; its archives are downloaded (or placed by hand) there and extracted
in place.

A user catalog in the same format (``--catalog FILE`` or ``$CVLOSS_CATALOG``) adds its
entries to the built-in ones (a name of a built-in dataset is refused); its entries may
list no files (data placed by hand in ``<data-dir>/NAME/``). A folder path instead of a
name is a dataset of its own (:mod:`cvloss.data.folders`).
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 needs the backport
    import tomli as tomllib  # type: ignore[no-redef]

from cvloss.data.cache import cached_load
from cvloss.data.types import SPLITS, DatasetError, check_split

__all__ = [
    "TASKS", "SPLITS", "ENV_VAR", "DatasetError", "FileInfo", "DatasetInfo", "catalog_path",
    "load_catalog", "get_dataset", "datasets_for", "default_dataset", "resolve_data_dir",
    "dataset_dir", "extraction_marker", "missing_layout", "presence_problem", "is_present",
    "require_present", "load_dataset", "CATALOG_ENV", "user_catalog_path",
]

from cvloss.task_registry import TASKS  # noqa: E402  (re-exported)
ENV_VAR = "CVLOSS_DATA"
CATALOG_ENV = "CVLOSS_CATALOG"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")  # as cvloss.data.archive reads them

_REQUIRED = (
    "name", "tasks", "description", "urls", "files", "layout", "size_bytes", "license",
    "citation", "loader", "embedded", "real", "splits",
)
_FILE_REQUIRED = ("url", "filename", "size")
_CHECKSUM_KEYS = ("md5", "sha256", "checksum")


@dataclass(frozen=True)
class FileInfo:
    """One downloadable file of a dataset.

    ``algo``/``checksum`` are what the source publishes (``"md5"``/``"sha256"``), or
    ``algo = ""`` and ``checksum = ""`` when nothing is published. ``size`` is in bytes,
    0 when not recorded.
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
    the top of that file)."""

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

    @property
    def task(self) -> str:
        """The main task (first of ``tasks``)."""
        return self.tasks[0]

    def loader_function(self) -> Callable[..., Any]:
        """Import ``module:function`` of :attr:`loader`; :class:`DatasetError` if that fails."""
        module_name, _, func_name = self.loader.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, func_name)
        except (ImportError, AttributeError) as exc:
            raise DatasetError(f"dataset '{self.name}': cannot import loader {self.loader}: {exc}") from exc

    def load(self, split: str, *, data_dir: str | Path | None = None, size: int | None = None,
             limit: int | None = None, seed: int = 0, **options: Any) -> Any:
        """Same as :func:`load_dataset` for this dataset."""
        return _load(self, split, data_dir=data_dir, size=size, limit=limit, seed=seed, **options)


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


def _parse_file(ds: str, raw: dict[str, Any]) -> FileInfo:
    missing = [k for k in _FILE_REQUIRED if k not in raw]
    if missing:
        raise DatasetError(f"datasets.toml: a file of '{ds}' lacks {', '.join(missing)}")
    present = [k for k in _CHECKSUM_KEYS if k in raw]
    if len(present) != 1:
        raise DatasetError(
            f"datasets.toml: file {raw['filename']} of '{ds}' needs exactly one of md5 / sha256 / "
            f'checksum = "" (none published), got {present or "none"}'
        )
    key = present[0]
    value = str(raw[key]).strip().lower()
    if key == "checksum":
        if value:
            raise DatasetError(
                f"datasets.toml: file {raw['filename']} of '{ds}': write the digest as md5 = ... or "
                f'sha256 = ...; checksum = "" only marks "no published checksum"'
            )
        algo = ""
    else:
        algo = key
        want = 32 if key == "md5" else 64
        if len(value) != want or any(c not in "0123456789abcdef" for c in value):
            raise DatasetError(f"datasets.toml: file {raw['filename']} of '{ds}': bad {key} {value!r}")
    unknown = set(raw) - {*_FILE_REQUIRED, *_CHECKSUM_KEYS, "mirrors"}
    if unknown:
        raise DatasetError(f"datasets.toml: file {raw['filename']} of '{ds}': unknown keys {sorted(unknown)}")
    name = str(raw["filename"])
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise DatasetError(f"datasets.toml: file name {name!r} of '{ds}' must be a plain file name")
    return FileInfo(url=str(raw["url"]), filename=name, size=int(raw["size"]), algo=algo,  # type: ignore[arg-type]
                    checksum=value, mirrors=tuple(raw.get("mirrors", ())))


def _parse_dataset(key: str, raw: dict[str, Any], user: bool = False) -> DatasetInfo:
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise DatasetError(f"datasets.toml: dataset '{key}' lacks {', '.join(missing)}")
    unknown = set(raw) - set(_REQUIRED)
    if unknown:
        raise DatasetError(f"datasets.toml: dataset '{key}' has unknown keys {sorted(unknown)}")
    if raw["name"] != key:
        raise DatasetError(f"datasets.toml: [datasets.{key}] has name = {raw['name']!r}")
    tasks = tuple(raw["tasks"])
    bad = [t for t in tasks if t not in TASKS]
    if not tasks or bad:
        raise DatasetError(f"datasets.toml: dataset '{key}' has tasks {list(tasks)}; valid: {', '.join(TASKS)}")
    if ":" not in raw["loader"]:
        raise DatasetError(f"datasets.toml: dataset '{key}' needs loader = 'module:function'")
    splits = dict(raw["splits"])
    if set(splits) != set(SPLITS) or not all(str(v).strip() for v in splits.values()):
        raise DatasetError(f"datasets.toml: dataset '{key}' must describe each split {', '.join(SPLITS)} "
                           f"in its splits table; got {sorted(splits)}")
    files = tuple(_parse_file(key, f) for f in raw["files"])
    if not raw["embedded"] and not files and not user:  # a user's data may be placed by hand
        raise DatasetError(f"datasets.toml: dataset '{key}' is not embedded but lists no files")
    return DatasetInfo(
        name=key, tasks=tasks, description=str(raw["description"]), urls=tuple(raw["urls"]),
        files=files, layout=tuple(raw["layout"]), size_bytes=int(raw["size_bytes"]),
        license=str(raw["license"]), citation=str(raw["citation"]), loader=str(raw["loader"]),
        embedded=bool(raw["embedded"]),
        real=str(raw["real"]) or None, splits={k: str(splits[k]) for k in SPLITS},
    )


def _read_one(p: Path, user: bool = False) -> tuple[dict[str, DatasetInfo], dict[str, str]]:
    try:
        with open(p, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"dataset catalog {p} not found") from None
    except IsADirectoryError:
        raise DatasetError(f"dataset catalog {p} is a folder, not a datasets.toml-style file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"dataset catalog {p} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read dataset catalog {p}: {exc}") from None
    if user and "defaults" in raw:
        raise DatasetError(f"user catalog {p}: a [defaults] table is not allowed (the defaults stay the embedded "
                           f"datasets); name your dataset with --dataset")
    catalog = {k: _parse_dataset(k, v, user) for k, v in raw.get("datasets", {}).items()}
    return catalog, dict(raw.get("defaults", {}))


def user_catalog_path() -> Path | None:
    """``$CVLOSS_CATALOG`` (``--catalog FILE`` sets it for the run), or ``None``."""
    env = os.environ.get(CATALOG_ENV, "").strip()
    return Path(env).expanduser() if env else None


def _read(path: str | Path | None) -> tuple[dict[str, DatasetInfo], dict[str, str]]:
    p = Path(path) if path is not None else catalog_path()
    catalog, defaults = _read_one(p)
    user = user_catalog_path() if path is None else None
    if user is not None:
        extra, _ = _read_one(user, user=True)
        clash = sorted(set(extra) & set(catalog))
        if clash:
            raise DatasetError(f"user catalog {user}: dataset '{clash[0]}' is a built-in dataset of cvloss; give "
                               f"yours another name")
        catalog = {**catalog, **extra}
    for task, name in defaults.items():
        if task not in TASKS or name not in catalog or task not in catalog[name].tasks:
            raise DatasetError(f"dataset catalog {p}: [defaults] {task} = {name!r} is not a {task} dataset")
    for info in catalog.values():
        if info.real is not None and info.real not in catalog:
            raise DatasetError(f"dataset catalog {p}: '{info.name}' has real = {info.real!r}, not in the catalog")
    return catalog, defaults


def load_catalog(path: str | Path | None = None) -> dict[str, DatasetInfo]:
    """Parse ``datasets.toml`` (default: :func:`catalog_path`, plus the user catalog of
    :func:`user_catalog_path`) into ``{name: DatasetInfo}``, in file order. Malformed
    entries raise :class:`DatasetError` naming the entry."""
    return _read(path)[0]


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise DatasetError(f"unknown task '{task}'; valid: {', '.join(TASKS)}")


def datasets_for(task: str, catalog: dict[str, DatasetInfo] | None = None) -> list[DatasetInfo]:
    """Every dataset serving ``task``, in catalog order."""
    _check_task(task)
    catalog = load_catalog() if catalog is None else catalog
    return [info for info in catalog.values() if task in info.tasks]


def default_dataset(task: str, path: str | Path | None = None) -> str:
    """The name of the task's default dataset (``[defaults]`` of ``datasets.toml``: the
    embedded one, so that every task runs offline)."""
    _check_task(task)
    catalog, defaults = _read(path)
    if task not in defaults:
        raise DatasetError(f"datasets.toml has no default dataset for task '{task}'")
    return defaults[task]


def get_dataset(name: str, task: str | None = None,
                catalog: dict[str, DatasetInfo] | None = None) -> DatasetInfo:
    """Look up ``name``; unknown names (or a dataset of another task when ``task`` is given)
    raise :class:`DatasetError` listing the valid names."""
    catalog = load_catalog() if catalog is None else catalog
    valid = [i.name for i in datasets_for(task, catalog)] if task is not None else list(catalog)
    if name in valid:
        return catalog[name]
    from cvloss.data import folders

    if name not in catalog and (folders.looks_like_path(name) or (name and Path(name).expanduser().is_dir())):
        return _folder_info(name, task)
    where = f" for task '{task}'" if task is not None else ""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    if name in catalog:
        served = ", ".join(catalog[name].tasks)
        raise DatasetError(f"dataset '{name}' serves {served}, not '{task}'; valid{where}: {', '.join(valid)}")
    raise DatasetError(f"unknown dataset '{name}'{where}{hint}; valid: {', '.join(valid)}")


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
        size_bytes=0, license="yours", citation="", loader=f"cvloss.data.folders:{folders.LOADERS[task].__name__}",
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
    """``<data-dir>/<name>``: where the dataset's archives and extracted files live."""
    return resolve_data_dir(data_dir) / name


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
    and every layout entry exists. Folders extracted without markers (by an older cvloss,
    or by a run that was killed) do not count: downloading again re-extracts them from the
    archives already on disk."""
    if info.embedded or info.root is not None:
        return None
    root = dataset_dir(info.name, data_dir)
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


def is_present(info: DatasetInfo, data_dir: str | Path | None = None) -> bool:
    """Embedded datasets are always present; a downloadable one when every archive's
    extraction marker and every ``layout`` entry exist (see :func:`presence_problem`)."""
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
    root = Path(info.root) if info.root is not None else dataset_dir(info.name, data_dir)
    require_present(info, data_dir)
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
    return cached_load(info.name, info.loader, fn, root, split, kwargs, real=not info.embedded)  # decoded once, on disk


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

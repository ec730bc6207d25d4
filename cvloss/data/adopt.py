"""Datasets a lab already has: a copy extracted elsewhere (shared, read-only storage,
torchvision's folder from an earlier ``download=True``), checked once and used in place.

``cvloss datasets adopt oxford-pets /datasets/oxford-iiit-pet``: :func:`adopt_dataset`
checks the copy the way its loader will read it -- layout (:data:`CHECKERS`), counts per
split against the catalog's ``counts``, size and checksum of every catalog file present --
each defect one :class:`AdoptionError` line naming the file or folder. It then records the
copy in ``<cache home>/adopted/<name>.json`` (:func:`record_path`) with a fingerprint
(sha256 of relative path, size and mtime of every file the loader reads:
:func:`fingerprint`). Nothing is ever written into the copy. Later runs trust the record
while fingerprint and catalog expectations hold (:func:`find`), else check again.
:func:`locate` finds a copy in a folder ``P``: ``P/<name>``, ``P/<alias>`` or ``P``.

What each loader's counts mean, and why a copy is read-only: ``docs/data.md``, "Adopting".
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cvloss import __version__
from cvloss.data.archive import file_digest, write_atomic
from cvloss.data.cache import cache_home
from cvloss.data.types import DatasetError

__all__ = ["RECORD_DIR", "CHECKERS", "Adoption", "AdoptionError", "Check", "Found", "adopt_dataset", "check_copy",
           "expectation", "find", "fingerprint", "hint", "locate", "read_record", "record_path"]

RECORD_DIR = "adopted"
RECORD_FORMAT = 1
_SHOWN = 3  # missing files named in one line
#: the fingerprints this process has seen match their record: (copy, fingerprint) -> True
_MATCHED: dict[tuple[str, str], bool] = {}


class AdoptionError(DatasetError):
    """An extracted copy that does not pass the check: ``problems`` holds one line per
    thing found wrong (the message joins them)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Check:
    """The result of :func:`check_copy`: ``counts`` per catalog key, the files whose
    checksum or size was verified (filename -> ``md5``/``sha256``/``size``), ``parts``
    (paths relative to ``root`` the loader reads: what :func:`fingerprint` covers) and one
    line per problem."""

    root: Path
    counts: dict[str, int]
    verified: dict[str, str]
    parts: tuple[str, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Adoption:
    """A copy adopted by :func:`adopt_dataset` and the record written for it."""

    name: str
    root: Path
    counts: dict[str, int]
    verified: dict[str, str]
    files: int
    fingerprint: str
    record: Path


@dataclass(frozen=True)
class Found:
    """What :func:`find` knows of a dataset's extracted copy: ``copy`` (``None``: none in
    the data dir and no record), whether its record is ``trusted`` now, ``record`` (the
    one naming this copy, else ``None``), ``changed`` (why that record no longer matches,
    one phrase) and ``by_record`` (the copy came from the record, not the data dir)."""

    copy: Path | None
    trusted: bool = False
    record: dict[str, Any] | None = None
    changed: str | None = None
    by_record: bool = False


# ----------------------------------------------------------------------------- checking
@dataclass
class _Findings:
    """What a checker collects about the copy at ``root`` of ``info``."""

    info: Any
    root: Path
    skip: set[str]  # files whose checksum already failed: reported, not parsed again
    problems: list[str] = field(default_factory=list)
    counts: list[tuple[str, int, Path, str]] = field(default_factory=list)  # (key, n, where, what)
    parts: list[str] = field(default_factory=list)

    def folder(self, rel: str) -> Path | None:
        """``root/rel`` if it is a folder (it joins the fingerprint), else a problem line."""
        path = self.root / rel
        self.parts.append(rel)
        if path.is_dir():
            return path
        self.problems.append(f"missing folder {path}")
        return None

    def file(self, rel: str) -> Path | None:
        """``root/rel`` if it is a file not already failed, else ``None`` (a problem line
        when it is missing)."""
        path = self.root / rel
        self.parts.append(rel)
        if rel in self.skip:
            return None
        if path.is_file():
            return path
        self.problems.append(f"missing file {path}")
        return None

    def missing(self, rels: list[str], why: str) -> None:
        """One line for the files ``rels`` (relative to ``root``) that are not there."""
        if len(rels) == 1:
            self.problems.append(f"missing file {self.root / rels[0]} ({why})")
        elif rels:
            more = ", ..." if len(rels) > _SHOWN else ""
            self.problems.append(f"{self.root}: {len(rels)} files missing ({why}): {', '.join(rels[:_SHOWN])}{more}")

    def count(self, key: str, n: int, where: Path, what: str) -> None:
        self.counts.append((key, n, where, what))

    def unreadable(self, path: Path, exc: Exception) -> None:
        self.problems.append(f"{path} cannot be read as {self.info.name}'s {path.name}: {' '.join(str(exc).split())}")


def _names(folder: Path) -> set[str]:
    """The entry names of ``folder`` (one listing: fast on network storage too)."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _pets_looks(info: Any, root: Path) -> bool:
    return (root / "images").is_dir() or (root / "annotations").is_dir()


def _pets(f: _Findings) -> None:
    """Oxford-IIIT Pet: both lists, and for each listed image its JPEG and trimap."""
    from cvloss.data import pets

    images, trimaps = f.folder("images"), f.folder("annotations/trimaps")
    f.parts.append("annotations")
    have_images = _names(images) if images else None
    have_trimaps = _names(trimaps) if trimaps else None
    for key, list_name in (("trainval", "trainval.txt"), ("test", "test.txt")):
        path = f.file(f"annotations/{list_name}")
        if path is None:
            continue
        try:
            names = pets.list_names(path)
        except DatasetError as exc:
            f.problems.append(str(exc))
            continue
        lost = [f"images/{n}.jpg" for n in names if have_images is not None and f"{n}.jpg" not in have_images]
        lost += [f"annotations/trimaps/{n}.png" for n in names
                 if have_trimaps is not None and f"{n}.png" not in have_trimaps]
        if lost:
            f.missing(lost, f"listed in annotations/{list_name}")
        else:
            f.count(key, len(names), path, "images listed")


def _div2k_looks(info: Any, root: Path) -> bool:
    return (root / "DIV2K_train_HR").is_dir() or (root / "DIV2K_valid_HR").is_dir()


def _div2k(f: _Findings) -> None:
    """DIV2K: the HR images of each split's ids, and the LR file of each in every
    official LR folder present (the loader reads it for that scale)."""
    from cvloss.data.div2k import SCALES, SPLIT_IDS

    hr = {tag: f.folder(f"DIV2K_{tag}_HR") for tag in ("train", "valid")}
    for tag in hr:  # an LR folder that appears later changes what the loader reads
        f.parts.append(f"DIV2K_{tag}_LR_bicubic")
    for split, (tag, first, last) in SPLIT_IDS.items():
        folder = hr[tag]
        if folder is None:
            continue
        have = _names(folder)
        ids = [f"{i:04d}" for i in range(first, last + 1)]
        found = [i for i in ids if f"{i}.png" in have]
        if f.info.counts.get(split) == len(ids) and len(found) < len(ids):  # the whole range expected: name the gaps
            f.missing([f"{folder.name}/{i}.png" for i in ids if f"{i}.png" not in have], f"of the {split} split")
        else:
            f.count(split, len(found), folder, f"HR images of the {split} ids {first:04d}-{last:04d}")
        for s in SCALES:
            lr = f.root / f"DIV2K_{tag}_LR_bicubic" / f"X{s}"
            if lr.is_dir():
                have_lr = _names(lr)
                f.missing([f"{lr.relative_to(f.root)}/{i}x{s}.png" for i in found if f"{i}x{s}.png" not in have_lr],
                          f"x{s} LR files of the {split} split")


_LFW_LISTS = ("peopleDevTrain.txt", "pairsDevTest.txt", "people.txt", "pairs.txt")


def _lfw_looks(info: Any, root: Path) -> bool:
    from cvloss.data.lfw import IMAGE_DIRS

    return any((root / n).is_file() for n in _LFW_LISTS) or any((root / d).is_dir() for d in IMAGE_DIRS)


def _lfw(f: _Findings) -> None:
    """LFW: the four lists the loader reads, the image folder, every photo the lists
    name, and the pairs of the val and test lists."""
    from cvloss.data import lfw

    lists = {name: f.file(name) for name in _LFW_LISTS}
    f.parts.extend(lfw.IMAGE_DIRS)  # the loader reads the first present: one appearing later matters
    images = next((f.root / d for d in lfw.IMAGE_DIRS if (f.root / d).is_dir()), None)
    if images is None:
        f.problems.append(f"missing folder: {f.root} holds none of LFW's image folders {', '.join(lfw.IMAGE_DIRS)}")
    wanted: set[tuple[str, int]] = set()

    def read(name: str, parse: Callable[[Path], Any]) -> Any:
        path = lists[name]
        if path is None:
            return None
        try:
            return parse(path)
        except (DatasetError, ValueError, IndexError) as exc:
            f.unreadable(path, exc)
            return None

    for members in read("people.txt", lfw.read_people_sets) or []:
        wanted |= {(n, i) for n, c in members for i in range(1, c + 1)}
    wanted |= {(n, i) for n, c in read("peopleDevTrain.txt", lfw.read_people) or [] for i in range(1, c + 1)}
    for key, name in (("val", "pairsDevTest.txt"), ("test", "pairs.txt")):
        parsed = read(name, lfw.read_pairs)
        if parsed is not None:
            wanted |= {(a, i) for a, i, _, _ in parsed[0]} | {(b, j) for _, _, b, j in parsed[0]}
            f.count(key, len(parsed[0]), lists[name], "pairs listed")
    if images is None:
        return
    people = sorted(e.name for e in os.scandir(images) if e.is_dir())
    photos = {p: {n for n in _names(images / p) if n.lower().endswith(".jpg")} for p in people}
    lost = sorted(f"{images.name}/{n}/{n}_{i:04d}.jpg" for n, i in wanted
                  if f"{n}_{i:04d}.jpg" not in photos.get(n, ()))
    if lost:
        f.missing(lost, "named in LFW's lists")
    else:
        f.count("people", len(people), images, "person folders")
        f.count("images", sum(len(v) for v in photos.values()), images, "photos (.jpg)")


def _cyclegan_base(info: Any, root: Path) -> str:
    """``"<name>/"`` when the four folders sit one level down (as the zip extracts into
    ``<data-dir>/<name>/``), else ``""``."""
    return f"{info.name}/" if (root / info.name / "trainA").is_dir() else ""


def _cyclegan_looks(info: Any, root: Path) -> bool:
    return (root / _cyclegan_base(info, root) / "trainA").is_dir()


def _cyclegan(f: _Findings) -> None:
    """horse2zebra (the CycleGAN layout): the four folders and their images."""
    from cvloss.data.horse2zebra import IMAGE_SUFFIXES

    base = _cyclegan_base(f.info, f.root)
    for name in ("trainA", "trainB", "testA", "testB"):
        folder = f.folder(base + name)
        if folder is not None:
            n = sum(1 for e in os.scandir(folder) if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES)
            f.count(name, n, folder, "images")


def _generic_looks(info: Any, root: Path) -> bool:
    return any((root / alt).exists() for entry in info.layout for alt in entry.split("|"))


def _generic(f: _Findings) -> None:
    """A catalog dataset of another loader: its ``layout`` entries (``a|b``: either)."""
    for entry in f.info.layout:
        alts = entry.split("|")
        f.parts.extend(alts)
        if not any((f.root / alt).exists() for alt in alts):
            f.problems.append(f"missing {f.root / alts[0]}" + (f" (or {', '.join(alts[1:])})" if alts[1:] else ""))


#: loader (``module:function``) -> (looks like the dataset?, the check)
CHECKERS: dict[str, tuple[Callable[[Any, Path], bool], Callable[[_Findings], None]]] = {
    "cvloss.data.pets:load_oxford_pets": (_pets_looks, _pets),
    "cvloss.data.div2k:load_div2k": (_div2k_looks, _div2k),
    "cvloss.data.lfw:load_lfw": (_lfw_looks, _lfw),
    "cvloss.data.horse2zebra:load_horse2zebra": (_cyclegan_looks, _cyclegan),
}


def _checker(info: Any) -> tuple[Callable[[Any, Path], bool], Callable[[_Findings], None]]:
    return CHECKERS.get(info.loader, (_generic_looks, _generic))


def _verify_files(info: Any, root: Path, problems: list[str]) -> tuple[dict[str, str], set[str]]:
    """Size and published checksum of every catalog file the copy holds:
    ``(verified, failed)`` (filename -> what was checked; names that failed)."""
    verified: dict[str, str] = {}
    failed: set[str] = set()
    for fi in info.files:
        path = root / fi.filename
        if not path.is_file():  # an extracted copy need not keep its archives
            continue
        size = path.stat().st_size
        if fi.size and size != fi.size:
            problems.append(f"{path}: {size:,} bytes; the catalog's {fi.filename} has {fi.size:,} (truncated, or "
                            f"another file)")
            failed.add(fi.filename)
        elif fi.algo and (got := file_digest(path, fi.algo)) != fi.checksum:
            problems.append(f"{path}: {fi.algo} {got} differs from the catalog's {fi.checksum} (corrupt, or another "
                            f"version of the file)")
            failed.add(fi.filename)
        elif fi.algo or fi.size:
            verified[fi.filename] = fi.algo or "size"
    return verified, failed


def check_copy(info: Any, root: str | Path) -> Check:
    """Check the extracted copy of catalog dataset ``info`` at ``root`` (see the module
    docstring); reads names, sizes and the checksummed files, writes nothing."""
    root = Path(root)
    problems: list[str] = []
    verified, failed = _verify_files(info, root, problems)
    findings = _Findings(info=info, root=root, skip=failed)
    _checker(info)[1](findings)
    problems += findings.problems
    counts = {}
    for key, n, where, what in findings.counts:
        counts[key] = n
        want = info.counts.get(key)
        if want is not None and n != want:
            problems.append(f"{where}: {n} {what}; the catalog expects {want} ({info.name} counts.{key})")
    parts = tuple(dict.fromkeys([*findings.parts, *(f for f in verified)]))
    return Check(root=root, counts=counts, verified=verified, parts=parts, problems=tuple(problems))


def fingerprint(root: str | Path, parts: tuple[str, ...] | list[str]) -> tuple[str, int]:
    """``(sha256, number of files)`` over ``relative path<TAB>size<TAB>mtime_ns`` of every
    file under the ``parts`` of ``root`` (files, or folders walked; one missing counts as
    empty). A file added, removed, renamed, rewritten or touched changes it; no byte is
    read. Links are followed, each real folder walked once (a loop ends)."""
    root = Path(root)
    rows: set[str] = set()
    walked: set[str] = set()
    for rel in parts:
        path = root / rel
        if path.is_file():
            st = path.stat()
            rows.add(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}")
            continue
        for folder, subs, files in os.walk(path, followlinks=True):
            real = os.path.realpath(folder)
            if real in walked:
                subs[:] = []
                continue
            walked.add(real)
            for name in files:
                full = os.path.join(folder, name)
                try:
                    st = os.stat(full)
                except OSError:  # a dangling link: not a file the loader can read
                    continue
                rows.add(f"{os.path.relpath(full, root)}\t{st.st_size}\t{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest(), len(rows)


def expectation(info: Any) -> str:
    """A digest of what the catalog expects of ``info``'s copy (loader, layout, counts,
    files with sizes and checksums): a record made under other expectations is re-checked."""
    spec = {"loader": info.loader, "layout": list(info.layout), "counts": dict(info.counts),
            "files": [[f.filename, f.size, f.algo, f.checksum] for f in info.files]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- records
def record_path(name: str) -> Path:
    """``<cache home>/adopted/<name>.json`` (``name``: a catalog name, checked by the catalog)."""
    return cache_home() / RECORD_DIR / f"{name}.json"


def read_record(name: str) -> dict[str, Any] | None:
    """The adoption record of ``name``, or ``None`` (none, unreadable or not a record)."""
    try:
        rec = json.loads(record_path(name).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("path"), str) else None


def _candidates(info: Any, base: Path) -> list[Path]:
    return [base / info.name, *(base / alias for alias in info.aliases), base]


def locate(info: Any, base: str | Path) -> Path | None:
    """The extracted copy of ``info`` in the folder ``base``: the first of ``base/<name>``,
    ``base/<alias>`` and ``base`` that looks like it (its main folders or lists are
    there), else ``None``."""
    looks = _checker(info)[0]
    return next((c for c in _candidates(info, Path(base)) if c.is_dir() and looks(info, c)), None)


def _adoptable(info: Any) -> None:
    if info.embedded:
        raise DatasetError(f"dataset '{info.name}' is embedded (generated on the fly): there is nothing to adopt")
    if info.root is not None:
        raise DatasetError(f"{info.name} is a dataset folder of your own: it is read in place already (never "
                           f"written into); adopt names a catalog dataset, e.g. oxford-pets")


def adopt_dataset(info: Any, path: str | Path) -> Adoption:
    """Check the extracted copy of ``info`` at ``path`` (or in it: :func:`locate`) and
    record it (see the module docstring). Every argument is checked before anything is
    read or written: an embedded dataset, a folder dataset, a path that is no folder is
    one :class:`DatasetError` line; a copy that fails the check raises
    :class:`AdoptionError` (one line per problem) and writes nothing."""
    _adoptable(info)
    given = Path(path).expanduser()
    if not given.exists():
        raise DatasetError(f"{path}: no such folder (give the folder holding the extracted {info.name})")
    if not given.is_dir():
        raise DatasetError(f"{path} is not a folder: give the folder holding the extracted {info.name}")
    root = (locate(info, given) or given).resolve()
    check = check_copy(info, root)
    if check.problems:
        raise AdoptionError(list(check.problems))
    print_, n_files = fingerprint(root, check.parts)
    target = record_path(info.name)
    record = {
        "format": RECORD_FORMAT, "dataset": info.name, "path": str(root), "counts": check.counts,
        "verified": check.verified, "parts": list(check.parts), "files": n_files, "fingerprint": print_,
        "expect": expectation(info), "cvloss": __version__,
        "adopted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, json.dumps(record, indent=2) + "\n")
    _MATCHED[(str(root), print_)] = True
    return Adoption(name=info.name, root=root, counts=check.counts, verified=check.verified, files=n_files,
                    fingerprint=print_, record=target)


def _mismatch(info: Any, copy: Path, rec: dict[str, Any], fresh: bool) -> str | None:
    """Why the record ``rec`` of ``copy`` no longer holds (one phrase), else ``None``."""
    if rec.get("format") != RECORD_FORMAT or rec.get("expect") != expectation(info):
        return "the catalog expects other contents now (another cvloss version)"
    key = (str(copy), str(rec.get("fingerprint")))
    if not fresh and _MATCHED.get(key):
        return None
    now, n_files = fingerprint(copy, rec.get("parts") or [])
    if now == rec.get("fingerprint"):
        _MATCHED[key] = True
        return None
    for seen in [k for k in _MATCHED if k[0] == str(copy)]:  # a fresh look found a change: no stale trust
        del _MATCHED[seen]
    then = rec.get("files")
    return (f"{then} files then, {n_files} now" if then != n_files
            else f"{n_files} files, some with another size or modification time")


def find(info: Any, base: str | Path, *, fresh: bool = False) -> Found:
    """The extracted copy of catalog dataset ``info`` for a run whose data dir is
    ``base``: the copy in ``base`` (:func:`locate`), else the record's, and whether its
    record is trusted (same path, same expectations, same fingerprint). The fingerprint is
    taken once per process and (copy, record) unless ``fresh``. Reads only."""
    if info.embedded or info.root is not None:
        return Found(copy=None)
    rec = read_record(info.name)
    copy, by_record = locate(info, base), False
    if copy is None and rec is not None and Path(rec["path"]).is_dir():
        copy, by_record = Path(rec["path"]), True
    if copy is None:
        return Found(copy=None)
    copy = copy.resolve()
    if rec is None or rec["path"] != str(copy):
        return Found(copy=copy, by_record=by_record)
    changed = _mismatch(info, copy, rec, fresh)
    return Found(copy=copy, trusted=changed is None, record=rec, changed=changed, by_record=by_record)


def hint(info: Any, found: Found | None) -> str:
    """The words a "not present" line adds about an extracted copy ("" without one)."""
    if found is None or found.trusted:
        return ""
    if found.copy is None:
        rec = read_record(info.name)
        return "" if rec is None else (f"; the copy adopted in {rec['path']} is gone (adopt another: `cvloss "
                                       f"datasets adopt {info.name} PATH`)")
    if found.changed is not None:
        return (f"; its adopted copy in {found.copy} changed since it was adopted ({found.changed}): a run "
                f"checks it again, or `cvloss datasets adopt {info.name} {found.copy}`")
    return (f"; an extracted copy is in {found.copy}: `cvloss datasets adopt {info.name} {found.copy}` checks it "
            f"and uses it in place (a run with that data dir does so by itself)")

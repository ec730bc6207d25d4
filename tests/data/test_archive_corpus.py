"""Hostile archives and a hostile server, as an attacker on the network path would send them.

Every case of tests/fixtures/malicious_archives.py goes through ``download`` (the archive
already on disk, as if just fetched): one error line naming the archive and the reason,
no file written anywhere (the whole tmp tree is compared before/after, so outside the
target too), the outside file intact, nothing present. Bombs are 8 MiB of zeros against
an extraction cap lowered to about 1 MiB through the environment.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cvloss.data import archive
from cvloss.data.fetch import download
from cvloss.data.registry import DatasetError, is_present
from cvloss.errors import UsageError

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_malicious", Path(__file__).resolve().parents[1] / "fixtures" / "malicious_archives.py")
evil = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evil)

# What each refusal must say (the first matching prefix of the case name).
REASONS = {
    "tar-dotdot": "'..' component", "zip-dotdot": "'..' component", "zip-backslash": "'..' component",
    "tar-absolute": "absolute member path", "zip-absolute": "absolute member path",
    "tar-symlink": "is a symlink", "zip-symlink": "is a symlink",
    "tar-pathmax": "is a symlink", "zip-pathmax": "is a symlink",
    "tar-hardlink": "is a hard link", "tar-device": "is a device", "tar-block": "is a device",
    "zip-device": "is a device", "tar-fifo": "is a FIFO", "zip-fifo": "is a FIFO",
    "tar-named-zip": "its content is a tar archive, but its name says zip",
    "tgz-named-tar": "its content is a gzip archive, but its name says tar",
    "zip-named-tgz": "its content is a zip archive, but its name says gzip",
    "tar-gz-bomb": "declares more than", "zip-bomb": "declares more than",
    "zip-lying-header": "corrupt",  # zipfile stops at the claimed size; the CRC then fails
    "not-an-archive": "unknown magic bytes", "zip-reserved": "would replace cvloss's own file",
}


def snapshot(top: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under ``top`` (links not followed): file type, size, and small contents."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            small = p.read_bytes() if p.is_file() and not p.is_symlink() and st.st_size < 4096 else b""
            out[str(p.relative_to(top))] = (st.st_mode >> 12, st.st_size, small)
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


@pytest.mark.parametrize("case", evil.CASES)
def test_hostile_archive_is_refused_and_writes_nothing(case, tmp_path, outside, monkeypatch):
    monkeypatch.setenv("CVLOSS_EXTRACT_SLACK_BYTES", str(1 << 20))  # cap: 4 x a few KiB + 1 MiB < 8 MiB
    filename, data = evil.corpus(outside)[case]()
    info = evil.toy_dataset(filename)
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / filename).write_bytes(data)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as err:
        download(info, tmp_path / "data")
    msg = str(err.value)
    reason = next(text for prefix, text in REASONS.items() if case.startswith(prefix))
    assert "\n" not in msg and f"refusing to extract {root / filename}: " in msg and reason in msg, msg
    assert snapshot(tmp_path) == before  # nothing written: not outside, not in the target, no staging
    assert (outside / "secret.txt").read_text() == "secret"
    assert not is_present(info, tmp_path / "data")


def test_bomb_caps_name_their_variable_and_raising_it_lets_a_genuine_archive_through(tmp_path, outside, monkeypatch):
    monkeypatch.setenv("CVLOSS_EXTRACT_SLACK_BYTES", str(1 << 20))
    filename, data = evil.corpus(outside)["zip-bomb"]()
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(DatasetError, match="raise CVLOSS_MAX_EXTRACT_RATIO"):
        archive.safe_extract(path, tmp_path / "t")
    monkeypatch.setenv("CVLOSS_MAX_EXTRACT_RATIO", "10000")
    archive.safe_extract(path, tmp_path / "t")
    assert (tmp_path / "t" / "big.bin").stat().st_size == evil.BOMB_BYTES


def test_member_cap(tmp_path, monkeypatch):
    path = tmp_path / "many.tar"
    path.write_bytes(evil.tar_bytes([(f"d/{i}.txt", b"x") for i in range(5)], mode="w"))
    monkeypatch.setenv("CVLOSS_MAX_MEMBERS", "4")
    with pytest.raises(DatasetError, match=r"many\.tar: more than 4 members; if it is genuine, raise CVLOSS_MAX_MEMBERS"):
        archive.safe_extract(path, tmp_path / "t")
    assert not (tmp_path / "t").exists()
    monkeypatch.setenv("CVLOSS_MAX_MEMBERS", "5")
    archive.safe_extract(path, tmp_path / "t")
    assert len(list((tmp_path / "t" / "d").iterdir())) == 5
    monkeypatch.setenv("CVLOSS_MAX_MEMBERS", "lots")
    with pytest.raises(UsageError, match=r"\$CVLOSS_MAX_MEMBERS must be a whole number >= 0; got 'lots'"):
        archive.safe_extract(path, tmp_path / "t")


def test_byte_cap_counts_the_bytes_really_written():
    # The streaming count, independent of any header: 5000 bytes against a 4000-byte budget.
    out = io.BytesIO()
    with pytest.raises(DatasetError, match=r"x\.zip: it expands to more than 4,000 uncompressed bytes"):
        archive._copy(io.BytesIO(b"x" * 5000), out, 0, 4000, Path("x.zip"), archive.Caps())
    assert out.getvalue() == b""  # the block over the cap is never written


# ----------------------------------------------------------------------------- hostile server
@contextlib.contextmanager
def serve(do_get):
    """A 127.0.0.1 HTTP server whose GET handler is ``do_get(handler)``; yields its URL."""
    handler = type("Handler", (BaseHTTPRequestHandler,), {"do_GET": do_get, "log_message": lambda *a: None})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def endless(length: int | None):
    """200 and zeros until the client hangs up, with a Content-Length (a lie) or none."""
    def do_get(handler):
        handler.send_response(200)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        handler.end_headers()
        try:
            while True:
                handler.wfile.write(bytes(1 << 16))
        except OSError:  # the client hung up
            pass
    return do_get


@pytest.mark.parametrize("length", [None, 10 << 30])
def test_endless_body_for_a_file_of_unknown_size_stops_at_twice_size_bytes(tmp_path, length):
    with serve(endless(length)) as url:
        info = evil.toy_dataset("big.zip", url=url, size_bytes=100_000)
        before = snapshot(tmp_path)
        with pytest.raises(DatasetError) as err:
            download(info, tmp_path / "data")
    msg = str(err.value)
    assert "\n" not in msg and "refusing big.zip of 'toy'" in msg and "200,000 bytes" in msg
    assert "2 x the dataset's size_bytes" in msg and "raise CVLOSS_MAX_DOWNLOAD_BYTES" in msg
    assert set(snapshot(tmp_path)) - set(before) == {"data", "data/toy"}  # the .part is deleted
    assert not is_present(info, tmp_path / "data")


def test_download_cap_is_a_limit_not_an_exact_size(tmp_path, monkeypatch):
    # A genuine file bigger than the catalog's estimate: 1.5 x size_bytes passes the cap, and
    # one past 2 x size_bytes passes once CVLOSS_MAX_DOWNLOAD_BYTES is raised.
    files = {"/ok.zip": evil.zip_bytes([("good/a.txt", os.urandom(1500))]),
             "/big.zip": evil.zip_bytes([("good/b.txt", os.urandom(5000))])}

    def do_get(handler):
        handler.send_response(200)
        handler.end_headers()  # no Content-Length either
        handler.wfile.write(files[handler.path])

    with serve(do_get) as url:
        small = evil.toy_dataset("ok.zip", url=url, size_bytes=len(files["/ok.zip"]) * 2 // 3)
        download(small, tmp_path / "a")
        assert is_present(small, tmp_path / "a")
        big = evil.toy_dataset("big.zip", url=url, size_bytes=1000)
        with pytest.raises(DatasetError, match="raise CVLOSS_MAX_DOWNLOAD_BYTES"):
            download(big, tmp_path / "b")
        monkeypatch.setenv("CVLOSS_MAX_DOWNLOAD_BYTES", str(1 << 20))
        download(big, tmp_path / "b")
        assert is_present(big, tmp_path / "b")


def test_refusals_are_cvloss_errors():
    from cvloss.errors import CvlossError

    assert issubclass(DatasetError, CvlossError) and issubclass(DatasetError, ValueError)

"""download / verify / safe extraction against a local HTTP server on 127.0.0.1 that
serves a tar.gz built here, with Range support implemented in the test handler."""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cvloss.data.fetch import download, safe_extract, verify
from cvloss.data.registry import DatasetError, is_present, load_catalog


# ----------------------------------------------------------------------------- helpers
def make_tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# Large enough (incompressible) that resuming half of it is a real saving.
PAYLOAD = {"toy/hello.txt": b"hello\n", "toy/data.bin": os.urandom(64 * 1024)}
ARCHIVE = make_tar_gz(PAYLOAD)


class Server:
    """Serves ``files`` ({path: bytes}); honours ``Range: bytes=N-`` unless ``ignore_range``.
    ``log`` records (path, Range header or None, status, bytes of body sent)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.ignore_range = False
        self.log: list[tuple[str, str | None, int, int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                data = outer.files.get(self.path)
                rng = self.headers.get("Range")
                # Log before answering: the client may finish before this thread does.
                if data is None:
                    outer.log.append((self.path, rng, 404, 0))
                    self.send_error(404)
                    return
                start = 0
                if rng and not outer.ignore_range:
                    assert rng.startswith("bytes=") and rng.endswith("-"), rng
                    start = int(rng[6:-1])
                    if start >= len(data):
                        outer.log.append((self.path, rng, 416, 0))
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                outer.log.append((self.path, rng, 206 if start else 200, len(body)))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with Server({"/toy.tar.gz": ARCHIVE}) as s:
        yield s


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/toy.tar.gz"  # nothing listens there any more


def toy_info(tmp_path: Path, url: str, checksum: str | None = None, algo: str = "md5", data: bytes = ARCHIVE,
             size: int | None = None, size_bytes: int | None = None):
    digest = checksum if checksum is not None or not algo else hashlib.new(algo, data).hexdigest()
    line = f'{algo} = "{digest}"' if algo else 'checksum = ""'
    (tmp_path / "cat.toml").write_text(f"""
[datasets.toy]
name = "toy"
tasks = ["seg"]
description = "toy"
urls = ["{url}"]
files = [{{ url = "{url}", filename = "toy.tar.gz", size = {len(data) if size is None else size}, {line} }}]
layout = ["toy/hello.txt", "toy/data.bin"]
size_bytes = {len(data) if size_bytes is None else size_bytes}
license = "MIT"
citation = "none"
loader = "cvloss.data.synthetic:load_synth_pets"
embedded = false
real = ""
splits = {{ train = "a", val = "b", test = "c" }}
""")
    return load_catalog(tmp_path / "cat.toml")["toy"]


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# ----------------------------------------------------------------------------- download
def test_download_verify_extract(server, tmp_path):
    info = toy_info(tmp_path, server.url + "/toy.tar.gz", algo="sha256")
    data_dir = tmp_path / "data"
    assert not is_present(info, data_dir)
    root = download(info, data_dir, progress=False)
    assert root == data_dir / "toy"
    for name, data in PAYLOAD.items():
        assert (root / name).read_bytes() == data
    assert (root / "toy.tar.gz").read_bytes() == ARCHIVE and not (root / "toy.tar.gz.part").exists()
    assert is_present(info, data_dir)
    [check] = verify(info, data_dir)
    assert check.status == "ok" and "sha256 ok" in check.message
    # Idempotent: a second call touches neither the network nor the files.
    n = len(server.log)
    download(info, data_dir)
    assert len(server.log) == n == 1


def test_progress_bar_runs(server, tmp_path, capsys):
    info = toy_info(tmp_path, server.url + "/toy.tar.gz")
    download(info, tmp_path / "data", progress=True)
    assert "toy.tar.gz" in capsys.readouterr().err  # rich draws on stderr, never stdout


def test_checksum_mismatch(server, tmp_path):
    info = toy_info(tmp_path, server.url + "/toy.tar.gz", checksum="0" * 32)
    with pytest.raises(DatasetError) as err:
        download(info, tmp_path / "data")
    msg = str(err.value)
    assert "corrupt" in msg and "0" * 32 in msg and hashlib.md5(ARCHIVE).hexdigest() in msg
    assert tree(tmp_path / "data") == {"toy"}  # no .part to resume, nothing extracted
    assert verify(info, tmp_path / "data")[0].status == "missing"


def test_resume_requests_only_the_remaining_bytes(server, tmp_path):
    info = toy_info(tmp_path, server.url + "/toy.tar.gz")
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    k = len(ARCHIVE) // 3
    (root / "toy.tar.gz.part").write_bytes(ARCHIVE[:k])
    download(info, tmp_path / "data")
    assert server.log == [("/toy.tar.gz", f"bytes={k}-", 206, len(ARCHIVE) - k)]
    assert (root / "toy.tar.gz").read_bytes() == ARCHIVE
    assert (root / "toy/data.bin").read_bytes() == PAYLOAD["toy/data.bin"]


def test_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range = True
    info = toy_info(tmp_path, server.url + "/toy.tar.gz")
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / "toy.tar.gz.part").write_bytes(b"stale bytes that must not be kept")
    download(info, tmp_path / "data")
    assert server.log == [("/toy.tar.gz", "bytes=33-", 200, len(ARCHIVE))]
    assert (root / "toy.tar.gz").read_bytes() == ARCHIVE


def test_complete_part_file_answered_416(server, tmp_path):
    info = toy_info(tmp_path, server.url + "/toy.tar.gz")
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / "toy.tar.gz.part").write_bytes(ARCHIVE)
    download(info, tmp_path / "data")
    assert [entry[2] for entry in server.log] == [416]
    assert (root / "toy/hello.txt").read_bytes() == b"hello\n"


def test_mirror_used_when_url_fails(server, tmp_path):
    info = toy_info(tmp_path, server.url + "/missing.tar.gz")
    body = (tmp_path / "cat.toml").read_text().replace(
        'filename = "toy.tar.gz"', f'filename = "toy.tar.gz", mirrors = ["{server.url}/toy.tar.gz"]')
    (tmp_path / "cat.toml").write_text(body)
    info = load_catalog(tmp_path / "cat.toml")["toy"]
    download(info, tmp_path / "data")
    assert [e[2] for e in server.log] == [404, 200]


def test_offline_error_names_url_and_manual_path_then_manual_file_works(tmp_path):
    url = closed_port_url()
    info = toy_info(tmp_path, url)
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetError) as err:
        download(info, data_dir)
    msg = str(err.value)
    target = data_dir / "toy" / "toy.tar.gz"
    assert url in msg and str(target) in msg and "\n" not in msg
    # The user fetches the archive by hand and drops it there: verified and extracted offline.
    target.write_bytes(ARCHIVE)
    download(info, data_dir)
    assert (data_dir / "toy" / "toy" / "hello.txt").read_bytes() == b"hello\n"


def test_wrong_manual_file_is_refused(tmp_path):
    info = toy_info(tmp_path, closed_port_url())
    target = tmp_path / "data" / "toy" / "toy.tar.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(ARCHIVE[:-1] + b"x")
    with pytest.raises(DatasetError, match="expected .*delete it"):
        download(info, tmp_path / "data")
    assert target.exists()  # the user's file is never deleted behind their back


def test_no_published_checksum_is_trusted_on_first_use(server, tmp_path):
    info = toy_info(tmp_path, server.url + "/toy.tar.gz", algo="", size=0)  # no size on record either
    root = tmp_path / "data" / "toy"
    download(info, tmp_path / "data")
    record = json.loads((root / ".tofu.json").read_text())["toy.tar.gz"]
    assert record["sha256"] == hashlib.sha256(ARCHIVE).hexdigest() and record["size"] == len(ARCHIVE)
    assert record["url"] == server.url + "/toy.tar.gz"
    [check] = verify(info, tmp_path / "data")
    assert check.status == "trusted-on-first-use" and "no published checksum" in check.message
    # The source now serves other bytes: a fresh download of them is refused and deleted.
    (root / "toy.tar.gz").unlink()
    server.files["/toy.tar.gz"] = make_tar_gz({"toy/hello.txt": b"HELLO\n", "toy/data.bin": b"x"})
    with pytest.raises(DatasetError) as err:
        download(info, tmp_path / "data")
    msg = str(err.value)
    assert "differs from the first download" in msg and "toy.tar.gz" in msg and "\n" not in msg
    assert not (root / "toy.tar.gz").exists() and not (root / "toy.tar.gz.part").exists()
    # A changed copy on disk is refused too, by download and by verify.
    (root / "toy.tar.gz").write_bytes(server.files["/toy.tar.gz"])
    with pytest.raises(DatasetError, match="differs from the first download.*delete it"):
        download(info, tmp_path / "data")
    assert verify(info, tmp_path / "data")[0].status == "mismatch"
    assert (root / "toy" / "hello.txt").read_bytes() == b"hello\n"  # the trusted copy's files stay


def test_file_found_on_disk_without_record_is_recorded(tmp_path):
    info = toy_info(tmp_path, closed_port_url(), algo="")
    root = tmp_path / "data" / "toy"
    root.mkdir(parents=True)
    (root / "toy.tar.gz").write_bytes(ARCHIVE)  # placed by hand, or by an older cvloss
    assert verify(info, tmp_path / "data")[0].status == "unverified"
    download(info, tmp_path / "data")  # no network needed
    assert verify(info, tmp_path / "data")[0].status == "trusted-on-first-use"
    assert is_present(info, tmp_path / "data")


def test_embedded_dataset_has_nothing_to_download(tmp_path):
    info = load_catalog()["synth-pets"]
    download(info, tmp_path)
    assert verify(info, tmp_path) == [] and not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- safe extraction
def evil_tar(tmp_path: Path, kind: str) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ok = tarfile.TarInfo("good.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))  # a harmless member first: it must not be written
        if kind == "dotdot":
            m = tarfile.TarInfo("sub/../../evil.txt")
            m.size = 4
            tf.addfile(m, io.BytesIO(b"evil"))
        elif kind == "absolute":
            m = tarfile.TarInfo(str(tmp_path / "evil.txt"))
            m.size = 4
            tf.addfile(m, io.BytesIO(b"evil"))
        elif kind == "symlink":
            m = tarfile.TarInfo("link")
            m.type = tarfile.SYMTYPE
            m.linkname = "../outside"
            tf.addfile(m)
            w = tarfile.TarInfo("link/evil.txt")  # would write through the link
            w.size = 4
            tf.addfile(w, io.BytesIO(b"evil"))
        elif kind == "hardlink":
            m = tarfile.TarInfo("hard")
            m.type = tarfile.LNKTYPE
            m.linkname = "../outside/secret"
            tf.addfile(m)
    path = tmp_path / f"{kind}.tar.gz"
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("kind,member", [("dotdot", "sub/../../evil.txt"), ("absolute", "evil.txt"),
                                         ("symlink", "'link'"), ("hardlink", "'hard'")])
def test_malicious_tar_is_refused_and_nothing_is_written(tmp_path, kind, member):
    (tmp_path / "outside").mkdir()
    archive = evil_tar(tmp_path, kind)
    target = tmp_path / "target"
    before = tree(tmp_path)
    with pytest.raises(DatasetError) as err:
        safe_extract(archive, target)
    assert member in str(err.value)
    assert tree(tmp_path) == before  # not even the target folder


def test_even_a_symlink_inside_the_target_is_refused(tmp_path):
    # No catalog dataset needs links, so none is ever created: no check has to resolve a
    # path through a link (the CVE-2025-4517 class of escapes cannot arise).
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        f = tarfile.TarInfo("d/file.txt")
        f.size = 1
        tf.addfile(f, io.BytesIO(b"x"))
        link = tarfile.TarInfo("d/alias.txt")
        link.type = tarfile.SYMTYPE
        link.linkname = "file.txt"
        tf.addfile(link)
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    with pytest.raises(DatasetError, match=r"a\.tar: member 'd/alias\.txt' is a symlink -> 'file\.txt'"):
        safe_extract(tmp_path / "a.tar", tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_malicious_zip_is_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr("../evil.txt", "evil")
    with pytest.raises(DatasetError, match=r"\.\./evil\.txt"):
        safe_extract(path, tmp_path / "t")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "t").exists()
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("horse2zebra/trainA/a.jpg", "x")
    safe_extract(good, tmp_path / "g")
    assert (tmp_path / "g" / "horse2zebra" / "trainA" / "a.jpg").read_text() == "x"


def test_download_of_malicious_archive_fails_cleanly(tmp_path):
    evil = evil_tar(tmp_path, "dotdot").read_bytes()
    with Server({"/toy.tar.gz": evil}) as s:
        info = toy_info(tmp_path, s.url + "/toy.tar.gz", data=evil)
        with pytest.raises(DatasetError, match="unsafe member path"):
            download(info, tmp_path / "data")
    assert not (tmp_path / "data" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "data" / "toy" / ".extracted-toy.tar.gz").exists()

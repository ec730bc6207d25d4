"""A catalog is data: it names registered loaders and never imports code unless
the user trusts it (``--trust-catalog``); its names, layout entries and URLs cannot lead
out of their folders; it is read only when it is a small regular file; every wrong shape
is one error line naming the file and the field. Data folders with a link loop or a
4000x1 image are one line too. No training here: every refusal comes before it."""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.data import folders, registry
from cvloss.data.registry import (MAX_CATALOG_BYTES, TRUST_ENV, DatasetError, dataset_dir, load_catalog,
                                  load_dataset, register_loader)
from cvloss.data.types import SegData

runner = CliRunner()

_spec = importlib.util.spec_from_file_location(
    "cvloss_test_fixtures_folder_datasets_security",
    Path(__file__).resolve().parents[1] / "fixtures" / "folder_datasets.py")
fd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fd)


def entry(name: str = "victim-data", loader: str = "seg-folder", url: str | None = None, **fields: str) -> str:
    """One ``[datasets.NAME]`` table (TOML text); ``fields`` replace whole lines
    (``tasks='5'`` writes ``tasks = 5``); ``url`` adds one downloadable file."""
    files = "[]" if url is None else (f'[{{ url = "{url}", filename = "x.zip", size = 0, '
                                      f'md5 = "0123456789abcdef0123456789abcdef" }}]')
    lines = {
        "name": f"'{name}'", "tasks": '["seg"]', "description": '"d"', "urls": "[]", "files": files,
        "layout": "[]", "size_bytes": "0", "license": '"l"', "citation": '""', "loader": f'"{loader}"',
        "embedded": "false", "real": '""', "splits": '{ train = "a", val = "b", test = "c" }',
    }
    lines.update(fields)
    return f"[datasets.'{name}']\n" + "".join(f"{k} = {v}\n" for k, v in lines.items())


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A data dir with a victim dataset folder (24 files and a marker), no user catalog and
    no trust in the environment; the CLI's exports are undone after the test."""
    data = tmp_path / "data"
    victim = fd.build_seg(data / "victim-data", n=11)  # 22 images and masks + classes.txt
    (victim / "MARKER").write_text("must survive\n")
    monkeypatch.setenv("CVLOSS_DATA", str(data))
    monkeypatch.setenv("CVLOSS_CATALOG", "")
    monkeypatch.setenv(TRUST_ENV, "")
    monkeypatch.delenv("CVLOSS_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- loaders
def test_a_deleting_loader_is_refused_and_the_victim_survives(env, monkeypatch):
    victim = env / "data" / "victim-data"
    before = tree(victim)
    assert len(before) == 24 and (victim / "MARKER").exists()
    (env / "cat.toml").write_text(entry(loader="shutil:rmtree"))
    train = ["train", "--task", "seg", "--loss", "ce", "--dataset", "victim-data", "--out", str(env / "out")]
    for args, how in ((train + ["--catalog", "cat.toml"], "--catalog"),
                      (["compare", "--task", "seg", "--losses", "ce", "--dataset", "victim-data", "--catalog", "cat.toml",
                        "--out", str(env / "out")], "compare"),
                      (["datasets", "list", "--catalog", "cat.toml"], "list"),
                      (["datasets", "download", "victim-data", "--catalog", "cat.toml"], "download")):
        line = one_error_line(runner.invoke(app, args))
        assert "loader = 'shutil:rmtree' names Python code" in line and "--trust-catalog" in line, how
        assert "cat.toml" in line and "victim-data" in line, how
    monkeypatch.setenv("CVLOSS_CATALOG", str(env / "cat.toml"))  # nothing on the command line
    line = one_error_line(runner.invoke(app, train))
    assert "shutil:rmtree" in line
    assert tree(victim) == before and (victim / "MARKER").read_text() == "must survive\n"
    assert not (env / "out").exists()


def test_a_code_running_loader_is_never_imported(env, monkeypatch):
    marker = env / "pwned"
    (env / "mods").mkdir()
    (env / "mods" / "evil_loader_mod.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        f"def run(root, split, **kw):\n    Path({str(marker)!r}).write_text('called')\n")
    monkeypatch.syspath_prepend(str(env / "mods"))
    (env / "cat.toml").write_text(entry(name="evil", loader="evil_loader_mod:run"))
    for args in (["train", "--task", "seg", "--loss", "ce", "--dataset", "evil", "--catalog", "cat.toml"],
                 ["datasets", "verify", "evil", "--catalog", "cat.toml"]):
        assert "evil_loader_mod:run" in one_error_line(runner.invoke(app, args))
    monkeypatch.setenv("CVLOSS_CATALOG", str(env / "cat.toml"))
    with pytest.raises(DatasetError, match="not trusted"):
        load_dataset("evil", "train")
    assert not marker.exists() and "evil_loader_mod" not in sys.modules


def _harmless_module(env: Path) -> None:
    (env / "mods").mkdir(exist_ok=True)
    (env / "mods" / "tiny_loader_mod.py").write_text(
        "import torch\nfrom cvloss.data.types import SegData\n"
        "def load(root, split, size=8, limit=None, seed=0):\n"
        "    n = {'train': 3, 'val': 2, 'test': 1}[split]\n"
        "    return SegData(torch.zeros(n, 3, size, size, dtype=torch.uint8), torch.zeros(n, size, size, "
        "dtype=torch.int64), ('bg', 'fg'), 'mine')\n")


def test_trust_catalog_lets_a_module_function_loader_run(env, monkeypatch):
    _harmless_module(env)
    monkeypatch.syspath_prepend(str(env / "mods"))
    (env / "cat.toml").write_text(entry(name="mine", loader="tiny_loader_mod:load"))
    (env / "data" / "mine").mkdir()
    refused = runner.invoke(app, ["datasets", "list", "--catalog", "cat.toml"])
    assert "tiny_loader_mod:load" in one_error_line(refused)
    assert os.environ.get("CVLOSS_CATALOG") == "" and os.environ.get(TRUST_ENV) == ""  # a refusal leaves no trace
    ok = runner.invoke(app, ["datasets", "list", "--task", "seg", "--catalog", "cat.toml", "--trust-catalog"])
    assert ok.exit_code == 0, ok.stderr
    assert "mine" in ok.stdout
    digest = hashlib.sha256((env / "cat.toml").read_bytes()).hexdigest()
    assert os.environ[TRUST_ENV] == digest  # what a worker process inherits
    data = load_dataset("mine", "val", size=8)
    assert isinstance(data, SegData) and tuple(data.images.shape) == (2, 3, 8, 8)
    # the trust is in the bytes: an edit after the command started is not trusted
    (env / "cat.toml").write_text(entry(name="mine", loader="tiny_loader_mod:load") + "# edited\n")
    with pytest.raises(DatasetError, match="not trusted"):
        load_catalog()
    # and a later command without the flag clears the trust it finds in the environment
    (env / "cat.toml").write_text(entry(name="mine", loader="tiny_loader_mod:load"))
    assert os.environ[TRUST_ENV] == digest
    assert "not trusted" in one_error_line(runner.invoke(app, ["datasets", "list", "--catalog", "cat.toml"]))


CALLS: list[tuple[str, str]] = []


def tiny_loader(root, split, size=8, limit=None, seed=0):
    """A plugin's loader (registered by the test that uses it)."""
    CALLS.append((Path(root).name, split))
    return SegData(torch.zeros(1, 3, size, size, dtype=torch.uint8), torch.zeros(1, size, size, dtype=torch.int64),
                   ("bg", "fg"), "mine")


def test_registered_loaders_need_no_trust(env, monkeypatch):
    """A plugin's register_loader name (and its module:function), an installed package's
    entry point, and the module:function of cvloss's own loaders are names, not code."""
    monkeypatch.setattr(registry, "_REGISTERED", {})
    monkeypatch.setenv("CVLOSS_DATA_CACHE", "0")  # every load calls the loader
    CALLS.clear()
    tiny = register_loader("tiny-seg")(tiny_loader)
    with pytest.raises(DatasetError, match="registered already"):
        register_loader("tiny-seg")(len)
    with pytest.raises(DatasetError, match="cvloss's own"):
        register_loader("seg-folder")(len)
    with pytest.raises(DatasetError, match="not a plain name"):
        register_loader("../x")
    (env / "data" / "mine").mkdir()
    target = f"{tiny.__module__}:{tiny.__qualname__}"
    for loader in ("tiny-seg", target):
        (env / "cat.toml").write_text(entry(name="mine", loader=loader))
        monkeypatch.setenv("CVLOSS_CATALOG", str(env / "cat.toml"))
        assert load_dataset("mine", "test", size=8, task="seg").images.shape == (1, 3, 8, 8)
    assert CALLS == [("mine", "test")] * 2
    (env / "cat.toml").write_text(entry(name="mine", loader="cvloss.data.folders:load_seg_folder"))
    assert load_catalog()["mine"].loader == "cvloss.data.folders:load_seg_folder"
    ep = importlib.metadata.EntryPoint(name="ep-seg", value="cvloss.data.folders:load_seg_folder",
                                       group=registry.LOADER_ENTRY_POINTS)
    monkeypatch.setattr(registry, "_ENTRY_POINTS", {})
    monkeypatch.setattr(registry, "_EP_STATE", {"read": False})
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [ep] if group == ep.group else [])
    (env / "cat.toml").write_text(entry(name="mine", loader="ep-seg"))
    assert load_catalog()["mine"].loader == "cvloss.data.folders:load_seg_folder"
    assert "ep-seg" in registry.loader_names()


def test_an_unknown_loader_name_is_refused_before_training(env, monkeypatch):
    (env / "cat.toml").write_text(entry(name="mine", loader="no-such-loader"))
    monkeypatch.setenv("CVLOSS_CATALOG", str(env / "cat.toml"))
    assert load_catalog()["mine"].loader == "no-such-loader"  # a --plugin may register it later
    monkeypatch.setenv("CVLOSS_CATALOG", "")
    line = one_error_line(runner.invoke(app, ["train", "--task", "seg", "--loss", "ce", "--dataset", "mine",
                                              "--catalog", "cat.toml", "--out", str(env / "out")]))
    assert "unknown loader 'no-such-loader'" in line and "--plugin" in line and "seg-folder" in line
    assert not (env / "out").exists()


# ----------------------------------------------------------------------------- names and URLs
@pytest.mark.parametrize("name", ["../../x", "a/b", "/abs", "..", "Upper", "a..b", ".hidden", "a\\b", "x" * 101])
def test_names_that_could_leave_their_folder_are_refused(env, name):
    (env / "cat.toml").write_text(entry(name=name))
    with pytest.raises(DatasetError, match="is not a plain name") as err:
        load_catalog(env / "cat.toml")
    assert str(env / "cat.toml") in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="is not a plain name"):
        dataset_dir(name, env / "data")
    if not name.startswith("/"):
        with pytest.raises(DatasetError, match="is not a plain name"):
            folders.dataset_label(name)


def test_a_plain_name_stays_in_the_data_dir(env):
    assert dataset_dir("my-data.v2", env / "data") == env / "data" / "my-data.v2"
    assert folders.dataset_label("my-data.v2") == "my-data.v2"


@pytest.mark.parametrize("field, value", [
    ("layout", '["../outside"]'), ("layout", '["/etc"]'), ("layout", '["a|../b"]'), ("real", '"../x"'),
])
def test_layout_and_real_stay_inside(env, field, value):
    (env / "cat.toml").write_text(entry(**{field: value}))
    with pytest.raises(DatasetError, match=rf"{field}|not a plain name"):
        load_catalog(env / "cat.toml")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x.zip", "http:///nohost.zip", "x.zip",
                                 "https://host/a b.zip", "javascript:alert(1)"])
def test_download_urls_are_http_or_https_only(env, url):
    (env / "cat.toml").write_text(entry(url=url))
    with pytest.raises(DatasetError, match="is not an https:// or http:// URL") as err:
        load_catalog(env / "cat.toml")
    assert "files[0]" in str(err.value)
    mirror = entry(url="https://host/x.zip").replace('size = 0,', f'size = 0, mirrors = ["{url}"],')
    (env / "cat.toml").write_text(mirror)
    with pytest.raises(DatasetError, match="mirror"):
        load_catalog(env / "cat.toml")
    line = one_error_line(runner.invoke(app, ["datasets", "download", "victim-data", "--catalog", str(env / "cat.toml")]))
    assert "https:// or http://" in line
    assert not (env / "data" / "victim-data" / "x.zip").exists()


def test_a_redirect_away_from_http_is_refused(tmp_path, monkeypatch):
    from cvloss.data import fetch

    class Landed:  # what urlopen returns after following a redirect to ftp://
        status, headers = 200, {}

        def geturl(self):
            return "ftp://elsewhere/x.zip"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            raise AssertionError("nothing may be read from a non-http(s) URL")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda req, timeout: Landed())
    with pytest.raises(fetch.urllib.error.URLError, match="redirected to a ftp:// URL"):
        fetch._fetch("https://host/x.zip", tmp_path / "x.zip.part", "x.zip", None, 1.0, 100)
    assert not (tmp_path / "x.zip.part").exists()


# ----------------------------------------------------------------------------- bounded reads
def test_a_device_or_oversized_catalog_is_one_line(env, monkeypatch):
    monkeypatch.setenv("CVLOSS_CATALOG", "/dev/zero")
    with pytest.raises(DatasetError, match="/dev/zero is not a regular file"):
        load_catalog()
    line = one_error_line(runner.invoke(app, ["datasets", "list"]))
    assert "/dev/zero is not a regular file" in line
    big = env / "big.toml"
    big.write_text("# padding\n" * (MAX_CATALOG_BYTES // 10 + 1))
    monkeypatch.setenv("CVLOSS_CATALOG", str(big))
    with pytest.raises(DatasetError, match="larger than 1,048,576 bytes"):
        load_catalog()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_catalog_is_refused_without_waiting_for_a_writer(env, monkeypatch):
    fifo = env / "cat.toml"
    os.mkfifo(fifo)
    monkeypatch.setenv("CVLOSS_CATALOG", str(fifo))
    outcome: list[BaseException | None] = []

    def read():
        try:
            load_catalog()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)  # a guard: the reader must not block on open()
    if reader.is_alive():  # unblock it (a writer end), then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO catalog blocked")
    assert isinstance(outcome[0], DatasetError) and "is not a regular file" in str(outcome[0])


# ----------------------------------------------------------------------------- shapes
GOOD = entry(url="https://host/x.zip")


@pytest.mark.parametrize("old, new, field", [
    ('tasks = ["seg"]', "tasks = 5", "tasks must be a list of strings, got 5"),
    ('tasks = ["seg"]', "tasks = [1]", "tasks must be a list of strings"),
    ("size_bytes = 0", 'size_bytes = "abc"', "size_bytes must be an integer >= 0, got 'abc'"),
    ("size_bytes = 0", "size_bytes = -1", "size_bytes must be an integer >= 0"),
    ("size_bytes = 0", "size_bytes = true", "size_bytes must be an integer >= 0, got True"),
    ("embedded = false", 'embedded = "no"', "embedded must be true or false"),
    ('description = "d"', "description = 5", "description must be a string"),
    ('loader = "seg-folder"', "loader = 5", "loader must be a string"),
    ("name = 'victim-data'", "name = 5", "name must be a string"),
    ("urls = []", "urls = [1]", "urls must be a list of strings"),
    ("layout = []", 'layout = "images"', "layout must be a list of strings"),
    ('splits = { train = "a", val = "b", test = "c" }', "splits = 5", "splits must be a table"),
    ('splits = { train = "a", val = "b", test = "c" }', 'splits = { train = 1, val = "b", test = "c" }',
     "must describe each split"),
    ('files = [{', "files = [5, {", "files must be a list of tables"),
    ("size = 0,", 'size = "big",', "files[0]: size must be an integer >= 0"),
    ('md5 = "0123456789abcdef0123456789abcdef"', "md5 = 5", "files[0]: md5 must be a string"),
    ("size = 0,", 'size = 0, mirrors = "https://m/x.zip",', "mirrors must be a list of strings"),
    ('filename = "x.zip"', 'filename = ".tofu.json"', "must be a plain file name"),
    ('loader = "seg-folder"', 'loader = "not a name"', "is not a loader name"),
])
def test_every_wrong_shape_is_one_line_naming_file_and_field(env, old, new, field):
    assert old in GOOD
    (env / "cat.toml").write_text(GOOD.replace(old, new, 1))
    with pytest.raises(DatasetError) as err:
        load_catalog(env / "cat.toml")
    msg = str(err.value)
    assert field in msg and str(env / "cat.toml") in msg and "dataset 'victim-data'" in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("text, fragment", [
    ("datasets = 5\n", "datasets must be tables"),
    ("[datasets]\nx = 5\n", "dataset 'x' must be a table"),
    ("[defaults]\nseg = 5\n", "[defaults] must map tasks to dataset names"),
    ("title = 'mine'\n", "unknown top-level keys ['title']"),
    ("a = " + "[" * 5000 + "\n", "nests arrays or tables too deeply"),
    ("\xff\xfe", "not UTF-8 text"),
    (GOOD.replace("layout = []", 'layout = []\nfiles2 = 1'), "unknown keys ['files2']"),
    (GOOD.replace('size = 0,', 'size = 0, filename = "y.zip",'), "not valid TOML"),
])
def test_catalog_level_shapes_are_one_line(env, text, fragment):
    path = env / "cat.toml"
    path.write_bytes(text.encode("latin-1") if text == "\xff\xfe" else text.encode())
    with pytest.raises(DatasetError) as err:
        load_catalog(path)
    assert fragment in str(err.value) and str(path) in str(err.value), str(err.value)


def test_the_cli_names_the_field_of_a_broken_user_catalog(env):
    (env / "cat.toml").write_text(GOOD.replace("size_bytes = 0", 'size_bytes = "abc"'))
    line = one_error_line(runner.invoke(app, ["compare", "--task", "seg", "--losses", "ce", "--catalog", "cat.toml",
                                              "--out", str(env / "out")]))
    assert "dataset 'victim-data': size_bytes must be an integer >= 0, got 'abc'" in line
    assert not (env / "out").exists()


# ----------------------------------------------------------------------------- data folders
def test_a_symlink_loop_in_a_data_folder_is_one_line(env):
    root = fd.build_sr(env / "looped")
    (root / "sub").mkdir()
    (root / "sub" / "self").symlink_to(root / "sub" / "self")
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    with pytest.raises(DatasetError, match="is a symbolic link loop"):
        folders.index_folder(root, "sr")
    line = one_error_line(runner.invoke(app, ["compare", "--task", "sr", "--losses", "l1", "--dataset", str(root),
                                              "--out", str(env / "out")]))
    assert "symbolic link loop" in line and str(root) in line
    assert not (env / "out").exists()


def test_a_4000x1_image_is_one_line_naming_it(env):
    from PIL import Image

    root = fd.build_sr(env / "strip")
    Image.new("RGB", (4000, 1)).save(root / "strip.png")
    with pytest.raises(DatasetError, match=r"strip.png is 4000x1 px: cvloss needs at least 8 px on each side"):
        folders.index_folder(root, "sr")
    seg = fd.build_seg(env / "seg-strip", n=4)
    Image.new("RGB", (1, 4000)).save(seg / "images" / "img01.png")
    Image.new("L", (1, 4000)).save(seg / "masks" / "img01.png")
    with pytest.raises(DatasetError, match=r"img01.png is 1x4000 px"):
        folders.index_folder(seg, "seg")

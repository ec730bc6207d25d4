"""A corpus of plausible wrong calls: each is refused with exactly one ``error:`` line on
stderr, nothing on stdout, exit code 2, no traceback, and nothing written anywhere --
not the results folder, the data folder, the current directory or the caches."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cvloss.cli import app

runner = CliRunner()


def _compare(task: str, losses: str, *extra: str) -> list[str]:
    return ["compare", "--task", task, "--losses", losses, *extra]


def _seg(*extra: str) -> list[str]:
    return _compare("seg", "ce", *extra)


# (arguments, a fragment the one error line must contain). {png} and {txt} are files the
# test writes before it takes its snapshot; {out} and {data} are folders that must not appear;
# {bad} holds the broken dataset folders and catalogs of _bad_folders; {torch} is $TORCH_HOME.
# Fragments are formatted with the same names.
CASES: list[tuple[list[str], str]] = [
    # names
    (_compare("nope", "ce"), "unknown task 'nope'"),
    (_compare("seg", "ce,mes"), "unknown loss 'mes'"),
    (_compare("seg", "ce,triplet"), "does not serve task 'seg'"),
    (_compare("embed", "dice"), "does not serve task 'embed'"),
    (_seg("--dataset", "lfw"), "dataset 'lfw' serves embed"),
    (_seg("--dataset", "pets"), "unknown dataset 'pets'"),
    (_seg("--dataset", ""), "unknown dataset ''"),
    (_compare("gan", "ns", "--dataset", "synth-pets"), "dataset 'synth-pets' serves seg"),
    (_seg("--budget", "huge"), "unknown budget 'huge'"),
    (_seg("--budget", ""), "unknown budget ''"),
    (_seg("--device", "tpu"), "unknown device 'tpu'"),
    (["losses", "show", "nope"], "unknown loss 'nope'"),
    (["losses", "list", "--task", "nope"], "unknown task 'nope'"),
    (["datasets", "list", "--task", "nope"], "unknown task 'nope'"),
    (["datasets", "download", "nope"], "unknown dataset 'nope'"),
    (["datasets", "verify", "nope"], "unknown dataset 'nope'"),
    (["losses", "show", "softiou"], "not a built-in loss; if it comes from a plugin, pass --plugin MODULE"),
    (_compare("seg", "ce,softiou"), "if it comes from a plugin, pass --plugin MODULE"),
    # seeds
    (_seg("--seeds", "0"), "--seeds must be a count >= 1"),
    (_seg("--seeds", "-1"), "--seeds must be a count >= 1"),
    (_seg("--seeds", "0,,1"), "--seeds must be a count >= 1"),
    (_seg("--seeds", "0,0"), "distinct"),
    (_seg("--seeds", "abc"), "--seeds must be a count"),
    (_seg("--seeds", "1.5"), "--seeds must be a count"),
    (_seg("--seeds", "0,-1"), "distinct non-negative"),
    (_seg("--seeds", "1000000000"), "--seeds allows at most 10000 seeds below 2**32"),
    (_seg("--seeds", "0,4294967296"), "--seeds allows at most 10000 seeds below 2**32"),
    (["train", "--task", "seg", "--loss", "ce", "--seed", "-1"], "--seed must be >= 0"),
    # settings: type, range, one value, canonical keys
    (_seg("--set", "epoch=1"), "unknown setting 'epoch'"),
    (_seg("--set", "epochs=0"), "--set epochs=0: expected int >= 1"),
    (_seg("--set", "epochs=-1"), "--set epochs=-1"),
    (_seg("--set", "epochs=abc"), "--set epochs=abc"),
    (_seg("--set", "epochs=1.5"), "--set epochs=1.5"),
    (_seg("--set", "epochs=none"), "epochs cannot be none"),
    (_seg("--set", "epochs="), "empty value"),
    (_seg("--set", "batch_size=0"), "--set batch_size=0"),
    (_seg("--set", "lr=abc"), "--set lr=abc: expected float > 0"),
    (_seg("--set", "lr=0"), "--set lr=0"),
    (_seg("--set", "lr=-1e-3"), "--set lr=-1e-3"),
    (_seg("--set", "lr=nan"), "lr must be finite"),
    (_seg("--set", "lr=inf"), "lr must be finite"),
    (_seg("--set", "lr=1e-3,1e-4"), "one value per setting"),
    (_seg("--set", "lr=1e-3", "--set", "lr=1e-4"), "given twice"),
    (_seg("--set", "augment=maybe"), "expected true or false"),
    (_seg("--set", "amp=2"), "--set amp=2"),
    (_seg("--set", "channels_last=perhaps"), "--set channels_last=perhaps"),
    (_seg("--set", "epochs"), "--set expects key=value"),
    (_seg("--set", "=3"), "--set expects key=value"),
    (_seg("--set", "n_train=0"), "--set n_train=0"),
    # upper bounds: the same on a laptop and a GPU node, far beyond any protocol
    (_seg("--set", "epochs=1e23"), "--set epochs=1e23: expected int >= 1, <= 100000"),
    (_seg("--set", "epochs=100001"), "--set epochs=100001: expected int >= 1, <= 100000"),
    (_seg("--set", "n_train=10000000000"), "--set n_train=10000000000: expected int >= 1, <= 10000000 or none"),
    (_seg("--set", "image_size=100000"), "--set image_size=100000: expected int >= 8, <= 8192"),
    (_compare("gan", "ns", "--set", "steps_per_epoch=1000000000"), "expected int >= 1, <= 10000000"),
    (_seg("--set", "n_val=-3"), "--set n_val=-3"),
    (_seg("--set", "image_size=4"), "--set image_size=4"),
    (_seg("--set", "width=0"), "--set width=0"),
    (_seg("--set", "depth=abc"), "--set depth=abc"),
    (_compare("sr", "l1", "--set", "scale=5"), "--set scale=5"),
    (_compare("sr", "l1", "--set", "global_skip=maybe"), "one of bicubic, none"),
    (_compare("sr", "l1", "--set", "patch=0"), "--set patch=0"),
    (_compare("sr", "l1", "--set", "hr_size=abc"), "--set hr_size=abc"),
    (_compare("style", "content+style", "--set", "optimizer=sgd"), "one of lbfgs, adam"),
    (_compare("style", "content+style", "--set", "image_size=8"), "--set image_size=8"),
    (_compare("style", "content+style", "--set", "content=/nonexistent/c.png", "--set", "style=/nonexistent/s.png"),
     "no such file"),
    (_compare("style", "content+style", "--set", "content={txt}", "--set", "style={txt}"), "not a readable image"),
    (_compare("style", "content+style", "--set", "content={png}"), "give both a content and a style image"),
    (_compare("translate", "lsgan+cycle", "--set", "image_size=30"), "divisible by 2**n_down"),
    (_compare("translate", "lsgan+cycle", "--set", "load_size=16"), "load_size (16) must be >= image_size (32)"),
    (_compare("embed", "triplet", "--set", "K=1"), "--set K=1"),
    (_compare("embed", "triplet", "--set", "P=1"), "--set P=1"),
    (_compare("gan", "ns", "--set", "optimizer=rmsprop"),
     "--set optimizer=rmsprop: expected one of equal, paper (task gan)"),
    (_compare("gan", "wgan", "--set", "optimizer=adam"), "expected one of equal, paper"),
    (_compare("translate", "wgan+cycle", "--set", "optimizer=Paper"), "--set optimizer=Paper: expected one of equal, paper"),
    (_compare("translate", "lsgan+cycle", "--set", "optimizer=equal,paper"), "one value per setting"),
    (_compare("sr", "l1+1e-3*ns", "--set", "optimizer=paper"), "--set optimizer=paper: expected one of equal (task sr)"),
    # losses
    (_compare("seg", "ce,,dice"), "empty item"),
    (_compare("seg", "ce,"), "empty item"),
    (_compare("seg", ","), "--losses needs at least one loss spec"),
    (_compare("seg", ""), "--losses needs at least one loss spec"),
    (_compare("seg", "ce,ce"), "the same loss twice"),
    (_compare("seg", "ce("), "syntax error at column 4"),
    (_compare("seg", "ce+"), "syntax error"),
    (_compare("seg", "0.5*"), "syntax error"),
    (_compare("seg", "ce(foo=1)"), "foo"),
    (_compare("seg", "ce(label_smoothing=abc)"), "label_smoothing"),
    (_compare("gan", "ns+wgan"), "2 adversarial terms"),
    (_compare("translate", "lsgan+wgan_gp+cycle"), "2 adversarial terms"),
    (["train", "--task", "gan", "--loss", "ns+wgan"], "2 adversarial terms"),
    (["train", "--task", "seg", "--loss", ""], "empty loss spec"),
    (_compare("sr", "l1(reduction=none)"), "train and compare need a scalar"),
    (_compare("seg", "ce,0.5*focal(reduction=none)"), "loss 'focal(reduction=none)': reduction=none"),
    (["train", "--task", "seg", "--loss", "ce(reduction=none)"], "need a scalar"),
    (_compare("seg", "ce(weight=[1,-1,1])"), "weight must list one finite weight >= 0"),
    (_compare("seg", "dice(ignore_index=x)"), "ignore_index='x' must be int or none"),
    # plugins
    (_seg("--plugin", "no_such_plugin_module"), "no module named 'no_such_plugin_module'"),
    (_seg("--plugin", "{cwd}/missing.py"), "no such .py file"),
    (_seg("--plugin", "{txt}"), "not a .py file"),
    (_seg("--plugin", "not a module"), "not a module name"),
    (["train", "--task", "seg", "--loss", "ce", "--plugin", "no_such_plugin_module"], "no module named"),
    (["losses", "list", "--plugin", "no_such_plugin_module"], "no module named"),
    (["losses", "show", "ce", "--plugin", "{cwd}/missing.py"], "no such .py file"),
    # options
    (_seg("--out", ""), "--out is empty"),
    (["train", "--task", "seg", "--loss", "ce", "--out", " "], "--out is empty"),
    (_seg("--feature-weights", "imagnet"), "unknown feature weights 'imagnet'"),
    (_seg("--feature-weights", "random:x"), "the seed after 'random:' must be an integer"),
    (_seg("--feature-weights", ""), "feature weights must be auto, imagenet"),
    # ImageNet weights asked for, not in torch's cache, no network (the sandbox is offline):
    # refused before torch creates its cache folders or prints its download notice
    (_compare("sr", "l1", "--feature-weights", "imagenet"),
     "ImageNet vgg16 weights are not in torch's cache and cannot be downloaded (offline (test)): "
     "fetch https://download.pytorch.org/models/vgg16-397923af.pth and put it at {torch}/hub/checkpoints/"),
    (["train", "--task", "seg", "--loss", "ce+0.1*topo", "--feature-weights", "imagenet"],
     "fetch https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
    (_compare("style", "content+style", "--feature-weights", "imagenet"), "ImageNet vgg19 weights are not in"),
    (_compare("sr", "l1+0.01*perceptual(weights=imagenet)", "--feature-weights", "random"),
     "ImageNet vgg16 weights are not in torch's cache"),
    (_seg("--threads", "0"), "--threads must be >= 1"),
    (_seg("--jobs", "0"), "--jobs must be >= 1"),
    (_seg("--jobs", "-2"), "--jobs must be >= 1"),
    (_seg("--jobs", "two"), "Invalid value for '--jobs'"),
    (_seg("--devices", "x"), "expected comma-separated CUDA device indices"),
    (_seg("--devices", "0,0"), "lists a device twice"),
    (_seg("--devices", "-1"), "expected comma-separated CUDA device indices"),
    (_seg("--devices", "99"), "no CUDA device 99"),
    (_seg("--jobs", "2", "--devices", "0", "--device", "cpu"), "cannot go with --device cpu")
    if torch.cuda.is_available() else (_seg("--jobs", "2", "--devices", "0"), "no CUDA device 0"),
    (_seg("--device", "cuda:7"), "--device cuda:7: no such CUDA device"),
    (_seg("--log", "neptune"), "unknown --log 'neptune'"),
    (_seg("--target-effect", "0"), "--target-effect must be a positive difference"),
    (_seg("--target-effect", "-0.1"), "--target-effect must be a positive difference"),
    (_seg("--target-effect", "nan"), "--target-effect must be a positive difference"),
    # hyper-parameter search
    (_seg("--tune", "lr=log(1e-2,1e-4)"), "empty range"),
    (_seg("--tune", "lr=log(0,1e-2)"), "log needs positive bounds"),
    (_seg("--tune", "lr=exp(1,2)"), "expected NAME=log(a,b)"),
    (_seg("--tune", "lrate=log(1e-4,1e-2)"), "not a setting of task seg"),
    (_seg("--tune", "topo.mu=log(0.01,1)"), "no loss of --losses has a term 'topo'"),
    (_seg("--tune", "lr=log(1e-4,1e-2)", "--tune-trials", "0"), "--tune-trials must be >= 1"),
    (_seg("--tune-trials", "4"), "--tune-trials needs --tune"),
    (_seg("--tune", "lr=log(1e-4,1e-2)", "--tune-sampler", "bayes"), "valid samplers: lhs, random, grid, tpe"),
    (_seg("--tune", "lr=choice(1e-3)"), "choice needs two or more distinct values"),
    (_seg("--tune", "augment=choice(true,false)", "--tune-sampler", "grid"), "the grid of this space has only 2 points"),
    (_seg("--tune", "lr=log(1e-4,1e-2)", "--tune", "lr=uniform(0.1,0.2)"), "names lr twice"),
    (_seg("--tune", "lr=log(1e-4,1e-2)", "--seeds", "10000,1"), "--seeds must stay below 10000"),
    # ... bounded, and checked whole (every candidate on every spec) before the first folder
    (_seg("--tune", "lr=log(1e-4,1e-2)", "--tune-trials", "1000000000", "--tune-sampler", "grid"),
     "--tune-trials 1000000000: at most 10000 candidates per loss"),
    (_seg("--tune", "lr=choice(" + ",".join(f"{(i + 1) * 1e-5:g}" for i in range(400)) + ")",
          "--tune", "weight_decay=choice(" + ",".join(f"{i * 1e-4:g}" for i in range(400)) + ")",
          "--tune-sampler", "grid", "--tune-trials", "2"), "has 160000 points (400x400), more than 100000"),
    (_seg("--tune", "lr=choice(a,b)"), "--tune 'lr=choice(a,b)': lr=a: expected float > 0"),
    (_seg("--tune", "ce.nope=uniform(0,1)"), "--tune 'ce.nope': loss 'ce' has no argument 'nope'"),
    (_compare("seg", "ce+dice", "--tune", "dice.weight=uniform(-5,-1)"), "a loss weight must be >= 0"),
    (_seg("--tune", "epochs=uniform(1,4)"), "epochs takes whole numbers: use int(a,b) or choice"),
    (_seg("--tune", "ce.label_smoothing=uniform(0.5,2)"), "label_smoothing must lie in [0, 1)"),
    (_compare("translate", "lsgan+cycle", "--tune", "image_size=choice(32,30)"),
     "image_size 30 must be divisible by 2**n_down = 4"),
    (["train", "--task", "seg", "--loss", "ce", "--threads", "-1"], "--threads must be >= 1"),
    # executors: --address only with Ray, checked before Ray is asked for (these need no Ray)
    (_seg("--address", "auto"), "--address is an option of --executor ray: it needs --executor ray"),
    (_seg("--executor", "pbs"), "unknown --executor 'pbs'; valid: local, ray, slurm"),
    (_seg("--executor", "ray", "--address", "head-node"), "expected auto or HOST:PORT"),
    (_seg("--executor", "ray", "--address", "head:99999"), "expected auto or HOST:PORT"),
    (_seg("--executor", "ray", "--devices", "0,0"), "expected distinct comma-separated GPU indices"),
    (_seg("--executor", "ray", "--device", "cuda"), "Ray places trials on GPUs; use --devices"),
    (_seg("--executor", "ray", "--devices", "0", "--device", "cpu"), "cannot go with --device cpu"),
    # data that is not there
    (_seg("--dataset", "oxford-pets"), "cvloss datasets download oxford-pets"),
    (["datasets", "verify", "oxford-pets"], "nothing to verify: dataset 'oxford-pets' has no folder {data}/oxford-pets"),
    (["datasets", "verify", "div2k", "--data-dir", "{data}/nonexistent"],
     "has no folder {data}/nonexistent/div2k; run `cvloss datasets download div2k`"),
    (_compare("sr", "l1", "--dataset", "div2k"), "cvloss datasets download div2k"),
    (_compare("embed", "triplet", "--dataset", "lfw"), "cvloss datasets download lfw"),
    # dataset folders (built by _bad_folders) and user catalogs
    (_seg("--dataset", "{bad}/seg-no-images"), "no images in"),
    (_seg("--dataset", "{bad}/seg-mask-size"), "seg-mask-size/masks/img02.png is 8x8 px but its image"),
    (_seg("--dataset", "{bad}/seg-class-id"), "seg-class-id/masks/img02.png has class id 7, but classes.txt names 3"),
    (_seg("--dataset", "{bad}/seg-rgb-mask"), "seg-rgb-mask/masks/img02.png is a PNG of mode RGB"),
    (_seg("--dataset", "{bad}/seg-no-mask"), "seg-no-mask/images/img02.png has no mask"),
    (_seg("--dataset", "{bad}/seg-unreadable"), "seg-unreadable/images/img02.png: OSError"),
    (_seg("--dataset", "{bad}/seg-split-overlap"), "test.txt line 1: 'img00' is already listed in splits/train.txt"),
    (_seg("--dataset", "{bad}/seg-split-unknown"), "val.txt line 1: 'img99' is not in the dataset folder"),
    (_compare("embed", "triplet", "--dataset", "{bad}/embed-few-ids"), "identities with 2+ images"),
    (["train", "--task", "seg", "--loss", "ce", "--dataset", "{bad}/seg-ignore"],
     "the data declares ignore_index 255 (classes.txt) but loss term(s) ce do not"),
    (_compare("translate", "lsgan+cycle", "--dataset", "{bad}/translate-empty"), "translate-empty/trainB holds no images"),
    (_compare("sr", "l1", "--dataset", "{bad}/sr-symlink"), "sr-symlink/link.png is a symbolic link out of the dataset"),
    (_compare("sr", "l1", "--dataset", "{bad}/sr-empty"), "sr-empty: no images"),
    (_seg("--dataset", "{bad}/sr-symlink"), "a seg folder needs images/ and masks/; this one lacks images/, masks/"),
    (_compare("style", "content+style", "--dataset", "{bad}/sr-empty"), "task 'style' takes no dataset folder"),
    (_seg("--dataset", "./no-such-folder"), "--dataset ./no-such-folder: no such folder"),
    (_seg("--dataset", "{png}"), "not a folder"),
    (_seg("--catalog", "{bad}/clash.toml"), "dataset 'synth-pets' is a built-in dataset"),
    (_seg("--catalog", "{bad}/no-such.toml"), "no-such.toml not found"),
    (_seg("--catalog", "{txt}"), "is not valid TOML"),
    (["datasets", "list", "--catalog", "{bad}/clash.toml"], "is a built-in dataset"),
    # untrusted catalogs: no code named by a catalog, no name or URL out of its folder
    (_seg("--catalog", "{bad}/rmtree.toml", "--dataset", "victim-data"), "loader = 'shutil:rmtree' names Python code"),
    (["train", "--task", "seg", "--loss", "ce", "--catalog", "{bad}/rmtree.toml"], "pass --trust-catalog"),
    (["datasets", "download", "victim-data", "--catalog", "{bad}/rmtree.toml"], "names Python code"),
    (["datasets", "list", "--catalog", "{bad}/escape.toml"], "'../../escaped' is not a plain name"),
    (["datasets", "download", "leak", "--catalog", "{bad}/file-url.toml"],
     "url 'file:///etc/passwd' is not an https:// or http:// URL"),
    (_seg("--catalog", "{bad}/tasks-int.toml"), "dataset 'my-data': tasks must be a list of strings, got 5"),
    (["datasets", "list", "--catalog", "{bad}/size-str.toml"], "size_bytes must be an integer >= 0, got 'abc'"),
    (_seg("--catalog", "{bad}/unknown-loader.toml", "--dataset", "my-data"), "unknown loader 'nope-loader'"),
    (["datasets", "list", "--catalog", "/dev/zero"], "/dev/zero is not a regular file"),
    (_compare("sr", "l1", "--dataset", "{bad}/sr-strip"), "strip.png is 4000x1 px: cvloss needs at least 8 px"),
    # the report
    (["report", "{out}/nothing-here"], "no results folder"),
    (["report", "{data}"], "no comparisons under"),
    (["report", "{cwd}/list-report"], "compare.json"),
    (["report", "{cwd}/partial-report"], "compare.json"),
    # results files are bounded input: depth, and the types of the fields the report reads
    (["report", "{cwd}/deep-report"], "compare.json nests deeper than 64 levels"),
    (["report", "{cwd}/compute-report"], "compare.json is not a valid comparison file: 'compute' must be an object"),
    (["report", "{cwd}/best-report"], "compare.json is not a valid comparison file: 'best' must be an object of loss"),
    (["report", "{cwd}/mde-report"], "compare.json is not a valid comparison file: 'mde' must be an object of numbers"),
    (["report", "{cwd}/tuning-report"], "compare.json is not a valid comparison file: 'tuning' 'space' must be"),
    # usage errors of the command line itself (Typer/Click): one line too
    (["compare", "--losses", "ce"], "Missing option '--task'"),
    (["train", "--task", "seg"], "Missing option '--loss'"),
    (["compare", "--task"], "requires an argument"),
    (_seg("--seeds"), "requires an argument"),
    (_seg("--bogus"), "No such option: --bogus"),
    (["frob"], "No such command 'frob'"),
    (["train", "--task", "seg", "--loss", "ce", "--seed", "x"], "Invalid value for '--seed'"),
    (_seg("--threads", "two"), "Invalid value for '--threads'"),
]


def _bad_folders(cwd: Path) -> None:
    """The broken dataset folders and catalogs the corpus names (one problem each)."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "cvloss_test_fixtures_folder_datasets_corpus", Path(__file__).resolve().parents[1] / "fixtures" / "folder_datasets.py")
    fd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fd)
    (cwd / "seg-no-images" / "images").mkdir(parents=True)
    (cwd / "seg-no-images" / "masks").mkdir()
    for case in ("mask-size", "class-id", "rgb-mask", "no-mask", "unreadable", "split-overlap", "split-unknown"):
        root = fd.build_seg(cwd / f"seg-{case}", n=4)
        mask, image = root / "masks" / "img02.png", root / "images" / "img02.png"
        if case == "mask-size":
            Image.new("L", (8, 8)).save(mask)
        elif case == "class-id":
            Image.new("L", (16, 16), 7).save(mask)
        elif case == "rgb-mask":
            Image.new("RGB", (16, 16)).save(mask)
        elif case == "no-mask":
            mask.unlink()
        elif case == "unreadable":
            image.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        else:
            (root / "splits").mkdir()
            (root / "splits" / "train.txt").write_text("img00\nimg01\n")
            (root / "splits" / "val.txt").write_text("img99\n" if case == "split-unknown" else "img02\n")
            (root / "splits" / "test.txt").write_text("img00\n")
    fd.build_seg(cwd / "seg-ignore", n=4, ignore=255)
    fd.build_embed(cwd / "embed-few-ids", n_ids=30)
    fd.build_translate(cwd / "translate-empty")
    for p in (cwd / "translate-empty" / "trainB").iterdir():
        p.unlink()
    fd.build_sr(cwd / "sr-symlink")
    Image.new("RGB", (16, 16)).save(cwd / "outside.png")
    (cwd / "sr-symlink" / "link.png").symlink_to(cwd / "outside.png")
    (cwd / "sr-empty").mkdir()
    (cwd / "sr-empty" / "notes.md").write_text("no images here\n")
    (cwd / "clash.toml").write_text(fd.catalog_entry("synth-pets"))
    mine = fd.catalog_entry("my-data")
    (cwd / "rmtree.toml").write_text(fd.catalog_entry("victim-data").replace(
        'loader = "cvloss.data.folders:load_seg_folder"', 'loader = "shutil:rmtree"'))
    (cwd / "escape.toml").write_text(mine.replace("[datasets.my-data]", "[datasets.'../../escaped']")
                                     .replace('name = "my-data"', "name = '../../escaped'"))
    (cwd / "file-url.toml").write_text(fd.catalog_entry("leak").replace(
        "files = []", 'files = [{ url = "file:///etc/passwd", filename = "passwd", size = 0, checksum = "" }]'))
    (cwd / "tasks-int.toml").write_text(mine.replace('tasks = ["seg"]', "tasks = 5"))
    (cwd / "size-str.toml").write_text(mine.replace("size_bytes = 0", 'size_bytes = "abc"'))
    (cwd / "unknown-loader.toml").write_text(mine.replace('"cvloss.data.folders:load_seg_folder"', '"nope-loader"'))
    fd.build_sr(cwd / "sr-strip")
    Image.new("RGB", (4000, 1)).save(cwd / "sr-strip" / "strip.png")




def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Every place a run could write -- cwd, data, caches, results -- inside ``tmp_path``."""
    for name in ("cwd", "data", "cache", "torch", "home", "mpl"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("CVLOSS_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("CVLOSS_RESULTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # Offline, whatever the machine: no case may download weights (or reach the network).
    from cvloss.losses import features

    monkeypatch.setattr(features, "_unreachable", lambda url, timeout: "offline (test)")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    # matplotlib builds its font cache once, at its first import in a process (not a
    # write of ours): have it happen before the snapshot, so the test does not depend on
    # which test ran first.
    import matplotlib.pyplot  # noqa: F401
    from PIL import Image

    Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "cwd" / "ok.png")
    (tmp_path / "cwd" / "notes.txt").write_text("not an image\n")
    monkeypatch.setenv("CVLOSS_CATALOG", "")  # --catalog sets it for the (in-process) run: restored after
    valid = ('{"task": "seg", "dataset": "synth-pets", "budget": "smoke", "losses": ["ce"], "seeds": [0], '
             '"baseline": "ce", "metrics": ["miou"], "rows": []')
    for name, text in (("list-report", "[1, 2, 3]"), ("partial-report", '{"task": "seg"}'),
                       ("deep-report", '{"task": ' + "[" * 20_000 + "]" * 20_000 + "}"),
                       ("compute-report", valid + ', "compute": {"ce": 5}}'),
                       ("best-report", valid + ', "best": {"miou": ["ce"]}}'),
                       ("mde-report", valid + ', "mde": {"miou": "x"}}'),
                       ("tuning-report", valid + ', "tuning": {"space": "lr", "trials": "<b>8</b>"}}')):
        folder = tmp_path / "cwd" / name / "seg" / "synth-pets" / "smoke" / "compare--ce"
        folder.mkdir(parents=True)
        (folder / "compare.json").write_text(text)
    return tmp_path


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """The broken dataset folders, built once for the module (they are only read)."""
    root = tmp_path_factory.mktemp("bad-folders")
    _bad_folders(root)
    return root


def test_the_corpus_is_large():
    assert len(CASES) >= 80


@pytest.mark.parametrize("args, fragment", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(sandbox, bad, args, fragment):
    values = {"out": str(sandbox / "out"), "data": str(sandbox / "data"), "cwd": str(sandbox / "cwd"), "bad": str(bad),
              "torch": str(sandbox / "torch"),
              "png": str(sandbox / "cwd" / "ok.png"), "txt": str(sandbox / "cwd" / "notes.txt")}
    args = [a.format(**values) for a in args]
    if args[0] in ("train", "compare") and "--out" not in args:
        args = [args[0], "--out", values["out"], *args[1:]]  # first: a trailing option must stay last
    before = _snapshot(sandbox), _snapshot(bad)
    result = runner.invoke(app, args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert fragment.format(**values) in lines[0], lines[0]
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert (_snapshot(sandbox), _snapshot(bad)) == before, "a refused command must write nothing"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so --device cuda is valid here")
def test_cuda_requested_without_cuda(sandbox):
    result = runner.invoke(app, _seg("--device", "cuda", "--out", str(sandbox / "out")))
    assert result.exit_code == 2 and "torch sees no CUDA device" in result.stderr
    assert not (sandbox / "out").exists()


def test_ray_executor_without_ray_says_how_to_install_it(sandbox, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    before = _snapshot(sandbox)
    result = runner.invoke(app, _seg("--executor", "ray", "--out", str(sandbox / "out")))
    (line,) = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and line == "error: --executor ray needs Ray, which is not installed: " \
                                            "pip install 'cvloss[ray]'"
    assert _snapshot(sandbox) == before


def test_a_bug_is_not_reported_as_bad_input(sandbox, monkeypatch):
    """An exception that is not a cvloss error is a bug: exit 1, one line saying so."""
    import cvloss.run.compare as compare

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(compare, "run_comparison", broken)
    result = runner.invoke(app, _seg("--out", str(sandbox / "out")))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: internal error (a bug in cvloss") and "ZeroDivisionError" in line and "--debug" in line


def test_help_and_completion_options():
    assert runner.invoke(app, ["-h"]).exit_code == 0
    for sub in (["compare", "-h"], ["train", "-h"], ["datasets", "list", "-h"], ["losses", "-h"]):
        result = runner.invoke(app, sub)
        assert result.exit_code == 0 and "Usage:" in result.stdout, sub
    assert "--install-completion" in runner.invoke(app, ["--help"]).stdout

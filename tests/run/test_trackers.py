"""--log mlflow / --log wandb and `cvloss export`, read back through each tool's own client
in temporary stores: MLflow's ``MlflowClient`` on the SQLite store, and W&B's offline run
folders parsed into ``wandb.proto`` records (wandb 0.31 ships no Python reader of its
``.wandb`` log: its framing -- a 7-byte header, then 32 KiB blocks of chunks with a
7-byte header each -- is read here, every record decoded by W&B's own protobuf classes).
Nothing leaves the machine: W&B offline, MLflow a local file, telemetry off."""
from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import struct
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.errors import UsageError
from cvloss.run import live_log
from cvloss.run.config import TrialConfig
from cvloss.run.live_log import check_log
from cvloss.run.trackers import Guard, comparison_tag, library_quiet, run_names
from cvloss.run.trackers_export import Trained, sync_trial
from cvloss.run.trainer import run_trial

MISSING = [k for k in ("mlflow", "wandb") if importlib.util.find_spec(k) is None]
needs_mlflow = pytest.mark.skipif("mlflow" in MISSING,
                                  reason="the mlflow extra is not installed (pip install 'cvloss[mlflow]')")
needs_both = pytest.mark.skipif(bool(MISSING), reason=f"the {' and '.join(MISSING)} extra is not installed "
                                                      f"(pip install 'cvloss[mlflow,wandb]')")

TINY = ["--set", "n_train=8", "--set", "n_val=4", "--set", "epochs=2", "--set", "image_size=32", "--set", "width=4",
        "--quiet", "--threads", "1"]
GROUP = Path("seg", "synth-pets", "smoke+epochs=2+image_size=32+n_train=8+n_val=4+width=4")
EXPERIMENT = GROUP.as_posix()
OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
TIMING = ("epoch_time_s", "train_time_s", "data_time_s")  # wall time: not a result


def _offline(mp: pytest.MonkeyPatch) -> None:
    for key, value in OFFLINE.items():
        mp.setenv(key, value)
    for key in ("MLFLOW_TRACKING_URI", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY"):
        mp.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    _offline(monkeypatch)


def _uri(out: Path) -> str:
    return f"sqlite:///{out / 'mlruns' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An empty MLflow store, made once by cvloss's default (``<out>/mlruns/mlflow.db``,
    created under its lock): a new SQLite store runs MLflow's schema migrations, seconds;
    the other tests start from a copy, as a user's second command does."""
    if "mlflow" in MISSING:
        pytest.skip("the mlflow extra is not installed (pip install 'cvloss[mlflow]')")
    from cvloss.run.trackers_mlflow import MlflowBackend

    out = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp, library_quiet():
        _offline(mp)
        store = MlflowBackend(out)
        assert store.store == _uri(out) and [e.name for e in store.client().search_experiments()] == ["Default"]
    return out / "mlruns" / "mlflow.db"


def _store(empty: Path, db: Path) -> str:
    """A copy of the empty store at ``db``; its URI."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty, db)
    return f"sqlite:///{db}"


# ---------------------------------------------------------------- reading the stores back
def mlflow_view(uri: str) -> dict[tuple[str, str], dict]:
    """(experiment, run name) -> status, params, tags (MLflow's own aside), every metric's
    history as (step, value) and the artefact paths; one key per run (a second run of a
    trial fails the assert)."""
    from mlflow.tracking import MlflowClient

    with library_quiet():  # its dependencies' deprecation warnings
        client = MlflowClient(uri)
    runs: dict[tuple[str, str], dict] = {}

    def files(run_id: str, path: str | None = None) -> list[str]:
        out = []
        for item in client.list_artifacts(run_id, path):
            out += files(run_id, item.path) if item.is_dir else [item.path]
        return out

    for exp in client.search_experiments():
        if exp.name == "Default":  # MLflow's own, made with every store
            continue
        for run in client.search_runs([exp.experiment_id]):
            key = (exp.name, run.info.run_name)
            assert key not in runs, f"two runs of {key}"
            runs[key] = {
                "id": run.info.run_id, "status": run.info.status, "params": dict(run.data.params),
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                "metrics": {k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
                            for k in run.data.metrics},
                "files": sorted(files(run.info.run_id)),
            }
    return runs


def wandb_records(path: Path):
    """The records of one ``.wandb`` file, decoded by ``wandb.proto``."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk  # full, first / middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            yield record


def _folder_order(folder: Path) -> tuple:
    m = re.fullmatch(r"offline-run-(\d{8}_\d{6})-([a-z0-9]+)(?:-(\d+))?", folder.name)
    assert m, folder.name
    return m.group(1), int(m.group(3) or 0)


def wandb_view(wandb_dir: Path) -> dict[tuple[str, str], dict]:
    """(group, run name) -> the run as ``wandb sync`` would replay it: its offline folders
    (several for a resumed run) in the order they started, config and summary merged,
    history rows concatenated as (step, metrics), the last tags, files, exit codes."""
    runs: dict[str, dict] = {}
    ignore = ("_runtime", "_timestamp", "_step", "_wandb")
    for folder in sorted(wandb_dir.glob("offline-run-*"), key=_folder_order):
        (log,) = folder.glob("run-*.wandb")
        run = None
        for rec in wandb_records(log):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run = runs.setdefault(rec.run.run_id, {"config": {}, "history": [], "summary": {}, "files": set(),
                                                       "exits": [], "folders": set()})
                run["folders"].add(folder.name)
                run.update(group=rec.run.run_group, name=rec.run.display_name, job_type=rec.run.job_type,
                           tags=sorted(rec.run.tags))
                run["config"].update({u.key: json.loads(u.value_json) for u in rec.run.config.update
                                      if u.key != "_wandb"})
            elif kind == "history":
                items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in rec.history.item}
                run["history"].append((rec.history.step.num, {k: v for k, v in items.items() if k not in ignore}))
            elif kind == "summary":
                for u in rec.summary.update:
                    key = u.key or "/".join(u.nested_key)
                    if key.split("/")[0] not in ignore:
                        run["summary"][key] = json.loads(u.value_json)
            elif kind == "files":
                run["files"] |= {f.path for f in rec.files.files}
            elif kind == "exit":
                run["exits"].append(rec.exit.exit_code)
    out = {}
    for run_id, run in runs.items():
        key = (run["group"], run["name"])
        assert key not in out, f"two runs of {key}"
        out[key] = {**run, "id": run_id}
    return out


def _csv_rows(trial_dir: Path) -> list[dict[str, str]]:
    with open(trial_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _curves(trial_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every metrics.csv column as (epoch, value) over its finite cells: what a run must hold."""
    curves: dict[str, list] = {}
    for row in _csv_rows(trial_dir):
        for key, text in row.items():
            if key != "epoch" and text not in ("", "nan"):
                curves.setdefault(key, []).append((int(row["epoch"]), float(text)))
    return curves


# ---------------------------------------------------------------- checked before anything runs
def test_log_values_are_checked_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(live_log, "_installed", lambda kind: True)
    assert check_log(["tensorboard,mlflow", "wandb", "mlflow"]) == "tensorboard,mlflow,wandb"
    assert check_log(None) == "none" and check_log([]) == "none" and live_log.log_kinds("none") == []
    with pytest.raises(UsageError, match="--log none cannot go with mlflow"):
        check_log("none,mlflow")
    monkeypatch.setattr(live_log, "_installed", lambda kind: kind != "wandb")
    cases = [(["--log", "neptune"], "error: unknown --log 'neptune'; valid: none, tensorboard, mlflow, wandb"),
             (["--log", "mlflow", "--log", "wandb"],
              "error: --log wandb needs the wandb package: pip install 'cvloss[wandb]'"),
             (["--log", "tensorboard,,mlflow"], "error: unknown --log ''")]
    for args, line in cases:
        out = tmp_path / "out"
        result = CliRunner().invoke(app, ["compare", "--task", "seg", "--losses", "ce,dice", "--out", str(out), *args])
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith(line) and not out.exists()
    for args, line in [(["export", "neptune", str(tmp_path)], "error: unknown tracker 'neptune'; valid: mlflow, wandb"),
                       (["export", "wandb", str(tmp_path)], "error: export wandb needs the wandb package"),
                       (["export", "mlflow", str(tmp_path / "none")], "error: no results folder")]:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and result.stderr.startswith(line) and len(result.stderr.splitlines()) == 1
    monkeypatch.setattr(live_log, "_installed", lambda kind: True)
    result = CliRunner().invoke(app, ["export", "mlflow", str(tmp_path)])
    assert result.exit_code == 2 and "no comparisons under" in result.stderr and list(tmp_path.iterdir()) == []


def test_names_and_tags_fit_each_tool(monkeypatch):
    group = Path("/r/seg/synth-pets/smoke")
    assert run_names(group, group / "ce" / "seed0") == ("seg/synth-pets/smoke", "ce/seed0", "final")
    assert run_names(group, group / "tune--ab12" / "ce" / "t3") == \
        ("seg/synth-pets/smoke", "tune--ab12/ce/t3", "search")
    assert comparison_tag("ce--dice") == ("comparison.ce--dice", "ce--dice")
    key, slug = comparison_tag("ce--ce+0.1xtopo-mu=0.5")
    assert slug == "ce--ce+0.1xtopo-mu=0.5" and re.fullmatch(r"comparison\.ce--ce_0\.1xtopo-mu_0\.5-[0-9a-f]{8}", key)
    assert comparison_tag("ce--ce_0.1xtopo-mu_0.5")[0] != key  # a slug that looks like another's key stays apart
    if "wandb" not in MISSING:
        from cvloss.run.trackers_wandb import WandbBackend, wandb_tags

        long = {"comparison.x": "a" * 80, "comparison.y": "a" * 79 + "b", "device": "cpu"}
        tags = wandb_tags(long)
        assert all(len(t) <= 64 for t in tags) and len(set(tags)) == 3 and tags[2] == "device=cpu"
        monkeypatch.delenv("WANDB_MODE")
        assert WandbBackend(Path("/r")).mode == "offline"  # the default: nothing sent
        monkeypatch.setenv("WANDB_MODE", "online")  # the user's choice
        assert WandbBackend(Path("/r")).store == "/r/wandb (online, project cvloss)"


# ---------------------------------------------------------------- a comparison logged live
@pytest.fixture(scope="module")
def live(tmp_path_factory, empty_store):
    """``compare --jobs 2 --log mlflow --log wandb`` of ce and dice at one seed: two trials
    trained at once in two worker processes, each writing to both stores."""
    if MISSING:
        pytest.skip(f"the {' and '.join(MISSING)} extra is not installed (pip install 'cvloss[mlflow,wandb]')")
    out = tmp_path_factory.mktemp("live")
    _store(empty_store, out / "mlruns" / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        _offline(mp)
        result = CliRunner().invoke(app, ["compare", "--task", "seg", "--losses", "ce,dice", "--seeds", "1", "--jobs",
                                          "2", "--out", str(out), "--log", "mlflow", "--log", "wandb",
                                          *[a for a in TINY if a != "--quiet"]])
    assert result.exit_code == 0, result.output
    # the libraries' own chatter (their warnings, W&B's banners, MLflow's log lines) never shows
    chatter = [line for line in result.stderr.splitlines()
               if line.startswith("warning") or re.search("mlflow|wandb", line, re.I)]
    assert not chatter and "epoch 2/2" in result.stderr, result.stderr
    return out


def _trial(out: Path, loss: str) -> Path:
    return out / GROUP / loss / "seed0"


@needs_both
def test_mlflow_has_one_run_per_trial_with_params_every_epoch_and_tags(live):
    runs = mlflow_view(_uri(live))
    assert set(runs) == {(EXPERIMENT, "ce/seed0"), (EXPERIMENT, "dice/seed0")}
    for (_, name), run in runs.items():
        trial = live / GROUP / name
        info = json.loads((trial / "trial.json").read_text())
        summary = json.loads((trial / "summary.json").read_text())
        assert run["status"] == "FINISHED"
        assert run["id"] == json.loads((trial / "trackers.json").read_text())["mlflow"][_uri(live)]["run_id"]
        params = run["params"]
        assert (params["task"], params["loss"], params["seed"], params["budget"]) == \
            ("seg", name.split("/")[0], "0", "smoke")
        assert params["params.epochs"] == "2" and params["params.lr"] == json.dumps(info["identity"]["params"]["lr"])
        assert params["params.n_train"] == "8" and params["dataset"] == "synth-pets"
        curves = _curves(trial)
        assert {k: v for k, v in run["metrics"].items() if not k.startswith("test_")} == curves
        assert [step for step, _ in curves["miou"]] == [1, 2] and "train_loss" in curves
        assert {k: v for k, v in run["metrics"].items() if k.startswith("test_")} == \
            {f"test_{k}": [(2, v)] for k, v in summary["metrics"].items()}
        code = info["code"]  # commit and dirty are unknown outside a git checkout: no tag then
        assert run["tags"] == {**({"commit": code["commit"]} if code["commit"] else {}),
                               **({"dirty": str(code["dirty"]).lower()} if code["dirty"] is not None else {}),
                               "source": code["source_sha256"][:12], "torch": info["versions"]["torch"],
                               "cvloss": info["versions"]["cvloss"], "device": info["device"], "stage": "final",
                               "status": summary["status"], "comparison.ce--dice": "ce--dice"}
        assert "samples.png" in run["files"] and "comparisons/ce--dice/compare.md" in run["files"]


@needs_both
def test_wandb_offline_runs_hold_the_same(live):
    mlflow_runs = mlflow_view(_uri(live))
    runs = wandb_view(live / "wandb")
    assert set(runs) == set(mlflow_runs)
    for key, run in runs.items():
        trial = live / GROUP / key[1]
        summary = json.loads((trial / "summary.json").read_text())
        assert run["id"] == json.loads((trial / "trackers.json").read_text())["wandb"][
            f"{live / 'wandb'} (offline, project cvloss)"]["run_id"]
        assert run["job_type"] == "final" and run["config"]["params.epochs"] == 2  # typed: a number
        assert run["config"]["loss"] == key[1].split("/")[0]
        as_text = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in run["config"].items()}
        assert as_text == mlflow_runs[key]["params"]
        assert [step for step, _ in run["history"]] == [1, 2]
        curves = {}
        for step, metrics in run["history"]:
            for k, v in metrics.items():
                curves.setdefault(k, []).append((step, v))
        assert curves == _curves(trial)
        assert {k: v for k, v in run["summary"].items() if k.startswith("test_")} == \
            {f"test_{k}": v for k, v in summary["metrics"].items()}
        tags = dict(t.split("=", 1) for t in run["tags"])
        assert tags.pop("comparison") == "ce--dice" and tags == {
            k: v for k, v in mlflow_runs[key]["tags"].items() if not k.startswith("comparison.")}
        assert {"samples.png", "comparisons/ce--dice/compare.md"} <= run["files"] and run["exits"] == [0, 0]


@needs_both
def test_export_gives_what_live_logging_gave(live, empty_store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _store(empty_store, tmp_path / "export.db"))
    monkeypatch.chdir(tmp_path)  # a database URI of the user's: MLflow keeps the runs' files in ./mlruns
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for tracker in ("mlflow", "wandb"):
        result = CliRunner().invoke(app, ["export", tracker, str(live)])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"exported 1 comparison(s) to {tracker} ") and \
            result.stdout.rstrip().endswith("2 run(s) created, 0 updated, 0 already there")
    again = CliRunner().invoke(app, ["export", "mlflow", str(live)])
    assert again.stdout.rstrip().endswith("0 run(s) created, 0 updated, 2 already there")  # nothing pushed twice

    def same(view: dict) -> dict:  # ids, timestamps, exit order aside
        return {key: {k: v for k, v in run.items() if k not in ("id", "folders", "exits")} for key, run in view.items()}

    assert same(mlflow_view(f"sqlite:///{tmp_path / 'export.db'}")) == same(mlflow_view(_uri(live)))
    exported, logged = wandb_view(tmp_path / "wandb"), wandb_view(live / "wandb")
    assert same(exported) == same(logged)
    assert all(run["exits"][-1] == 0 for run in exported.values())


# ---------------------------------------------------------------- resume, workers, failures
def _cfg(out: Path, loss: str = "ce", log: str = "mlflow,wandb", epochs: int = 3) -> TrialConfig:
    return TrialConfig(task="seg", loss=loss, dataset="synth-pets", budget="smoke", device="cpu", out=str(out),
                       overrides={"epochs": epochs, "image_size": 32, "n_train": 8, "n_val": 4, "width": 4},
                       log=log, threads=1)


@needs_both
def test_a_killed_and_resumed_trial_is_one_run_with_one_step_axis(tmp_path, capture, empty_store):
    _store(empty_store, tmp_path / "mlruns" / "mlflow.db")
    cfg = _cfg(tmp_path)
    assert run_trial(cfg, capture, stop_after_epoch=1)["status"] == "interrupted"
    (mlflow_run,) = mlflow_view(_uri(tmp_path)).values()
    assert mlflow_run["status"] == "KILLED" and mlflow_run["metrics"]["miou"] == _curves(cfg.trial_dir)["miou"]
    assert run_trial(cfg, capture)["status"] in ("done", "degenerate")
    (resumed,) = mlflow_view(_uri(tmp_path)).values()
    assert resumed["id"] == mlflow_run["id"] and resumed["status"] == "FINISHED"
    assert [s for s, _ in resumed["metrics"]["miou"]] == [1, 2, 3]
    assert resumed["metrics"]["miou"] == _curves(cfg.trial_dir)["miou"]
    (run,) = wandb_view(tmp_path / "wandb").values()
    assert len(run["folders"]) == 2 and run["exits"] == [1, 0]  # two segments of one run id
    assert [step for step, _ in run["history"]] == [1, 2, 3]
    assert [(s, m["miou"]) for s, m in run["history"]] == _curves(cfg.trial_dir)["miou"]


@needs_both
def test_jobs_2_loses_and_duplicates_no_run(live):
    """The two workers of ``live`` each made their trial's runs, and only those: one run id
    per trial and store in trackers.json, the store's own; W&B's folders are each run's
    training and its comparison tag, nothing more."""
    stores = {"mlflow": _uri(live), "wandb": f"{live / 'wandb'} (offline, project cvloss)"}
    ids = {tracker: {json.loads((_trial(live, loss) / "trackers.json").read_text())[tracker][store]["run_id"]
                     for loss in ("ce", "dice")} for tracker, store in stores.items()}
    assert ids["mlflow"] == {run["id"] for run in mlflow_view(_uri(live)).values()} and len(ids["mlflow"]) == 2
    runs = wandb_view(live / "wandb")
    assert ids["wandb"] == {run["id"] for run in runs.values()} and len(ids["wandb"]) == 2
    assert sorted(len(run["folders"]) for run in runs.values()) == [2, 2]
    assert len(list((live / "wandb").glob("offline-run-*"))) == 4


def _results(out: Path) -> dict:
    """Every trial's metrics.csv (wall times aside) and summary metrics, by folder."""
    found = {}
    for summary in sorted(out.rglob("summary.json")):
        rows = [{k: v for k, v in row.items() if k not in TIMING} for row in _csv_rows(summary.parent)]
        found[summary.parent.relative_to(out).as_posix()] = (rows, json.loads(summary.read_text())["metrics"])
    return found


@needs_both
def test_an_unwritable_store_warns_once_and_changes_no_result(tmp_path):
    plain, broken = tmp_path / "plain", tmp_path / "broken"
    broken.mkdir()
    (broken / "mlruns").write_text("a file where the store's folder goes")
    (broken / "wandb").write_text("a file where the store's folder goes")
    args = ["compare", "--task", "seg", "--losses", "ce,dice", "--seeds", "1", *[a for a in TINY if a != "--quiet"]]
    ok = CliRunner().invoke(app, [*args, "--out", str(plain)])
    bad = CliRunner().invoke(app, [*args, "--out", str(broken), "--log", "mlflow,wandb"])
    assert ok.exit_code == bad.exit_code == 0, bad.output
    warned = [line for line in bad.stderr.splitlines() if line.startswith("warning: --log")]
    assert len(warned) == 2, bad.stderr  # one line per tracker, for two trials and the comparison
    assert warned[0].startswith("warning: --log mlflow: cannot write to sqlite:///")
    assert "cvloss export mlflow" in warned[0]
    assert warned[1].startswith(f"warning: --log wandb: cannot write to {broken / 'wandb'}")
    assert _results(broken) == _results(plain) and len(_results(plain)) == 2


@needs_mlflow
def test_a_tracker_that_fails_mid_run_is_one_warning_and_the_trial_goes_on(tmp_path, capture, monkeypatch, empty_store):
    from cvloss.run.trackers_mlflow import MlflowBackend

    _store(empty_store, tmp_path / "mlruns" / "mlflow.db")
    calls = []
    real = MlflowBackend.log

    def disk_full(self, step, metrics):
        calls.append(step)
        if step == 2:
            raise OSError(28, "No space left on device")
        real(self, step, metrics)

    monkeypatch.setattr(MlflowBackend, "log", disk_full)
    cfg = _cfg(tmp_path, log="mlflow")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        summary = run_trial(cfg, capture)
    assert summary["status"] in ("done", "degenerate") and (cfg.trial_dir / "summary.json").exists()
    texts = [str(w.message) for w in seen if "--log mlflow" in str(w.message)]
    assert len(texts) == 1 and "No space left on device" in texts[0], texts
    assert calls == [1, 2]  # off after the failure: epoch 3 and the finish never reach it
    (run,) = mlflow_view(_uri(tmp_path)).values()
    assert [s for s, _ in run["metrics"]["miou"]] == [1] and run["status"] == "KILLED"  # released, unfinished
    # the store works again: the next sync (a comparison's hook, an export) completes the run from the files
    monkeypatch.setattr(MlflowBackend, "log", real)
    store = MlflowBackend(tmp_path)
    member = Trained(cfg.trial_dir, cfg.group_dir, None, True)
    assert sync_trial(store, Guard("mlflow", store.store, strict=True), member, "ce", []) == "updated"
    (healed,) = mlflow_view(_uri(tmp_path)).values()
    assert healed["id"] == run["id"] and healed["status"] == "FINISHED" and healed["tags"]["status"] == summary["status"]
    assert healed["metrics"]["miou"] == _curves(cfg.trial_dir)["miou"] and "test_miou" in healed["metrics"]
    assert healed["files"] == ["samples.png"] and healed["tags"]["comparison.ce"] == "ce"


@needs_mlflow
def test_search_trials_are_tagged_search_with_their_candidate(tmp_path, empty_store):
    _store(empty_store, tmp_path / "mlruns" / "mlflow.db")
    result = CliRunner().invoke(app, ["compare", "--task", "seg", "--losses", "ce", "--seeds", "1", "--tune",
                                      "lr=log(1e-4,1e-2)", "--tune-trials", "1", "--tune-seeds", "1", "--out",
                                      str(tmp_path), "--log", "mlflow", *TINY])
    assert result.exit_code == 0, result.output
    runs = mlflow_view(_uri(tmp_path))
    search = {name: run for (exp, name), run in runs.items() if run["tags"]["stage"] == "search"}
    assert len(search) == 1 and len(runs) == 2  # the candidate at its one tuning seed, then the winner
    for name, run in search.items():
        assert re.fullmatch(r"tune--[0-9a-f]+/ce/t0/seed10000", name)
        cand = json.loads((tmp_path / GROUP / name / "trial.json").read_text())["identity"]["tuned"]
        assert run["params"]["tuned.lr"] == run["params"]["params.lr"] == json.dumps(cand["lr"])
        assert not any(k.startswith("comparison.") for k in run["tags"])  # not a member: its winner is
    ((exp, name), winner), = [(k, r) for k, r in runs.items() if r["tags"]["stage"] == "final"]
    assert exp.startswith(EXPERIMENT + "+tuned-") and name == "ce/seed0" and winner["tags"]["comparison.ce"] == "ce"
    assert {e for e, _ in runs} == {EXPERIMENT, exp}

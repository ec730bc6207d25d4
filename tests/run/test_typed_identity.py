"""A trial's identity and its run context are two types; where a search places a trial is
a typed value. What they write stays what trials always recorded: the identity dict, the
``config`` of trial.json, every folder name (pinned here, and checked against every
committed trial under results/)."""
from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import pytest

import cvloss
from cvloss.run.config import (ORDINARY, RECORD_ORDER, Ordinary, RunContext, SearchCandidate, TrialConfig,
                               TrialIdentity, TunedWinner, format_place, is_search_run, parse_place, search_folder,
                               tuned_glob, tuned_suffix)
from cvloss.run.trainer import trial_label

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
STUDY1 = ROOT / "tests" / "fixtures" / "study1"  # the first reference study's records

PLACES = [("", ORDINARY), ("tune--abcd1234/t2", SearchCandidate("abcd1234", 2)),
          ("tune--abcd1234/t2/seed10003", SearchCandidate("abcd1234", 2, 10003)),
          ("+tuned-0123abcd", TunedWinner("0123abcd")), ("tune--ab12/t0/seed0", SearchCandidate("ab12", 0, 0))]


def _cfg(place=ORDINARY, **more):
    values = dict(task="seg", loss="dice(smooth=0.5)", dataset="synth-pets", budget="smoke", seed=4,
                  overrides={"epochs": 1, "n_train": 8}, tuned={"lr": 0.01}, out="/r", device="cuda:1", threads=2,
                  log="csv", keep_checkpoints=True, stop_at_epoch=1, name="dice", place=place)
    return TrialConfig(**{**values, **more})


# ---------------------------------------------------------------- placement
@pytest.mark.parametrize("text, place", PLACES)
def test_a_placement_reads_and_writes_its_recorded_text(text, place):
    assert parse_place(text) == place and format_place(place) == text
    assert parse_place(format_place(place)) == place


@pytest.mark.parametrize("text", ["tune--abcd/t02", "tune--abcd/t1/seed01", "tune--abcd", "tune--abcd/t1/seed",
                                  "tune--/t1", "tune--AB/t1", "+tuned-", "+tuned-ab/t1", "tuned-ab", "seed3",
                                  "tune--ab/t1/seed2/fold0", " +tuned-ab"])
def test_any_other_placement_text_is_refused(text):
    with pytest.raises(ValueError, match="not a trial placement"):
        parse_place(text)


def test_the_folder_name_helpers_write_the_search_layout():
    assert search_folder("abcd1234") == "tune--abcd1234" and tuned_suffix("0123abcd") == "+tuned-0123abcd"
    assert tuned_glob("smoke+epochs=2") == "smoke+epochs=2+tuned-*"
    assert is_search_run("tune--ab12/ce/t3") and is_search_run("tune--ab12/ce/t3/seed10003")
    assert not is_search_run("ce/seed0") and not is_search_run("tune-x/seed0")


def test_no_module_but_config_writes_or_reads_a_placement_text():
    """Outside cvloss/run/config.py, no code string (docstrings aside) holds ``tune--`` or
    ``+tuned-``: the folder names of a search are written and read in one module."""
    pkg = Path(cvloss.__file__).parent
    found = []
    for path in sorted(pkg.rglob("*.py")):
        if path == pkg / "run" / "config.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        found += [f"{path.relative_to(pkg)}:{n.lineno}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
                  and ("tune--" in n.value or "+tuned-" in n.value)]
    assert found == []


# ---------------------------------------------------------------- folders
def test_every_placement_names_the_folders_it_always_had():
    group = "/r/seg/synth-pets/smoke+epochs=1+n_train=8"
    want = {"": (group, f"{group}/dice/seed4", "seg/synth-pets/dice/seed4"),
            "tune--abcd1234/t2": (group, f"{group}/tune--abcd1234/dice/t2", "seg/synth-pets/dice/t2"),
            "tune--abcd1234/t2/seed10003": (group, f"{group}/tune--abcd1234/dice/t2/seed10003",
                                            "seg/synth-pets/dice/t2/seed10003"),
            "+tuned-0123abcd": (f"{group}+tuned-0123abcd", f"{group}+tuned-0123abcd/dice/seed4",
                                "seg/synth-pets/dice/seed4")}
    for text, (group_dir, trial_dir, label) in want.items():
        cfg = _cfg(parse_place(text))
        assert (str(cfg.group_dir), str(cfg.trial_dir), trial_label(cfg)) == (group_dir, trial_dir, label), text
        folded = replace(cfg, fold=3)
        assert str(folded.trial_dir) == f"{trial_dir}/fold3" and trial_label(folded) == f"{label}/fold3"
    # no name: the loss folder is the trained spec's
    assert str(replace(_cfg(), name=None).trial_dir) == f"{group}/dice-smooth=0.5/seed4"


# ---------------------------------------------------------------- identity and context
PINNED_IDENTITY = (
    '{"task": "seg", "loss": "dice(smooth=0.5)", "dataset": "synth-pets", "budget": "smoke", "seed": 4, '
    '"feature_weights": "auto", "overrides": {"epochs": 1, "n_train": 8}, "fold": null, "tuned": {"lr": 0.01}, '
    '"test": true, "params": {"epochs": 1, "batch_size": 8, "lr": 0.01, "image_size": 32, "n_train": 8, '
    '"n_val": 16, "n_test": 16, "width": 8, "depth": 2, "augment": true, "amp": true, "channels_last": true, '
    '"cpu_threads": 1}}')


def test_the_identity_is_the_dict_trials_always_recorded():
    cfg = _cfg(SearchCandidate("abcd1234", 2, 10003))
    assert json.dumps(cfg.identity()) == PINNED_IDENTITY  # keys in this order, values as written
    folder = json.loads(PINNED_IDENTITY)
    folder["data_fingerprint"], params = "f" * 64, folder.pop("params")
    assert replace(cfg, data_fingerprint="f" * 64).identity() == {**folder, "params": params}
    assert list(replace(cfg, fold=1).identity()["params"])[-1] == "fold"


def test_the_run_context_and_the_folder_never_change_the_identity():
    cfg = _cfg()
    for other in (RunContext(), RunContext(device="cpu", out="/elsewhere", data_dir="/d", fid_weights="/w.pt",
                                            log="none", threads=None, keep_checkpoints=False, stop_at_epoch=None)):
        assert replace(cfg, context=other).identity() == cfg.identity()
    for place in (ORDINARY, TunedWinner("0123abcd"), SearchCandidate("ab12", 1)):
        assert replace(cfg, place=place, name=None).identity() == cfg.identity()
    changed = dict(task="sr", loss="ce", dataset="synth-vessels", budget="quick", seed=5, feature_weights="random:1",
                   overrides={}, fold=0, tuned={}, test=False, data_fingerprint="0" * 64)
    assert set(changed) == {f.name for f in dataclasses.fields(TrialIdentity)}
    for key, value in changed.items():
        if key != "task":  # seg's overrides are no sr settings: the task is changed below
            assert replace(cfg, **{key: value}).identity() != cfg.identity(), key
    assert replace(cfg, task="sr", overrides={}, tuned={}).identity() != replace(cfg, overrides={}, tuned={}).identity()


def test_a_config_is_built_flat_or_from_its_parts_and_is_frozen():
    cfg = _cfg()
    assert TrialConfig(ident=cfg.ident, context=cfg.context, place=cfg.place, name=cfg.name) == cfg
    assert (cfg.seed, cfg.device, cfg.params["lr"]) == (cfg.ident.seed, cfg.context.device, 0.01)
    moved = replace(cfg, seed=7, device="cpu")
    assert (moved.ident, moved.context) == (replace(cfg.ident, seed=7), replace(cfg.context, device="cpu"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.out = "/x"
    with pytest.raises(TypeError, match="unknown fields: epochs"):
        TrialConfig(task="seg", loss="ce", dataset="synth-pets", epochs=3)
    with pytest.raises(TypeError, match="must be a Placement"):
        TrialConfig(task="seg", loss="ce", dataset="synth-pets", place="+tuned-0123abcd")
    with pytest.raises(AttributeError, match="no attribute 'sed'"):
        cfg.sed


# ---------------------------------------------------------------- trial.json's config
def test_the_config_record_has_the_fields_and_order_trials_always_wrote():
    assert RECORD_ORDER == ("task", "loss", "dataset", "budget", "seed", "device", "out", "data_dir",
                            "feature_weights", "overrides", "fid_weights", "log", "threads", "fold", "tuned", "name",
                            "place", "test", "data_fingerprint", "keep_checkpoints", "stop_at_epoch")
    parts = [f.name for c in (TrialIdentity, RunContext) for f in dataclasses.fields(c)]
    assert sorted(parts + ["name", "place"]) == sorted(RECORD_ORDER) and len(set(parts)) == len(parts)
    cfg = _cfg(SearchCandidate("abcd1234", 2, 10003))
    record = cfg.record()
    assert list(record) == list(RECORD_ORDER) and record["place"] == "tune--abcd1234/t2/seed10003"
    assert (record["device"], record["stop_at_epoch"], record["name"]) == ("cuda:1", 1, "dice")
    for _, place in PLACES:  # what executors ship and workers read back
        sent = replace(cfg, place=place)
        assert TrialConfig.from_record(json.loads(json.dumps(sent.record()))) == sent


def test_an_older_record_reads_with_defaults():
    old = {k: v for k, v in _cfg(TunedWinner("0123abcd")).record().items()
           if k not in ("keep_checkpoints", "stop_at_epoch")}
    cfg = TrialConfig.from_record({**old, "params": {"epochs": 1}, "retired_key": 1})
    assert (cfg.keep_checkpoints, cfg.stop_at_epoch, cfg.place) == (False, None, TunedWinner("0123abcd"))
    assert TrialConfig.from_record({"task": "seg", "loss": "ce", "dataset": "synth-pets"}).place == Ordinary()


def test_every_committed_trial_config_reads_back_to_the_same_record():
    """trial.json's ``config`` of each committed trial (written by the one flat config
    class, before the fields the later versions added) is what its config records again,
    byte for byte, and names the folder it lies in."""
    trials = [(root, path) for root in (STUDY1, RESULTS) for path in sorted(root.rglob("trial.json"))]
    assert len(trials) >= 129  # the first study's fixture, and whatever results/ holds
    places = set()
    for root, path in trials:
        recorded = json.loads(path.read_text())["config"]
        cfg = TrialConfig.from_record(recorded)
        again = cfg.record()
        kept = {k: recorded[k] for k in recorded if k != "params"}
        assert json.dumps({k: again[k] for k in kept}) == json.dumps(kept), path
        assert replace(cfg, out=str(root)).trial_dir == path.parent, path
        places.add(type(cfg.place))
    assert places == {Ordinary, SearchCandidate, TunedWinner}

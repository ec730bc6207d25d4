"""Trial paths, budget overrides, atomic results files."""
import json
import math

import pytest
import torch

from cvloss.errors import UsageError
from cvloss.run.budgets import budget_params, parse_overrides, resolve_overrides
from cvloss.run.compare import parse_seeds, split_losses
from cvloss.run.config import TrialConfig, budget_label, loss_slug
from cvloss.io import load_checkpoint, read_json, save_checkpoint, write_csv, write_json


def test_loss_slug_is_filesystem_safe_and_distinct():
    assert loss_slug("ce+0.1*topo(mu=0.5)") == "ce+0.1xtopo-mu=0.5"
    long_a, long_b = "l1+" + "+".join(["0.1*tv"] * 20), "l1+" + "+".join(["0.2*tv"] * 20)
    assert len(loss_slug(long_a)) <= 80 and loss_slug(long_a) != loss_slug(long_b)
    assert "/" not in loss_slug("perceptual(weights=/tmp/x.pth)")


def test_trial_dir_layout_and_overrides_in_path(tmp_path):
    cfg = TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=2, out=str(tmp_path))
    assert cfg.trial_dir == tmp_path / "seg" / "synth-pets" / "smoke" / "ce" / "seed2"
    cfg2 = TrialConfig(task="seg", loss="ce", dataset="synth-pets", budget="smoke", seed=2, out=str(tmp_path),
                       overrides={"lr": 0.01, "epochs": 1})
    assert cfg2.trial_dir.parts[-3] == "smoke+epochs=1+lr=0.01"
    assert cfg2.params["epochs"] == 1 and cfg2.params["lr"] == 0.01


def test_bad_budget_and_setting():
    with pytest.raises(UsageError, match="unknown budget 'huge'; valid budgets: smoke, quick, full"):
        budget_params("seg", "huge")
    with pytest.raises(UsageError, match="unknown setting 'epoch' .* valid settings: epochs"):
        budget_params("seg", "smoke", {"epoch": 3})


def test_parse_overrides_types():
    raw = parse_overrides(["epochs=3", "lr=1e-3", "augment=false", "n_train=none"])
    assert raw == {"epochs": "3", "lr": "1e-3", "augment": "false", "n_train": "none"}
    # The task's schema types them: canonical values, so lr=1 and lr=1.0 are one folder.
    assert resolve_overrides("seg", raw) == {"epochs": 3, "lr": 1e-3, "augment": False, "n_train": None}
    assert resolve_overrides("seg", {"lr": "1"}) == resolve_overrides("seg", {"lr": "1.0"}) == {"lr": 1.0}
    assert budget_label("smoke", resolve_overrides("seg", {"lr": "1"})) == "smoke+lr=1.0"
    with pytest.raises(UsageError, match="key=value"):
        parse_overrides(["epochs"])
    with pytest.raises(UsageError, match="unknown setting 'x'"):
        resolve_overrides("seg", {"x": "abc"})


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("0,4,2", [0, 4, 2]), ("1", [0])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "-1", "a", "1,1", ","])
def test_parse_seeds_rejects(text):
    with pytest.raises(UsageError, match="--seeds"):
        parse_seeds(text)


def test_split_losses_respects_brackets():
    assert split_losses("ce, topo(mu=0.5,layers=[a,b]) ,dice") == ["ce", "topo(mu=0.5,layers=[a,b])", "dice"]


def test_json_csv_checkpoint_round_trip(tmp_path):
    write_json(tmp_path / "a" / "s.json", {"x": float("nan"), "y": [1, 2]})
    assert read_json(tmp_path / "a" / "s.json") == {"x": None, "y": [1, 2]}
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")], "temp files left behind"
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a" / "s.json").stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    write_csv(tmp_path / "m.csv", [{"epoch": 1, "v": 0.5}, {"epoch": 2, "v": math.nan}])
    assert (tmp_path / "m.csv").read_text() == "epoch,v\n1,0.5\n2,nan\n"
    save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(2), "epoch": 3})
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.ones(2))


def test_corrupt_files_are_named(tmp_path):
    (tmp_path / "s.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"corrupt results file .*s.json"):
        read_json(tmp_path / "s.json")
    (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"checkpoint .*c.pt refused: it is corrupt"):
        load_checkpoint(tmp_path / "c.pt")

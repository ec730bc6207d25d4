"""k-fold protocols (LFW View 2's shape) in the run layer: a seed's trial is k resumable
fold sub-trials, its summary the mean over folds with the standard error."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cvloss.run.compare import run_comparison
from cvloss.run.config import TrialConfig
from cvloss.run.folds import fold_summary
from cvloss.run.trainer import run_trial
from cvloss.tasks.embed import EmbedTask

TINY = {"epochs": 1, "n_train_ids": 8, "per_id": 3, "n_val_ids": 20, "val_per_id": 2, "pairs_per_fold": 1,
        "P": 2, "K": 2, "image_size": 16}


@pytest.fixture
def three_folds(monkeypatch):
    """synth-ids reported by a 3-fold protocol (its loader ignores the fold: the run
    layer's bookkeeping is what is tested here; the LFW loader's folds in tests/data)."""
    monkeypatch.setattr(type(EmbedTask.spec), "folds", lambda self, dataset: 3)


def _cfg(tmp_path, loss="contrastive", seed=0):
    return TrialConfig(task="embed", loss=loss, dataset="synth-ids", budget="smoke", seed=seed, out=str(tmp_path),
                       overrides=dict(TINY))


def test_a_trial_is_k_fold_sub_trials_and_a_seed_summary(tmp_path, three_folds, capture):
    cfg = _cfg(tmp_path)
    summary = run_trial(cfg, capture)
    folds = [json.loads((cfg.trial_dir / f"fold{f}" / "summary.json").read_text()) for f in range(3)]
    assert [json.loads((cfg.trial_dir / f"fold{f}" / "trial.json").read_text())["config"]["fold"] for f in range(3)] \
        == [0, 1, 2]
    on_disk = json.loads((cfg.trial_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary)) and summary["protocol"] == "3-fold"
    accs = [f["metrics"]["verif_acc"] for f in folds]
    assert summary["metrics"]["verif_acc"] == pytest.approx(np.mean(accs))
    assert summary["fold_se"]["verif_acc"] == pytest.approx(np.std(accs, ddof=1) / math.sqrt(3))
    assert summary["train_time_s"] == pytest.approx(sum(f["train_time_s"] for f in folds))
    # a rerun reads the seed's summary: no fold is touched again
    mtimes = [(cfg.trial_dir / f"fold{f}" / "summary.json").stat().st_mtime_ns for f in range(3)]
    assert run_trial(cfg, capture) == summary
    assert mtimes == [(cfg.trial_dir / f"fold{f}" / "summary.json").stat().st_mtime_ns for f in range(3)]


def test_an_interrupted_fold_resumes_and_the_seed_summary_waits_for_it(tmp_path, three_folds, capture, monkeypatch):
    monkeypatch.setitem(TINY, "epochs", 2)
    cfg = _cfg(tmp_path)
    out = run_trial(cfg, capture, stop_after_epoch=1)
    assert out["status"] == "interrupted" and not (cfg.trial_dir / "summary.json").exists()
    assert (cfg.trial_dir / "fold0" / "checkpoint.pt").exists()
    done = run_trial(cfg, capture)
    # finished (a 2-epoch net at chance ends degenerate: finished all the same)
    assert done["status"] in ("done", "degenerate") and (cfg.trial_dir / "summary.json").exists()


def test_the_worst_fold_decides_and_a_comparison_reads_seed_summaries(tmp_path, three_folds, capture):
    folds = [{"status": "done", "metrics": {"verif_acc": 0.6}, "untrained": {"verif_acc": 0.5}},
             {"status": "collapsed", "metrics": {"verif_acc": 0.5}, "collapse": "flat", "untrained": {"verif_acc": 0.5}},
             {"status": "done", "metrics": {"verif_acc": 0.7}, "untrained": {"verif_acc": 0.5}}]
    s = fold_summary(_cfg(tmp_path), folds)
    assert s["status"] == "collapsed" and s["metrics"]["verif_acc"] == pytest.approx(0.6) and "fold 1: flat" in s["collapse"]
    folds[2] = {"status": "diverged", "metrics": {}}
    assert fold_summary(_cfg(tmp_path), folds)["status"] == "diverged"
    folds[2] = {"status": "interrupted"}
    assert fold_summary(_cfg(tmp_path), folds)["status"] == "interrupted"
    result = run_comparison(_cfg(tmp_path / "c"), ["contrastive", "triplet"], [0], capture)
    assert all(len(v) == 1 and v[0] in ("done", "collapsed", "degenerate") for v in result["status"].values())  # seeds
    assert result["provenance"]["combinations"][0]["trials"] == 6  # every fold's trial.json
    # each seed's number is shown as mean ± SE over its folds
    per_seed = result["folds"]["contrastive"][0]
    assert per_seed["protocol"] == "3-fold" and per_seed["se"] >= 0
    md = (result["dir"] + "/compare.md")
    assert "3-fold protocol, `verif_acc` mean ± SE over folds: seed 0:" in open(md).read()
    # embed's ROC and PCA are drawn from the first fold's report data of each seed
    assert (Path(result["dir"]) / "roc.png").is_file() and (Path(result["dir"]) / "pca.png").is_file()


def test_lfw_view2_on_the_fixture_runs_ten_folds_with_their_own_people(tmp_path, capture):
    """The real protocol on a fixture in LFW's layout (people.txt, pairs.txt, View 1 lists):
    ten fold sub-trials, each trained on the other nine sets' people and tested on its own
    fold's pairs; the seed summary averages them."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from test_lfw import build_lfw  # the fixture of the data tests, in the real layout

    from cvloss.data.registry import get_dataset

    root = build_lfw(tmp_path / "data" / "lfw")
    for f in get_dataset("lfw").files:  # downloaded-and-extracted markers of the archives
        (root / f".extracted-{f.filename}").touch()
    cfg = TrialConfig(task="embed", loss="contrastive", dataset="lfw", budget="smoke", out=str(tmp_path / "out"),
                      data_dir=str(tmp_path / "data"), overrides={"epochs": 1, "image_size": 16, "P": 2, "K": 2})
    summary = run_trial(cfg, capture)
    assert summary["protocol"] == "10-fold" and len(summary["folds"]) == 10
    for f in range(10):
        info = json.loads((cfg.trial_dir / f"fold{f}" / "trial.json").read_text())
        assert f"fold{f}" in str(cfg.trial_dir / f"fold{f}") and info["config"]["fold"] == f
        assert "of 18 identities" in info["data"]  # the 2 people of set f are not trained on
    accs = [s["metrics"]["verif_acc"] for s in summary["folds"] if s["status"] in ("done", "collapsed", "degenerate")]
    assert summary["metrics"]["verif_acc"] == pytest.approx(np.mean(accs))

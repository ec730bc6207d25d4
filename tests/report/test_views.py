"""Task views: found through the registry (default for a task without one), and embed's
ROC / PCA plots drawn from the trials' ``report_data.npz`` alone -- written by the trainer
with the untrained model's arrays, read back as untrusted, missing in older trials."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from cvloss.errors import ResultsFileError, UsageError
from cvloss.report import task_plots
from cvloss.report.task_plots import REPORT_DATA, embed_plots, read_report_data
from cvloss.report.views import DEFAULT_VIEW, TaskView, task_plots as draw_task_plots, view_for
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import REPORT_DATA_UNTRAINED, run_trial
from cvloss.task_registry import VIEWS
from cvloss.tasks import get_task_class
from cvloss.tasks.base import evaluating, seed_everything

EMBED = {"epochs": 2, "P": 4, "K": 3, "n_train_ids": 12, "per_id": 4, "n_val_ids": 20, "val_per_id": 2,
         "pairs_per_fold": 2, "width": 4, "dim": 16, "collapse_tol": 0.0}


def test_builtin_views_come_from_the_registry_and_an_unknown_task_gets_the_default(monkeypatch, tmp_path):
    assert view_for("seg").sample_titles == {"input": "image", "truth": "true mask"}
    assert view_for("embed").plots is embed_plots and view_for("sr").plots is None
    assert view_for("no-such-task") is DEFAULT_VIEW and dict(DEFAULT_VIEW.sample_titles) == {"input": "input",
                                                                                             "truth": "truth"}
    view_for("seg")  # registered (its module imported), so the entry can be swapped
    monkeypatch.setitem(VIEWS._entries, "seg", TaskView(sample_note="mine"))
    assert view_for("seg").sample_note == "mine"
    monkeypatch.setitem(VIEWS._entries, "seg", {"sample_titles": {}})  # not a TaskView
    with pytest.raises(UsageError, match="is a dict, not a cvloss.report.views.TaskView"):
        view_for("seg")
    assert draw_task_plots("sr", {"task": "sr", "dataset": "x", "seeds": [0], "losses": [], "trials": {}},
                           tmp_path) == {}


def _npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _npy_claiming(shape) -> bytes:
    """An .npy member whose header declares ``shape`` float64 but holds 8 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 8


def test_report_data_is_read_as_untrusted(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_report_data(tmp_path)
    _npz(tmp_path / REPORT_DATA, a=np.arange(3), b=np.array([True, False]))
    got = read_report_data(tmp_path)
    assert got.keys() == {"a", "b"} and got["a"].tolist() == [0, 1, 2] and got["b"].dtype == np.bool_
    _npz(tmp_path / REPORT_DATA, a=np.array([{"x": 1}], dtype=object))  # pickled inside
    with pytest.raises(ResultsFileError, match="Python objects"):
        read_report_data(tmp_path)
    with zipfile.ZipFile(tmp_path / REPORT_DATA, "w") as zf:  # 8 TB declared: refused before allocating
        zf.writestr("a.npy", _npy_claiming((10**12,)))
    with pytest.raises(ResultsFileError, match="not an .npy array of the size it declares"):
        read_report_data(tmp_path)
    (tmp_path / REPORT_DATA).write_bytes(b"not a zip")
    with pytest.raises(ResultsFileError, match="not a valid report data file"):
        read_report_data(tmp_path)
    outside = tmp_path / "elsewhere.npz"
    _npz(outside, a=np.arange(2))
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / REPORT_DATA).symlink_to(outside)
    with pytest.raises(ResultsFileError, match="symbolic link out of"):
        read_report_data(trial)


def _embed_result(tmp_path, losses):
    trials = {}
    for spec in losses:
        d = tmp_path / spec / "seed0"
        d.mkdir(parents=True)
        trials[spec] = [str(d)]
    return {"task": "embed", "dataset": "synth-ids", "seeds": [0], "losses": list(losses), "trials": trials}


def _arrays(rng, prefix=""):
    same = np.r_[np.ones(6, bool), np.zeros(6, bool)]
    return {prefix + "pair_scores": np.tanh(rng.normal(size=12) + same), prefix + "pair_same": same,
            "pca_embeddings": rng.normal(size=(8, 4)).astype(np.float32), "pca_ids": np.repeat(np.arange(4), 2)}


def test_embed_plots_draw_from_report_data_and_leave_out_trials_without_it(tmp_path, monkeypatch):
    result = _embed_result(tmp_path, ["contrastive", "softmax", "triplet"])
    rng = np.random.default_rng(0)
    _npz(tmp_path / "contrastive" / "seed0" / REPORT_DATA, **_arrays(rng), **{
        k: v for k, v in _arrays(rng, "untrained.").items() if k.startswith("untrained.")})
    bad = _arrays(rng)
    bad["pair_same"] = bad["pair_same"][:5]  # not one flag per pair
    _npz(tmp_path / "triplet" / "seed0" / REPORT_DATA, **bad)
    drawn = []
    real_roc = task_plots._roc_plot
    monkeypatch.setattr(task_plots, "_roc_plot", lambda r, curves, path: (drawn.append([c[0] for c in curves]),
                                                                           real_roc(r, curves, path)))
    with pytest.warns(UserWarning) as caught:
        assert embed_plots(result, tmp_path / "out") == {"roc": "roc.png", "pca": "pca.png"}
    assert drawn == [["untrained", "contrastive"]]
    assert (tmp_path / "out" / "roc.png").stat().st_size and (tmp_path / "out" / "pca.png").stat().st_size
    text = str(caught[0].message)
    assert "\n" not in text and "softmax: no report_data.npz" in text and "triplet: " in text
    assert "(M,) floats and (M,) booleans" in text


def test_embed_plots_of_trials_older_than_report_data_are_skipped_not_an_error(tmp_path):
    result = _embed_result(tmp_path, ["contrastive"])
    (tmp_path / "contrastive" / "seed0" / "checkpoint.pt").write_bytes(b"weights are never loaded")
    with pytest.warns(UserWarning, match="leave out contrastive: no report_data.npz"):
        assert embed_plots(result, tmp_path / "out") == {}
    assert not (tmp_path / "out").exists()


def _untrained_arrays(cfg) -> dict[str, np.ndarray]:
    """The seed's untrained model's report arrays, computed here by hand."""
    task = get_task_class("embed")(cfg.dataset, cfg.params, torch.device("cpu"), None)
    task.load_data()
    seed_everything(cfg.seed)
    with evaluating(task.build_model()) as model:
        return task.report_arrays(model)


def test_trainer_writes_report_data_with_the_untrained_arrays_and_a_resume_keeps_them(tmp_path):
    whole = TrialConfig(task="embed", loss="contrastive", dataset="synth-ids", out=str(tmp_path / "a"), overrides=EMBED)
    run_trial(whole)
    got = read_report_data(whole.trial_dir)
    assert set(got) == {"pair_scores", "pair_same", "pca_embeddings", "pca_ids", "untrained.pair_scores",
                        "untrained.pair_same", "untrained.pca_embeddings", "untrained.pca_ids"}
    assert not (whole.trial_dir / REPORT_DATA_UNTRAINED).exists()
    init = _untrained_arrays(whole)
    np.testing.assert_allclose(got["untrained.pair_scores"], init["pair_scores"], rtol=1e-6)
    assert not np.allclose(got["pair_scores"], init["pair_scores"])  # the trained model's
    assert len(np.unique(got["pca_ids"])) == 10 and got["pca_embeddings"].shape == (20, 16)
    # stopped after epoch 1, then resumed from its checkpoint: the same arrays as uninterrupted
    split = TrialConfig(task="embed", loss="contrastive", dataset="synth-ids", out=str(tmp_path / "b"), overrides=EMBED)
    run_trial(split, stop_after_epoch=1)
    assert (split.trial_dir / REPORT_DATA_UNTRAINED).exists() and not (split.trial_dir / REPORT_DATA).exists()
    run_trial(split)
    again = read_report_data(split.trial_dir)
    assert again.keys() == got.keys()
    for key in got:
        np.testing.assert_allclose(again[key], got[key], rtol=1e-6, err_msg=key)

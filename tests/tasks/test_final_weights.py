"""``model.pt`` per task: the adversarial tasks' file loads (weights only) into the task's
model, generators included; embed's ROC/PCA plots read it, and fall back to
``checkpoint.pt`` for trials written before it existed (the committed results/embed)."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from cvloss.io import save_checkpoint
from cvloss.report.task_plots import embed_plots, has_weights, trained_weights
from cvloss.run.config import TrialConfig
from cvloss.run.trainer import CHECKPOINT, MODEL, run_trial
from cvloss.tasks import get_task_class
from cvloss.tasks.base import seed_everything

GAN = {"epochs": 1, "steps_per_epoch": 6, "batch_size": 32, "hidden": 16, "layers": 2, "n_eval": 200}
TRANSLATE = {"n_train": 8, "n_val": 4, "epochs": 1, "batch_size": 4, "g_width": 4, "d_width": 4, "n_blocks": 1}
EMBED = {"epochs": 1, "P": 4, "K": 3, "n_train_ids": 12, "per_id": 4, "n_val_ids": 20, "val_per_id": 2,
         "pairs_per_fold": 2, "width": 4, "dim": 16}


@pytest.mark.parametrize("task,loss,dataset,over,generators", [
    ("gan", "ns", "ring8", GAN, ("G.",)),
    ("translate", "lsgan+cycle", "synth-stripes", TRANSLATE, ("g_ab.", "g_ba.")),
])
def test_adversarial_model_pt_holds_the_generators_and_loads_weights_only(tmp_path, task, loss, dataset, over,
                                                                         generators):
    cfg = TrialConfig(task=task, loss=loss, dataset=dataset, out=str(tmp_path), overrides=over)
    assert run_trial(cfg)["status"] in ("done", "collapsed")
    weights = torch.load(cfg.trial_dir / MODEL, weights_only=True)
    for prefix in generators:
        assert any(k.startswith(prefix) for k in weights), prefix
    t = get_task_class(task)(dataset, cfg.params, torch.device("cpu"), None)
    t.load_data()
    model = t.build_model()
    model.load_state_dict(weights)  # strict: generator(s) and discriminator(s), every key
    # the trained generator, not its initial weights (the trainer's seed, then build_model)
    fresh = get_task_class(task)(dataset, cfg.params, torch.device("cpu"), None)
    seed_everything(cfg.seed)
    init = fresh.build_model().state_dict()
    g = next(k for k in weights if k.startswith(generators[0]) and weights[k].is_floating_point())
    assert not torch.equal(weights[g], init[g])


def test_trained_weights_prefer_model_pt_and_fall_back_to_checkpoint_pt(tmp_path):
    (tmp_path / "trial.json").write_text("{}")
    assert not has_weights(tmp_path)
    save_checkpoint(tmp_path / CHECKPOINT, {"layout": 2, "model": OrderedDict(w=torch.tensor([2.0]))})
    assert has_weights(tmp_path) and trained_weights(tmp_path)["w"].item() == 2.0
    save_checkpoint(tmp_path / MODEL, OrderedDict(w=torch.tensor([1.0])))
    assert trained_weights(tmp_path)["w"].item() == 1.0
    (tmp_path / CHECKPOINT).unlink()
    assert has_weights(tmp_path) and trained_weights(tmp_path)["w"].item() == 1.0


def test_embed_plots_read_model_pt_and_an_old_trials_checkpoint_alike(tmp_path):
    """One trial kept with its checkpoints: the plots from model.pt alone and from
    checkpoint.pt alone (a trial written before model.pt) are the same file."""
    spec = "contrastive"
    cfg = TrialConfig(task="embed", loss=spec, dataset="synth-ids", out=str(tmp_path / "out"), overrides=EMBED,
                      keep_checkpoints=True)
    run_trial(cfg)
    result = {"task": "embed", "dataset": "synth-ids", "seeds": [0], "losses": [spec],
              "trials": {spec: [str(cfg.trial_dir)]}}
    model_pt, ckpt = cfg.trial_dir / MODEL, cfg.trial_dir / CHECKPOINT
    ckpt_bytes = ckpt.read_bytes()
    ckpt.unlink()  # model.pt only: what a trial keeps now
    assert embed_plots(result, tmp_path / "new") == {"roc": "roc.png", "pca": "pca.png"}
    ckpt.write_bytes(ckpt_bytes)
    model_pt.unlink()  # checkpoint.pt only: a trial of the committed results
    assert embed_plots(result, tmp_path / "old") == {"roc": "roc.png", "pca": "pca.png"}
    for name in ("roc.png", "pca.png"):
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes(), name
    ckpt.unlink()  # no weights at all: no plots, no error
    assert embed_plots(result, tmp_path / "none") == {}

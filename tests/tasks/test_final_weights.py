"""``model.pt`` per task: the adversarial tasks' file loads (weights only) into the task's
model, generators included."""
from __future__ import annotations

import pytest
import torch

from cvloss.run.config import TrialConfig
from cvloss.run.trainer import MODEL, run_trial
from cvloss.tasks import get_task_class
from cvloss.tasks.base import seed_everything

GAN = {"epochs": 1, "steps_per_epoch": 6, "batch_size": 32, "hidden": 16, "layers": 2, "n_eval": 200}
TRANSLATE = {"n_train": 8, "n_val": 4, "epochs": 1, "batch_size": 4, "g_width": 4, "d_width": 4, "n_blocks": 1}


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

"""TaskSpec: a task as frozen data -- metric lookup by name or prefix, the settings
schema from budgets and COMMON, the losses a task accepts by slot kind minus exclusions."""
from __future__ import annotations

import dataclasses

import pytest

from cvloss.settings import COMMON, Int
from cvloss.tasks.spec import Metric, TaskSpec


def _spec(**over) -> TaskSpec:
    args = dict(
        name="toy",
        metrics={"acc": Metric(True, 0.0, 1.0, "fraction"), "err": Metric(False, 0.0, None, "px")},
        primary="acc",
        secondary="err",
        slots={"image": ("image",), "prior": ("tv",)},
        budgets={"smoke": {"epochs": 1, "lr": 0.1, "steps": 3}, "quick": {"epochs": 2, "lr": 0.1, "steps": 5,
                                                                         "batch_size": 4}},
        extra_metrics={"iou_": Metric(True, 0.0, 1.0, "IoU, 0-1"), "dist_": Metric(False)},
        settings={"steps": Int(1, 9, help="steps"), "lr": Int(1, 2)},
        excluded_losses=("style",),
    )
    return TaskSpec(**{**args, **over})


def test_direction_bounds_and_unit_by_name_then_prefix_then_default():
    spec = _spec()
    assert spec.direction("acc") is True and spec.direction("err") is False
    assert spec.bounds("acc") == (0.0, 1.0) and spec.bounds("err") == (0.0, None) and spec.unit("err") == "px"
    # a name the data makes (seg's iou_<class>) takes its prefix's declaration
    assert spec.direction("iou_cat") is True and spec.bounds("iou_cat") == (0.0, 1.0) and spec.unit("iou_cat") == "IoU, 0-1"
    assert spec.direction("dist_vgg") is False and spec.bounds("dist_vgg") == (None, None)
    # neither declared nor prefixed: higher is better, unbounded, no unit
    assert spec.metric("other") == Metric() and spec.direction("other") is True and spec.unit("other") == ""
    assert spec.bounds("iou_cat", dataset="anything") == (0.0, 1.0)


def test_schema_takes_budget_keys_in_order_own_settings_first_then_common():
    schema = _spec().schema()
    assert list(schema) == ["epochs", "lr", "steps", "batch_size"]
    assert schema["steps"].hi == 9 and schema["lr"].kind == "int"  # own declarations override COMMON's lr
    assert schema["epochs"] is COMMON["epochs"] and schema["batch_size"] is COMMON["batch_size"]
    with pytest.raises(KeyError):  # a budget key neither declares is a bug in the task
        _spec(budgets={"smoke": {"nonsense": 1}}).schema()


def test_accepts_a_loss_by_slot_name_or_kind_minus_exclusions():
    spec = _spec()
    assert spec.accepts("l1", "image") and spec.accepts("tv", "regulariser")  # by kind; by name
    assert not spec.accepts("ce", "seg")  # no slot takes the kind
    assert not spec.accepts("style", "image")  # its kind is taken, but the task excludes it
    assert _spec(excluded_losses=()).accepts("style", "image")


def test_defaults_rules_and_frozen():
    spec = _spec()
    assert spec.folds("any") == 0 and spec.check_params({}) is None and spec.check_seeds({}, [0, 1], "d") is None
    assert spec.degenerate_by_numbers({"acc": 0.0}, {}, {}, "d") is None
    assert spec.replicate_unit.startswith("seed:") and spec.item_unit == "test image" and not spec.evaluate_at_init
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.primary = "err"
    with pytest.raises(TypeError):  # the mappings are read-only, nested budgets too
        spec.metrics["new"] = Metric()
    with pytest.raises(TypeError):
        spec.budgets["smoke"]["epochs"] = 9
    assert spec.budgets["smoke"] | {"epochs": 5} == {"epochs": 5, "lr": 0.1, "steps": 3}  # a run's params: a dict
    with pytest.raises(ValueError, match="'f1' is not one of its metrics"):
        _spec(primary="f1")


def test_a_spec_copies_what_it_is_given():
    budgets = {"smoke": {"epochs": 1}}
    spec = _spec(budgets=budgets)
    budgets["smoke"]["epochs"] = 7
    assert spec.budgets["smoke"]["epochs"] == 1


# Today's registry: which built-in losses serve which task (the tuples losses once declared).
SERVED = {
    "seg": {"bce", "ce", "focal", "wce", "dice", "cldice", "topo"},
    "sr": {"hinge", "lsgan", "minimax", "ns", "wgan", "wgan_gp", "content", "tv", "perceptual", "charbonnier", "l1",
           "mse", "ssim", "texture"},
    "style": {"content", "style", "tv", "perceptual", "texture"},
    "embed": {"contrastive", "softmax", "triplet", "triplet_offline"},
    "translate": {"hinge", "lsgan", "minimax", "ns", "wgan", "wgan_gp", "tv", "cycle", "identity", "perceptual",
                  "charbonnier", "l1", "mse", "ssim"},
    "gan": {"hinge", "lsgan", "minimax", "ns", "wgan", "wgan_gp"},
}
KINDS = {"hinge": "adversarial", "lsgan": "adversarial", "minimax": "adversarial", "ns": "adversarial",
         "wgan": "adversarial", "wgan_gp": "adversarial", "content": "image", "style": "image", "tv": "image",
         "cycle": "cycle", "identity": "cycle", "contrastive": "metric", "softmax": "logits", "triplet": "metric",
         "triplet_offline": "triplets", "perceptual": "image", "bce": "seg", "ce": "seg", "charbonnier": "image",
         "focal": "seg", "l1": "image", "mse": "image", "wce": "seg", "dice": "seg", "ssim": "image",
         "texture": "image", "cldice": "seg", "topo": "seg"}


@pytest.mark.parametrize("task", sorted(SERVED))
def test_built_in_specs_accept_exactly_the_losses_that_served_them(task):
    from cvloss.tasks import get_task_class

    spec = get_task_class(task).spec
    assert {name for name, kind in KINDS.items() if spec.accepts(name, kind)} == SERVED[task]


def test_the_task_contract_has_twenty_members_and_needs_a_spec():
    import torch

    from cvloss.tasks.adversarial import AdversarialTask
    from cvloss.tasks.base import Task
    from cvloss.tasks.gan import GANTask

    assert sorted(n for n in dir(Task) if not n.startswith("_")) == sorted([
        "spec", "plan", "optimizers", "lr_factor", "load_data", "build_model", "num_batches", "train_batches",
        "train_step", "evaluate", "sample_rows", "reference_metrics", "test_items", "report_arrays", "collapse_reason",
        "degenerate_reason", "state_dict", "load_state_dict", "summary_extras", "describe_data"])
    assert not hasattr(Task, "stepper") and issubclass(GANTask, AdversarialTask)

    class NoSpec(Task):  # every abstract method given, the spec forgotten
        optimizers = load_data = build_model = num_batches = train_batches = train_step = evaluate = \
            sample_rows = lambda *a: None

    with pytest.raises(TypeError, match="NoSpec sets no spec"):
        NoSpec("d", {}, torch.device("cpu"))

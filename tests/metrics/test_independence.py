"""Every feature metric of sr, style and translate names its network, layers and weights,
and is either disjoint from every loss term's network or declared "NOT independent" of the
terms it shares one with: checked against every registered loss of the task at its
defaults and against the compared specs of the reference study (results/README.md)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cvloss.losses import build_loss, list_losses
from cvloss.metrics.independence import FeatureNet, dependence, describe_metric, loss_feature_nets
from cvloss.tasks.sr import SRTask
from cvloss.tasks.style import StyleTask
from cvloss.tasks.translate import TranslateTask

RUN_WEIGHTS = "random(seed=0)"  # what --feature-weights random gives every network
TASKS = [SRTask, StyleTask, TranslateTask]
README = Path(__file__).resolve().parents[2] / "results" / "README.md"


def _reference_specs(task: str) -> list[str]:
    """The reference study's specs of ``task`` (its comparisons in ``results/study.toml``)
    and the --losses of every other comparison whose command results/README.md lists."""
    from cvloss.run.compare import split_losses
    from cvloss.study.schema import read_study

    study = read_study(README.parent / "study.toml")
    specs = list(dict.fromkeys(s for c in study.comparisons if c.task == task for s in c.losses))
    for cmd in re.findall(r"`(cvloss compare [^`]+)`", README.read_text()):
        argv = shlex.split(cmd)
        if argv[argv.index("--task") + 1] == task:
            specs += [s for s in split_losses(argv[argv.index("--losses") + 1]) if s not in specs]
    return specs


@pytest.fixture(scope="module")
def default_losses():
    return {cls.spec.name: [build_loss(i.name, task=cls.spec.name, feature_weights="random")
                            for i in list_losses(cls.spec.name)] for cls in TASKS}


@pytest.mark.parametrize("cls", TASKS, ids=lambda c: c.spec.name)
def test_declared_dependence_equals_the_networks_of_every_default_loss(cls, default_losses):
    for name, (net, shared) in cls.feature_metrics(RUN_WEIGHTS).items():
        assert name in cls.spec.metrics
        assert net.arch and net.layers and net.weights  # the table can name all three
        assert dependence(net, default_losses[cls.spec.name]) == sorted(shared), name


@pytest.mark.parametrize("cls", TASKS, ids=lambda c: c.spec.name)
def test_the_reference_comparisons_are_marked_where_a_metric_shares_a_term_network(cls):
    specs = _reference_specs(cls.spec.name)
    assert specs, f"no reference comparison of {cls.spec.name} in {README}"
    losses = [build_loss(s, task=cls.spec.name, feature_weights="random") for s in specs]
    for name, (net, shared) in cls.feature_metrics(RUN_WEIGHTS).items():
        found = dependence(net, losses)
        assert set(found) <= set(shared), (name, found)
        text = describe_metric(name, net, shared, cls.spec.name)
        assert ("NOT independent" in text) == bool(shared) and net.describe() in text


def test_each_task_has_an_independent_perceptual_metric():
    independent = {cls.spec.name: [n for n, (_, shared) in cls.feature_metrics(RUN_WEIGHTS).items() if not shared]
                   for cls in TASKS}
    assert "lpips" in independent["sr"] and "paired_lpips" in independent["translate"] and "fid" in independent["translate"]
    # style: VGG16, which none of its default content/style/texture terms (VGG19) runs
    style_nets = {net.arch for net, _ in StyleTask.feature_metrics(RUN_WEIGHTS).values()}
    assert style_nets == {"vgg16"}
    for spec in ("content", "style", "texture", "content+1000*style+0.01*tv"):
        loss = build_loss(spec, task="style", feature_weights="random")
        assert {n.arch for _, n in loss_feature_nets(loss)} == {"vgg19"}


def test_sharing_rule_is_architecture_and_weights_not_layers():
    a = FeatureNet("vgg16", ("relu3_3",), RUN_WEIGHTS)
    assert a.shares_network(FeatureNet("vgg16", ("relu2_2",), RUN_WEIGHTS))  # nested layers of one network
    assert not a.shares_network(FeatureNet("vgg16", ("relu3_3",), "imagenet"))  # other weights: another network
    assert not a.shares_network(FeatureNet("vgg19", ("relu3_3",), RUN_WEIGHTS))
    perceptual = build_loss("l1+0.01*perceptual", task="sr", feature_weights="random")
    assert dependence(a, [perceptual]) == ["perceptual"]
    assert describe_metric("x", a, ["perceptual"], "sr").endswith("NOT independent: perceptual uses the same vgg16 and weights")

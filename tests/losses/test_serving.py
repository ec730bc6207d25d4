"""A loss serves a task by kind: the task's spec decides (its slots' kinds and names, less
its exclusions); ``register_loss(tasks=...)`` is deprecated and changes nothing."""
from __future__ import annotations

import pytest

from cvloss.losses import Loss, build_loss, get_loss_info, list_losses, register_loss, serves
from cvloss.losses import registry


@pytest.fixture
def clean_registry():
    """The loss registry as it was after the test (what it registers is dropped)."""
    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


def test_a_new_seg_loss_serves_seg_by_its_kind_alone(clean_registry):
    @register_loss("halfce", family="pixel-wise", paper="a test")
    class HalfCE(Loss):
        """Half of nothing."""

        kind = "seg"

        def forward(self, logits, target, weight=None):
            return 0 * logits.mean()

    info = get_loss_info("halfce")
    assert info.tasks == ("seg",) and serves(info, "seg") and not serves(info, "sr")
    assert "halfce" in {i.name for i in list_losses("seg")} and "halfce" not in {i.name for i in list_losses("sr")}
    assert build_loss("ce+halfce", task="seg").spec == "ce+halfce"


def test_tasks_argument_warns_and_is_ignored(clean_registry):
    with pytest.warns(DeprecationWarning, match=r"register_loss\('oldstyle', tasks=\.\.\.\) is deprecated"):
        @register_loss("oldstyle", family="pixel-wise", tasks=("embed",), paper="a test")
        class OldStyle(Loss):
            """An image loss that claims embed."""

            def forward(self, pred, target, weight=None):
                return (pred - target).abs().mean()

    info = get_loss_info("oldstyle")  # kind image: sr and translate take it, embed does not
    assert info.tasks == ("sr", "translate") and not serves(info, "embed")
    with pytest.raises(ValueError, match="does not serve task 'embed'"):
        build_loss("oldstyle", task="embed")


def test_exclusions_keep_a_kind_out_of_a_task():
    style, content = get_loss_info("style"), get_loss_info("content")  # both of kind image
    assert style.kind == content.kind == "image"
    assert serves(content, "sr") and not serves(style, "sr")  # sr excludes style
    assert not serves(content, "translate") and serves(get_loss_info("l1"), "translate")
    assert serves(style, "style") and not serves(get_loss_info("l1"), "style")  # style's slots name their losses

"""Segmentation metrics against hand-computed values on tiny label maps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.measure import euler_number
from skimage.morphology import skeletonize

from cvloss.metrics.segmentation import (
    SegMetricAccumulator,
    betti_numbers,
    betti_numbers_batch,
    cldice_score,
    confusion_matrix,
    segmentation_metrics,
)

# Two 4×4 images, 3 classes. Hand count (rows: truth, columns: prediction):
#   image A: truth 0 → pred 0 ×5, 1 ×1; truth 1 → 1 ×5, 2 ×1; truth 2 → 2 ×4
#   image B: truth 0 → pred 0 ×11, 2 ×1; truth 1 → 1 ×3, 0 ×1
TARGET = np.array(
    [
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 0, 0]],
        [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]],
    ],
    dtype=np.int64,
)
PRED = np.array(
    [
        [[0, 0, 1, 1], [0, 1, 1, 1], [2, 2, 2, 1], [2, 2, 0, 0]],
        [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 2]],
    ],
    dtype=np.int64,
)
CM = np.array([[16, 1, 1], [1, 8, 1], [0, 0, 4]])
# TP = (16, 8, 4), FP = column sums − TP = (1, 1, 2), FN = row sums − TP = (2, 2, 0)
IOU = (16 / 19, 8 / 11, 4 / 6)
DICE_FG = (2 * 8 / (2 * 8 + 1 + 2), 2 * 4 / (2 * 4 + 2 + 0))  # classes 1, 2


def test_confusion_matrix_hand_counted():
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, CM)
    # Torch tensors in, same answer; rows are truth, so transposing the inputs transposes M.
    np.testing.assert_array_equal(confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(TARGET), 3), CM)
    np.testing.assert_array_equal(confusion_matrix(TARGET, PRED, 3), CM.T)


def test_overlap_metrics_hand_computed():
    m = segmentation_metrics(PRED, TARGET, 3, class_names=("bg", "pet", "border"))
    assert m["iou_bg"] == pytest.approx(IOU[0])
    assert m["iou_pet"] == pytest.approx(IOU[1])
    assert m["iou_border"] == pytest.approx(IOU[2])
    assert m["miou"] == pytest.approx(sum(IOU) / 3)
    assert m["dice"] == pytest.approx(sum(DICE_FG) / 2)
    assert m["pixel_acc"] == pytest.approx(28 / 32)
    # Dataset-level, not the mean of per-image mIoUs (which would give another number).
    per_image = np.mean([segmentation_metrics(PRED[i : i + 1], TARGET[i : i + 1], 3)["miou"] for i in range(2)])
    assert not math.isclose(per_image, m["miou"])


def test_betti_errors_on_hand_pair():
    # Image A: classes 1 and 2 are one blob each in both. Image B: class 1 one blob in
    # both; class 2 absent from truth but one stray pixel in pred: |1 − 0| = 1.
    m = segmentation_metrics(PRED, TARGET, 3)
    assert m["betti0_err"] == pytest.approx(1 / 4)  # 4 (image, foreground class) pairs
    assert m["betti1_err"] == 0.0


def test_absent_class_is_excluded():
    m4 = segmentation_metrics(PRED, TARGET, 4)  # class 3 appears nowhere
    assert math.isnan(m4["iou_3"])
    assert m4["miou"] == pytest.approx(sum(IOU) / 3)
    assert m4["dice"] == pytest.approx(sum(DICE_FG) / 2)
    # A class only in the prediction is present: IoU 0, and it drags the mean down.
    target = np.zeros((1, 4, 4), np.int64)
    pred = target.copy()
    pred[0, 0, 0] = 1
    m = segmentation_metrics(pred, target, 3)
    assert m["iou_1"] == 0.0 and math.isnan(m["iou_2"])
    assert m["miou"] == pytest.approx((15 / 16 + 0.0) / 2)
    assert m["dice"] == 0.0  # only foreground class 1 is present, with Dice 0


def test_ignore_index():
    target = TARGET.copy()
    target[1, 3, 3] = 255  # the pixel B predicted as class 2 by mistake
    cm = confusion_matrix(PRED, target, 3, ignore_index=255)
    expected = CM.copy()
    expected[0, 2] -= 1
    np.testing.assert_array_equal(cm, expected)
    m = segmentation_metrics(PRED, target, 3, ignore_index=255)
    assert m["pixel_acc"] == pytest.approx(28 / 31)
    # The ignored pixel takes the predicted label for topology: no more Betti error.
    assert m["betti0_err"] == 0.0
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        segmentation_metrics(PRED, target, 3)  # 255 without ignore_index


# --- Betti numbers -----------------------------------------------------------------

def _m(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in r] for r in rows])


RING = _m([".....", ".###.", ".#.#.", ".###.", "....."])
TWO_SQUARES = _m(["##...", "##...", ".....", "...##", "...##"])
FIGURE_EIGHT = _m([".....", ".###.", ".#.#.", ".###.", ".#.#.", ".###.", "....."])
DIAGONAL = _m(["#...", ".#..", "..#.", "...#"])
# Foreground diamond touching only at corners: one 8-component that encloses the centre
# pixel, which has no 4-neighbour in the background: a hole (8/4 duality).
DIAMOND = _m([".....", "..#..", ".#.#.", "..#..", "....."])
OPEN_U = _m(["####", "#..#", "#..#", "#..#"])  # the "hole" reaches the bottom border
CLOSED_U = _m(["####", "#..#", "#..#", "####"])


@pytest.mark.parametrize(
    "mask, expected",
    [
        (RING, (1, 1)),
        (TWO_SQUARES, (2, 0)),
        (FIGURE_EIGHT, (1, 2)),
        (DIAGONAL, (1, 0)),
        (DIAMOND, (1, 1)),
        (OPEN_U, (1, 0)),
        (CLOSED_U, (1, 1)),
        (np.zeros((3, 3), bool), (0, 0)),
        (np.ones((3, 3), bool), (1, 0)),
    ],
    ids=["ring", "two_squares", "figure_eight", "diagonal", "diamond", "open_u", "closed_u", "empty", "full"],
)
def test_betti_numbers_hand_drawn(mask, expected):
    assert betti_numbers(mask) == expected
    assert betti_numbers(torch.from_numpy(mask)) == expected


def test_betti_numbers_match_euler_characteristic_and_loop():
    # β0 − β1 = χ with 8-connected foreground; skimage computes χ independently (bit-quads).
    rng = np.random.default_rng(0)
    masks = rng.random((40, 7, 9)) < rng.random((40, 1, 1))
    b0, b1 = betti_numbers_batch(masks)
    chi = np.array([euler_number(m, connectivity=2) for m in masks])
    np.testing.assert_array_equal(b0 - b1, chi)
    # The stacked labelling equals one call per mask (no leaking between masks).
    loop = np.array([betti_numbers(m) for m in masks])
    np.testing.assert_array_equal(np.stack([b0, b1], 1), loop)
    assert b1.max() > 0 and b0.max() > 1  # the random masks did exercise both numbers


def test_betti_errors_ring_vs_squares():
    # Image 0: truth a ring (1, 1), prediction two squares (2, 0): errors 1 and 1.
    # Image 1: class absent from both: errors 0 -- it still counts in the mean.
    target = np.zeros((2, 5, 5), np.int64)
    pred = np.zeros((2, 5, 5), np.int64)
    target[0][RING] = 1
    pred[0][TWO_SQUARES] = 1
    m = segmentation_metrics(pred, target, 2)
    assert m["betti0_err"] == pytest.approx(0.5)
    assert m["betti1_err"] == pytest.approx(0.5)
    m0 = segmentation_metrics(pred[:1], target[:1], 2)
    assert (m0["betti0_err"], m0["betti1_err"]) == (1.0, 1.0)


# --- clDice -------------------------------------------------------------------------

def _line(row: int, c0: int, c1: int, shape=(7, 7)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[row, c0:c1] = True
    return m


def test_cldice_score_cases():
    line = _line(3, 0, 7)
    assert cldice_score(line, line) == 1.0
    assert cldice_score(_line(1, 0, 7), _line(5, 0, 7)) == 0.0  # disjoint
    empty = np.zeros((7, 7), bool)
    assert cldice_score(empty, empty) == 1.0
    assert cldice_score(line, empty) == 0.0 and cldice_score(empty, line) == 0.0


def test_cldice_score_hand_computed():
    # Truth: full 7-px line; prediction: its first 4 px. Thin lines are their own
    # skeletons, so Tprec = 4/4 and Tsens = 4/7 → 2·(4/7)/(1 + 4/7) = 8/11.
    truth, pred = _line(3, 0, 7), _line(3, 0, 4)
    assert (skeletonize(truth) == truth).all() and (skeletonize(pred) == pred).all()
    assert cldice_score(pred, truth) == pytest.approx(8 / 11)
    # Tprec and Tsens swap when the roles do; the harmonic mean is symmetric.
    assert cldice_score(truth, pred) == pytest.approx(8 / 11)


def test_cldice_in_metrics_averages_pairs():
    # One image, foreground classes 1 (8/11 as above) and 2 (absent from both: 1.0).
    target = np.zeros((1, 7, 7), np.int64)
    pred = np.zeros((1, 7, 7), np.int64)
    target[0][_line(3, 0, 7)] = 1
    pred[0][_line(3, 0, 4)] = 1
    m = segmentation_metrics(pred, target, 3)
    assert m["cldice_score"] == pytest.approx((8 / 11 + 1.0) / 2)


# --- streaming ----------------------------------------------------------------------

@pytest.mark.parametrize("ignore_index", [None, 255])
def test_accumulator_equals_one_shot(ignore_index):
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 3, (6, 8, 8))
    target = rng.integers(0, 3, (6, 8, 8))
    if ignore_index is not None:
        target[rng.random(target.shape) < 0.1] = ignore_index
    one = segmentation_metrics(pred, target, 3, ("a", "b", "c"), ignore_index=ignore_index)
    acc = SegMetricAccumulator(3, ("a", "b", "c"), ignore_index=ignore_index)
    for lo, hi in [(0, 2), (2, 3), (3, 6)]:
        acc.update(torch.from_numpy(pred[lo:hi]), torch.from_numpy(target[lo:hi]))
    streamed = acc.compute()
    assert streamed.keys() == one.keys()
    for k in one:
        assert streamed[k] == pytest.approx(one[k], rel=1e-12), k
    assert set(one) == {"miou", "dice", "pixel_acc", "iou_a", "iou_b", "iou_c", "betti0_err", "betti1_err", "cldice_score"}
    acc.reset()
    assert math.isnan(acc.compute()["miou"])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        segmentation_metrics(PRED[0], TARGET[0], 3)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(PRED, TARGET[:1], 3)
    with pytest.raises(ValueError, match=r"pred class ids must lie in \[0, 1\]"):
        confusion_matrix(PRED, TARGET, 2)
    with pytest.raises(ValueError, match="dtype"):
        confusion_matrix(PRED.astype(np.float32), TARGET, 3)
    with pytest.raises(ValueError, match="class_names"):
        SegMetricAccumulator(3, ("a", "b"))
    with pytest.raises(ValueError, match="num_classes"):
        SegMetricAccumulator(1)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        betti_numbers(np.zeros((1, 3, 3), bool))

"""One look per loss, the same in every plot and table of every report.

A loss's look depends on its spec string alone -- never on its position in a comparison
-- so ``ce`` has the same colour in every comparison, in every plot, in the HTML tables'
swatches and in task-specific plots that call :func:`loss_style`.

* Every registered loss name has a fixed palette slot (:data:`SLOTS`), chosen so the
  losses that serve one task never share a slot (16 slots cover sr ∪ translate, the
  largest union). A slot fixes colour, bar hatch, line style and marker together, so two
  losses of one task differ in all four and stay apart when printed in grey.
* A spec that is not a bare name (``triplet(mining=semi_hard)``, ``2*lsgan+cycle``) is a
  variant of its first term: it keeps that term's hue, shifted lighter or darker, and gets
  its own hatch/marker/line style (40 colour variants x 7 patterns), all picked by a hash of the spec text (SHA-1, so the
  pick is the same in every process and on every machine; Python's ``hash`` is not).
* Names unknown to the table (a loss added later) hash onto a slot.

Reference rows (bicubic, the untrained network) are not losses: they are drawn in
:data:`REFERENCE_COLOR`, dashed, never with a loss colour.
"""
from __future__ import annotations

import colorsys
import hashlib
import re
from typing import Any

# 16 colours, distinct in hue and (pairwise, mostly) in lightness; no grey: grey is the
# reference colour. tab10 without its grey, then darker tones of tab20b/tab20c.
PALETTE = [
    "#1f77b4",  # blue
    "#ff7f0e",  # orange
    "#2ca02c",  # green
    "#d62728",  # red
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#bcbd22",  # olive
    "#17becf",  # cyan
    "#393b79",  # navy
    "#e7ba52",  # gold
    "#843c39",  # maroon
    "#637939",  # moss
    "#7b4173",  # plum
    "#3182bd",  # steel blue (darker than cyan, lighter than navy)
    "#fd8d3c",  # light orange
]
# Bar fill patterns, line styles and markers; cycled with the slot so a slot's four
# attributes differ from those of the neighbouring slots.
HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--", "++"]
LINESTYLES: list[Any] = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (5, 2, 1, 2, 1, 2))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
REFERENCE_COLOR = "#7f7f7f"

# Fixed slots. Adversarial objectives 0-5 (gan, and the adversarial part of sr/translate),
# image losses 6-15 (sr, translate, style); seg and embed reuse low slots because they
# never meet the losses above in one comparison.
SLOTS = {
    "hinge": 0, "lsgan": 1, "minimax": 2, "ns": 3, "wgan": 4, "wgan_gp": 5,
    "l1": 6, "mse": 7, "charbonnier": 8, "ssim": 9, "perceptual": 10, "content": 11, "tv": 12, "texture": 13,
    "cycle": 14, "identity": 15, "style": 0,
    "ce": 0, "wce": 1, "dice": 2, "topo": 3, "cldice": 4, "focal": 5, "bce": 6,
    "contrastive": 0, "triplet": 1, "softmax": 2,
}

_FIRST_NAME = re.compile(r"^\s*(?:[-+0-9.eE]+\s*\*\s*)?([A-Za-z_][A-Za-z0-9_]*)")


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def base_name(spec: str) -> str:
    """The first term's loss name: ``0.5*dice+ce`` -> ``dice``; ``""`` if none."""
    m = _FIRST_NAME.match(spec)
    return m.group(1) if m else ""


def _variant(hex_color: str, h: int) -> str:
    """One of 40 variants of a colour, by ``h``: hue turned by 0, ±13° or ±25° and HLS
    lightness moved by one of 8 non-zero steps (lighter or darker), so variants of one
    family rarely coincide and never equal the family's own colour."""
    r, g, b = (int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    hue = (hue + (0.0, -0.035, 0.035, -0.07, 0.07)[h % 5]) % 1.0
    step = (-0.55, 0.5, -0.35, 0.3, -0.15, 0.65, -0.45, 0.15)[(h // 5) % 8]
    # kept within [0.18, 0.7]: paler is lost on white paper, darker reads as black
    light = light + step * (max(0.0, 0.7 - light) if step > 0 else (light - 0.18))
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return "#" + "".join(f"{round(c * 255):02x}" for c in (r, g, b))


def loss_style(spec: str) -> dict[str, Any]:
    """The look of one loss spec: ``color`` (hex), ``hatch``, ``linestyle``, ``marker``.

    Depends on ``spec`` alone (see the module docstring); references are not losses, use
    :data:`REFERENCE_COLOR` for them."""
    spec = spec.strip()
    name = base_name(spec)
    slot = SLOTS.get(name, _digest(name) % len(PALETTE))
    color = PALETTE[slot % len(PALETTE)]
    pattern = slot
    if spec != name:
        # A variant: same hue family, a shade and a pattern of its own.
        h = _digest(spec)
        color = _variant(color, h % 40)
        pattern = slot + 1 + (h >> 8) % (len(HATCHES) - 1)
    return {
        "color": color,
        "hatch": HATCHES[pattern % len(HATCHES)],
        "linestyle": LINESTYLES[pattern % len(LINESTYLES)],
        "marker": MARKERS[pattern % len(MARKERS)],
    }


def loss_color(spec: str) -> str:
    """Hex colour of a loss spec (see :func:`loss_style`)."""
    return loss_style(spec)["color"]


def reference_style(k: int = 0) -> dict[str, Any]:
    """Reference rows (bicubic, untrained network): grey, dashed/dotted by index."""
    return {"color": REFERENCE_COLOR, "linestyle": ["--", ":", "-."][k % 3], "marker": "", "hatch": ""}


# Units and ranges shown on axes and in table headers. Exact names first, then prefixes.
METRIC_UNITS = {
    "miou": "mean IoU, 0-1", "dice": "Dice, 0-1", "pixel_acc": "fraction of pixels",
    "betti0_err": "|Δβ0|, components", "betti1_err": "|Δβ1|, holes", "cldice_score": "clDice, 0-1",
    "psnr": "dB", "psnr_y": "dB", "psnr_rgb": "dB", "ssim": "SSIM, ≤1", "vgg_dist": "feature distance",
    "verif_acc": "fraction of pairs", "auc": "ROC AUC, 0-1",
    "modes": "count", "hq_pct": "% of samples", "kl": "nats",
    "content_loss": "feature MSE", "style_dist": "Gram distance", "tv": "total variation", "evals": "function evaluations",
    "wall_s": "s",
    "paired_ssim": "SSIM, ≤1", "paired_psnr": "dB", "paired_l1": "mean |Δ|, pixels in [0,1]",
    "cycle_l1": "mean |Δ|, pixels in [0,1]", "fid": "FID", "kid": "KID",
    "train_loss": "loss value",
}
_PREFIX_UNITS = [("iou_", "IoU, 0-1"), ("tar_far", "TAR, 0-1"), ("gram_", "Gram distance"), ("psnr", "dB"),
                 ("ssim", "SSIM, ≤1")]


def metric_unit(metric: str) -> str:
    """Unit or range of a metric (``dB``, ``mean IoU, 0-1``), ``""`` when unknown."""
    if metric in METRIC_UNITS:
        return METRIC_UNITS[metric]
    for prefix, unit in _PREFIX_UNITS:
        if metric.startswith(prefix):
            return unit
    return ""


def metric_label(metric: str, direction: bool | None = None) -> str:
    """Axis label: ``miou (mean IoU, 0-1) ↑``."""
    unit = metric_unit(metric)
    text = f"{metric} ({unit})" if unit else metric
    if direction is not None:
        text += " ↑" if direction else " ↓"
    return text

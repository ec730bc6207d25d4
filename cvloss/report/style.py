"""One look per loss, the same in every plot, table and colour key of a report.

A look is a colour plus a *pattern* (bar hatch, line style and marker, which go
together), and no two losses of one report share both. Every registered loss name has a
fixed look (:data:`SLOTS`), distinct over all registered names (and, within one task's
losses, in colour and in pattern, for print in grey). Any other spec gets a *preferred*
look from a SHA-1 of its text (the same on every machine; Python's ``hash`` is not),
moved by the report's key (:func:`loss_key`) to the next free look when a registered
loss or an earlier-sorting spec holds it: the key depends only on the *set* of specs.
Plots take the look from :func:`result_key` (report-wide under ``cvloss report``);
reference rows are drawn in :data:`REFERENCE_COLOR`, dashed. See docs/report.md.
"""
from __future__ import annotations

import colorsys
import hashlib
import itertools
import re
from typing import Any, Iterable, Iterator

from cvloss.errors import UsageError
from cvloss.result import ComparisonResult, reads_result
from cvloss.tasks import get_task_class

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
COLOUR_NAMES = ["blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan", "navy", "gold",
                "maroon", "moss", "plum", "steel blue", "light orange"]
# The 8 patterns: pattern k is HATCHES[k] on a bar or swatch, LINESTYLES[k] on a curve and
# MARKERS[k] on a dot, so two looks that differ in pattern differ in all three.
HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--", "++"]
LINESTYLES: list[Any] = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (5, 2, 1, 2, 1, 2))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
# Words for the Markdown colour key (it cannot show a swatch).
HATCH_NAMES = ["none", "diagonal", "dots", "crossed", "back-diagonal", "rings", "horizontal", "grid"]
LINESTYLE_NAMES = ["solid", "dashed", "dash-dot", "dotted", "long dash", "dash-dot, dense", "dotted, dense",
                   "dash-dot-dot"]
MARKER_NAMES = ["circle", "square", "triangle up", "diamond", "triangle down", "plus", "cross", "star"]
# The markers as text, for the HTML key (the dots of the final-metrics plot carry the marker).
MARKER_GLYPHS = ["●", "■", "▲", "◆", "▼", "✚", "✖", "★"]
REFERENCE_COLOR = "#7f7f7f"

# name -> (colour index into PALETTE, pattern index): unique over all registered names (see
# the module docstring). Colours as in earlier reports: adversarial 0-5, image losses 6-15,
# and seg / embed / style reuse low colours, each with a pattern that colour's other users
# lack (seg (c+4)%8, embed (c+2)%8, style 6), so within every task colours and patterns differ.
SLOTS: dict[str, tuple[int, int]] = {
    "hinge": (0, 0), "lsgan": (1, 1), "minimax": (2, 2), "ns": (3, 3), "wgan": (4, 4), "wgan_gp": (5, 5),
    "l1": (6, 6), "mse": (7, 7), "charbonnier": (8, 0), "ssim": (9, 1), "perceptual": (10, 2), "content": (11, 3),
    "tv": (12, 4), "texture": (13, 5), "cycle": (14, 6), "identity": (15, 7), "style": (0, 6),
    "ce": (0, 4), "wce": (1, 5), "dice": (2, 6), "topo": (3, 7), "cldice": (4, 0), "focal": (5, 1), "bce": (6, 2),
    "contrastive": (0, 2), "triplet": (1, 3), "softmax": (2, 4), "triplet_offline": (3, 5),
}
_RESERVED = frozenset((PALETTE[c], p) for c, p in SLOTS.values())
N_SHADES = 40  # shades of one palette colour that variants use (see _variant)

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


def _look(color: str, pattern: int, family: int, shade: bool) -> dict[str, Any]:
    """The style dict of colour ``color`` (PALETTE[family] or, with ``shade``, a shade of
    it) drawn with pattern ``pattern`` (0-7)."""
    name = COLOUR_NAMES[family] if not shade else f"shade of {COLOUR_NAMES[family]}"
    return {"color": color, "hatch": HATCHES[pattern], "linestyle": LINESTYLES[pattern], "marker": MARKERS[pattern],
            "pattern": pattern, "color_name": name}


def _candidates(spec: str) -> Iterator[tuple[str, int, int, bool]]:
    """Every look ``spec`` may take, best first, as (colour, pattern, family, is a shade):
    its preferred colour (a bare name: the palette colour it hashes onto; a variant: a shade
    of its first term's colour) with each pattern from its preferred one, then the next
    colours (bare: the next palette colours; variant: the next shades), then every shade of
    every colour. Finite (16 x 41 x 8 looks), deterministic."""
    name = base_name(spec)
    h_name = _digest(name)
    family, pattern = SLOTS.get(name) or (h_name % len(PALETTE), (h_name >> 8) % len(HATCHES))
    n = len(HATCHES)
    if spec == name:  # bare unknown name (registered ones never get here)
        colours = [(PALETTE[(family + i) % len(PALETTE)], (family + i) % len(PALETTE), False)
                   for i in range(len(PALETTE))]
    else:  # a variant: never its family's own pattern, so it never passes for the plain loss
        h = _digest(spec)
        pattern = pattern + 1 + (h >> 8) % (n - 1)
        colours = [(_variant(PALETTE[family], (h + i) % N_SHADES), family, True) for i in range(N_SHADES)]
    rest = ((_variant(PALETTE[f], v), f, True) for f in range(len(PALETTE)) for v in range(N_SHADES))
    for colour, fam, shade in itertools.chain(colours, rest):
        for k in range(n):
            yield colour, (pattern + k) % n, fam, shade


class LossKey(dict):
    """spec -> look (:func:`loss_style`'s dict) of every loss of a report or comparison,
    no two alike. A spec it does not hold gets its context-free :func:`loss_style` (never
    used for the key's own specs, so a stray spec cannot recolour them)."""

    def __missing__(self, spec: str) -> dict[str, Any]:
        stripped = spec.strip()
        return dict(self[stripped]) if stripped != spec and stripped in self else loss_style(spec)


def loss_key(specs: Iterable[str]) -> LossKey:
    """The look of each spec of ``specs`` (any order, repeats allowed): registered names
    their fixed :data:`SLOTS` look; every other spec, in sorted order, its first candidate
    look not reserved by a registered name nor taken by an earlier spec. The same set gives
    the same key; no two specs share colour and pattern (nor hatch, line style, marker)."""
    key = LossKey()
    taken = set(_RESERVED)
    for spec in sorted({s.strip() for s in specs}):
        if spec in SLOTS:
            family, pattern = SLOTS[spec]
            key[spec] = _look(PALETTE[family], pattern, family, False)
            continue
        look = next((c for c in _candidates(spec) if (c[0], c[1]) not in taken), None)
        if look is None:
            raise ValueError(f"more losses than looks ({len(PALETTE) * (N_SHADES + 1) * len(HATCHES)})")
        taken.add((look[0], look[1]))
        key[spec] = _look(*look)
    return key


def loss_style(spec: str) -> dict[str, Any]:
    """The look of one loss spec on its own: ``color`` (hex), ``hatch``, ``linestyle``,
    ``marker`` (and ``pattern``, ``color_name``): its look in any key without a colliding
    unregistered spec (see the module docstring). Plots of a comparison use
    :func:`result_key`; references use :func:`reference_style`."""
    return dict(loss_key([spec])[spec.strip()])


def loss_color(spec: str) -> str:
    """Hex colour of a loss spec (see :func:`loss_style`)."""
    return loss_style(spec)["color"]


@reads_result
def result_key(result: ComparisonResult) -> LossKey:
    """The key a comparison's plots use: the report-wide one ``cvloss report`` gave it
    (the ``loss_key`` of :class:`cvloss.report.markdown.ReportedComparison`), else the
    key of the comparison's own losses."""
    key = getattr(result, "loss_key", None)
    return key if isinstance(key, LossKey) else loss_key(result.losses)


def report_key(results: Iterable[ComparisonResult]) -> LossKey:
    """The key of a whole report: every loss of every comparison (the union)."""
    return loss_key(spec for r in results for spec in ComparisonResult.of(r).losses)


def reference_style(k: int = 0) -> dict[str, Any]:
    """Reference rows (bicubic, untrained network): grey, dashed/dotted by index."""
    return {"color": REFERENCE_COLOR, "linestyle": ["--", ":", "-."][k % 3], "marker": "", "hatch": ""}


def metric_unit(task: str, metric: str) -> str:
    """Unit or range of ``task``'s metric (``dB``, ``mean IoU, 0-1``) as its spec declares
    it (:meth:`cvloss.tasks.spec.TaskSpec.unit`); ``""`` when it declares none or the task
    is not installed here (a report of a plugin's results without the plugin)."""
    try:
        spec = get_task_class(task).spec
    except UsageError:
        return ""
    return spec.unit(metric)


def metric_label(task: str, metric: str, direction: bool | None = None) -> str:
    """Axis label: ``miou (mean IoU, 0-1) ↑``."""
    unit = metric_unit(task, metric)
    text = f"{metric} ({unit})" if unit else metric
    if direction is not None:
        text += " ↑" if direction else " ↓"
    return text

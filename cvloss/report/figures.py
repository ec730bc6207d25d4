"""Writing a figure: PNG (the report embeds it) plus PDF and SVG beside it, deterministically.

No creation date and a fixed SVG hash salt, so regenerating a report changes no file whose
data did not change. Below every module that draws (standard plots, task views' plots).
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cvloss.errors import UsageError  # noqa: E402
from cvloss.io import atomic_path  # noqa: E402

DPI = 110
FONT = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
        "legend.fontsize": 7, "hatch.linewidth": 0.8, "svg.hashsalt": "cvloss",
        # text is text: never LaTeX (whatever the user's matplotlibrc says), mathtext only
        # where a label of ours asks for it -- values from data pass through mpl_text
        "text.usetex": False}
# Metadata that would differ between two runs on the same data (dates) is left out.
_METADATA = {".png": {"Software": None}, ".pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
             ".svg": {"Date": None}}
VECTOR_FORMATS = (".pdf", ".svg")
# Which formats beside the PNG (which the report embeds): "png,pdf,svg" by default; a
# sweep of hundreds of comparisons (or a test suite) may keep "png" only.
FORMATS_ENV = "CVLOSS_PLOT_FORMATS"


def vector_formats() -> tuple[str, ...]:
    """The vector formats ``$CVLOSS_PLOT_FORMATS`` asks for (default both); an unknown
    format is refused in one line."""
    raw = os.environ.get(FORMATS_ENV, "").strip()
    if not raw:
        return VECTOR_FORMATS
    asked = {"." + f.strip().lower().lstrip(".") for f in raw.split(",") if f.strip()}
    unknown = asked - {".png", *VECTOR_FORMATS}
    if unknown or ".png" not in asked:
        raise UsageError(f"${FORMATS_ENV}={raw!r}: give png plus any of pdf, svg (comma-separated)")
    return tuple(ext for ext in VECTOR_FORMATS if ext in asked)


def save_figure(fig, path: Path, close: bool = True) -> None:
    """Write ``fig`` as ``path`` (PNG) and as the same name in PDF and SVG beside it
    (:func:`vector_formats`), each atomically under a unique temporary name (concurrent
    writers never collide), with no date in the files (see the module docstring)."""
    path = Path(path)
    try:
        with plt.rc_context({"svg.hashsalt": "cvloss"}):
            # The tight box once (it costs a full draw), shared by every format.
            box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
            for target in (path, *(path.with_suffix(ext) for ext in vector_formats())):
                with atomic_path(target) as tmp:
                    fig.savefig(tmp, dpi=DPI, bbox_inches=box, format=target.suffix[1:],
                                metadata=_METADATA.get(target.suffix))
    finally:
        if close:
            plt.close(fig)

"""The sample grid of one trial (``samples.png``): columns are the rows' keys (input,
truth, pred, ...), rows the K sample images."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cvloss.io import atomic_path  # noqa: E402
from cvloss.report.text import mpl_text  # noqa: E402


def save_grid(rows: dict[str, np.ndarray], path: Path, titles: dict[str, str] | None = None, note: str = "") -> None:
    """Save a grid whose columns are ``rows``' keys (titled by ``titles``) and rows the K
    sample images; ``note`` (what the cells show, when not plain images) goes under it."""
    cols = list(rows)
    k = len(next(iter(rows.values())))
    fig, axes = plt.subplots(k, len(cols), figsize=(1.6 * len(cols), 1.6 * k), squeeze=False)
    for j, col in enumerate(cols):
        for i in range(k):
            ax = axes[i][j]
            ax.imshow(rows[col][i], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(mpl_text((titles or {}).get(col, col)), fontsize=8)  # a loss spec may hold a $
    if note:
        import textwrap

        lines = textwrap.wrap(note, max(40, 20 * len(cols)))
        fig.text(0.5, 0.005, mpl_text("\n".join(lines)), ha="center", va="bottom", fontsize=6)
        fig.tight_layout(rect=(0, 0.12 * len(lines) / fig.get_figheight(), 1, 1))
    else:
        fig.tight_layout()
    with atomic_path(path) as tmp:  # a unique temporary name: concurrent writers never collide
        fig.savefig(tmp, dpi=100)
    plt.close(fig)

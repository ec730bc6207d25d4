"""``cvloss report``: gather every comparison under a results folder into REPORT.md."""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from cvloss.report.tables import comparison_markdown
from cvloss.run.io import read_json, write_text


def find_comparisons(root: Path) -> list[Path]:
    """Every ``compare.json`` below ``root``, in a stable order."""
    return sorted(Path(root).rglob("compare.json"))


def write_report(root: Path) -> Path:
    """Write ``<root>/REPORT.md`` (tables, plot links, how each was produced)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder at {root}; run `cvloss compare ...` first")
    found = find_comparisons(root)
    if not found:
        raise FileNotFoundError(f"no comparisons under {root}; run `cvloss compare ...` first")
    parts = ["# cvloss report\n", f"{len(found)} comparison(s) under `{root}`.\n", "## Contents\n"]
    results = [read_json(p) | {"_path": p} for p in found]
    for r in results:
        anchor = f"{r['task']}-{r['dataset']}-{r['budget']}".lower().replace("+", "").replace("=", "").replace(".", "")
        parts.append(f"- [{r['task']} · {r['dataset']} · {r['budget']}: {', '.join(r['losses'])}](#{anchor})")
    parts.append("")
    for r in results:
        parts.append(comparison_markdown(r, heading_level=2))
        rel = os.path.relpath(r["_path"].parent, root)
        for key, title in (("bars", "metrics"), ("curves", "learning curves"), ("samples", "samples")):
            if key in r.get("plots", {}):
                parts.append(f"![{title}]({rel}/{r['plots'][key]})\n")
        parts.append(f"Reproduce: `cvloss compare --task {r['task']} --dataset {r['dataset']} "
                     f"--losses {shlex.quote(','.join(r['losses']))} --seeds {','.join(map(str, r['seeds']))} "
                     f"--budget {r['budget'].split('+')[0]}"
                     + "".join(f" --set {kv}" for kv in r["budget"].split("+")[1:]) + "`\n")
    path = root / "REPORT.md"
    write_text(path, "\n".join(parts))
    return path

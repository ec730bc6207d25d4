"""The hypothesis table of results/README.md, from the reference study's committed trials.

    python scripts/study_readme_table.py                 # prints the table
    python scripts/study_readme_table.py --write         # replaces it in results/README.md

The same records as ``cvloss study report results/study.toml`` (its study.md holds the full
table): :func:`cvloss.study.hypotheses.evaluate_all` over the locked plan, one Holm family,
completed trials; an intent-to-treat column where a trial of a hypothesis's two losses
failed. The README's copy sits between :data:`BEGIN` and :data:`END`; a test holds it equal
to what this prints. Run it from the repository root (the plan names folders as given).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEGIN = "<!-- hypothesis table: python scripts/study_readme_table.py --write -->"
END = "<!-- end of hypothesis table -->"


def table(evaluated: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown rows, one per hypothesis in file order: its name and source, the claim,
    Δ (A − B) ± its 95% CI, Holm p with the family's m, MDE, headroom, paired seeds and
    the verdict (completed trials), plus the ITT verdict where any trial failed; a
    hypothesis without paired values (not run yet, not measurable) has dashes."""
    from cvloss.report.text import markdown_table, md_code, md_escape
    from cvloss.study.hypotheses import verdict_words
    from cvloss.study.report import cells

    itt = {r["hypothesis"]: r for r in evaluated["itt"]}
    show_itt = any(r["failed"] for r in evaluated["itt"])
    rows = []
    for r in evaluated["completed"]:
        c = cells(r)
        if not r["n"]:  # no paired values: numbers that would only read n/a
            c.update(dict.fromkeys(("delta", "p_adj", "mde", "headroom", "n"), "—"))
        word = "better than" if r["claim"] == "better" else "differs from"
        row = {"hypothesis": md_code(r["hypothesis"]) + (" (post hoc)" if not r["registered"] else ""),
               "claim": f"{md_code(r['a'])} {word} {md_code(r['b'])} on {md_escape(c['metric'])}",
               "source": md_escape(r["why"] or ""), "Δ ± 95% CI": c["delta"],
               "p (Holm, m)": f"{c['p_adj']} ({c['m']})" if r["n"] else "—",
               "MDE": c["mde"], "headroom": c["headroom"], "n": c["n"], "verdict": f"**{md_escape(verdict_words(r))}**"}
        if show_itt:
            i = itt[r["hypothesis"]]
            row["intent to treat"] = (md_escape(verdict_words(i)) + f" (Δ {cells(i)['delta']})"
                                      if i["failed"] else "same (no trial failed)")
        rows.append(row)
    return markdown_table(rows)


def evaluate(study_file: str = "results/study.toml") -> dict[str, list[dict[str, Any]]]:
    from cvloss.study.check import check_study
    from cvloss.study.hypotheses import evaluate_all
    from cvloss.study.lock import check_unchanged, post_hoc, read_lock
    from cvloss.study.schema import read_study

    study = read_study(study_file)
    plan, lock = check_study(study), read_lock(study.path)
    check_unchanged(plan, lock)
    return evaluate_all(plan, post_hoc(plan, lock))


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between BEGIN and END replaced by ``block``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + block.rstrip("\n") + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", nargs="?", default="results/study.toml")
    ap.add_argument("--write", action="store_true", help="replace the table in the README beside the study file")
    args = ap.parse_args(argv)
    from cvloss.io import write_text

    block = table(evaluate(args.study))
    if args.write:
        readme = Path(args.study).parent / "README.md"
        write_text(readme, replace_block(readme.read_text(encoding="utf-8"), block))  # atomic
    else:
        print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

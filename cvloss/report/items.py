"""The "Image by image" section of a comparison: its ``item_analysis``
(written by :mod:`cvloss.run.item_analysis`) as Markdown lines -- one summary table of the
primary metric's contrasts, one verdict line per contrast that says whether the effect
holds on seeds, across images, both or neither, and the per-item differences.

``compare.json`` is untrusted: an ``item_analysis`` of another shape is one line saying it
is not shown, never an exception; every value from it is escaped (:mod:`cvloss.report.text`).
Plain data in, lines out: this module imports nothing of ``cvloss.run``.
"""
from __future__ import annotations

import math
from typing import Any

from cvloss.report.text import MARKDOWN, Form, fmt, markdown_table

#: The item-level verdicts and agreements the analysis writes (cvloss.run.item_analysis).
_HOLDS, _REVERSED, _TOO_FEW, _ALL_TIES, _NOT_MEASURABLE = ("holds", "reversed", "too few items", "all ties",
                                                          "not measurable")
_BOTH, _SEEDS_ONLY, _ITEMS_ONLY, _NEITHER, _OPPOSITE = ("seeds and items", "seeds only", "items only", "neither",
                                                        "opposite")
_COUNTS = ("n_items", "wins", "losses", "ties", "n_seeds", "family_m")
_NUMBERS = ("sign_p", "sign_p_adj", "wilcoxon_p", "wilcoxon_p_adj", "min_p", "level")


def _num(x: Any) -> bool:
    return x is None or isinstance(x, (int, float)) and not isinstance(x, bool)


def _count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**31


def _contrast_ok(c: Any) -> bool:
    if not isinstance(c, dict) or not all(isinstance(c.get(k), str) for k in ("loss", "metric", "verdict")):
        return False
    if not all(_count(c.get(k)) for k in _COUNTS) or not all(_num(c.get(k)) for k in _NUMBERS):
        return False
    seeds = c.get("seeds")
    if not isinstance(seeds, dict) or not all(_num(seeds.get(k)) for k in ("p_adj", "diff")):
        return False
    per_item = c.get("per_item")
    return isinstance(per_item, list) and all(
        isinstance(r, dict) and isinstance(r.get("item"), str) and _num(r.get("diff")) and _count(r.get("n_seeds"))
        for r in per_item)


def valid(ia: Any) -> bool:
    """Whether ``ia`` (a compare.json's ``item_analysis``) has the shape rendered here."""
    return (isinstance(ia, dict) and ia.get("schema") == 1 and isinstance(ia.get("unit"), str)
            and _count(ia.get("n_items")) and isinstance(ia.get("items"), list)
            and all(isinstance(i, str) for i in ia["items"]) and isinstance(ia.get("baseline"), str)
            and isinstance(ia.get("primary_metric"), str) and _num(ia.get("alpha"))
            and isinstance(ia.get("contrasts"), list) and all(_contrast_ok(c) for c in ia["contrasts"]))


def _p(x: Any) -> str:
    return fmt(x, 2) if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def _signed(x: Any) -> str:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "n/a"
    return ("+" if x > 0 else "") + fmt(x, 3)


def _units(ia: dict[str, Any], n: int) -> str:
    unit = ia["unit"]
    return f"{n} {unit}" + ("" if n == 1 else "s")


def item_verdict_line(c: dict[str, Any], ia: dict[str, Any], form: Form = MARKDOWN) -> str:
    """One contrast in words: "`l1` vs `perceptual`, psnr_y: holds on seeds (Δ +0.24,
    p_holm = 0.003) but not across test images: wins 3/6, sign p_holm = 1 (Wilcoxon
    0.56)". Said explicitly when its images cannot carry a test (fewer than six untied,
    or every one a tie)."""
    corr = {"holm": "p_holm", "bh": "p_bh"}.get(c.get("correction"), "p")
    seeds = c["seeds"]
    head = f"{form.code(c['loss'])} vs {form.code(ia['baseline'])}, {form.text(c['metric'])}: "
    on_seeds = f"(Δ {_signed(seeds.get('diff'))}, {corr} = {_p(seeds.get('p_adj'))})"
    plural = form.text(ia["unit"]) + "s"
    untied = c["wins"] + c["losses"]
    tally = (f"wins {c['wins']}/{c['n_items']}" + (f" ({c['ties']} tied)" if c["ties"] else "")
             + f", sign {corr} = {_p(c.get('sign_p_adj'))} (Wilcoxon {_p(c.get('wilcoxon_p_adj'))})")
    if c["verdict"] == _TOO_FEW:
        tally += (f"; {untied} untied {plural if untied != 1 else form.text(ia['unit'])} cannot reach "
                  f"α/m = {_p(c.get('level'))} (the smallest sign p is {_p(c.get('min_p'))})")
    elif c["verdict"] == _ALL_TIES:
        tally += f"; every {form.text(ia['unit'])} is a tie, no test"
    kind, untestable = c.get("agreement"), c["verdict"] in (_TOO_FEW, _ALL_TIES)
    if kind == _BOTH:
        return f"{head}holds on seeds {on_seeds} and across {plural}: {tally}."
    if kind == _SEEDS_ONLY:
        across = f"; across {plural} it cannot be checked" if untestable else f" but not across {plural}"
        return f"{head}holds on seeds {on_seeds}{across}: {tally}."
    if kind == _ITEMS_ONLY:
        return f"{head}does not hold on seeds {on_seeds} but holds across {plural}: {tally}."
    if kind == _NEITHER:
        if untestable:
            return f"{head}does not hold on seeds {on_seeds}; across {plural} it cannot be checked: {tally}."
        return f"{head}holds neither on seeds {on_seeds} nor across {plural}: {tally}."
    if kind == _OPPOSITE:
        return f"{head}holds on seeds {on_seeds} but the other way across {plural}: {tally}."
    return f"{head}not measurable {'image by image' if c['verdict'] == _NOT_MEASURABLE else 'on seeds'}: {tally}."


def _summary_rows(ia: dict[str, Any], found: list[dict[str, Any]], form: Form) -> list[dict[str, str]]:
    corr = "p_holm" if any(c.get("correction") == "holm" for c in found) else "p_bh"
    return [{"loss": form.code(c["loss"]),
             f"Δ on seeds ({corr})": f"{_signed(c['seeds'].get('diff'))} ({_p(c['seeds'].get('p_adj'))})",
             "wins / losses / ties": f"{c['wins']} / {c['losses']} / {c['ties']} of {c['n_items']}",
             f"sign {corr}": _p(c.get("sign_p_adj")), f"Wilcoxon {corr}": _p(c.get("wilcoxon_p_adj")),
             "across items": form.text(c["verdict"]), "seeds used": str(c["n_seeds"])} for c in found]


def _per_item_rows(ia: dict[str, Any], found: list[dict[str, Any]], form: Form) -> list[dict[str, str]]:
    """One row per item: each contrast's mean paired difference (and its seeds)."""
    cells = {c["loss"]: {r["item"]: r for r in c["per_item"]} for c in found}
    rows = []
    for item in ia["items"]:
        row = {form.text(ia["unit"]): form.text(item)}
        for c in found:
            r = cells[c["loss"]].get(item)
            row[f"{form.code(c['loss'])} − {form.code(ia['baseline'])}"] = (
                f"{_signed(r['diff'])} ({r['n_seeds']})" if r else "–")
        rows.append(row)
    return rows


def _primary_contrasts(ia: Any) -> list[dict[str, Any]]:
    """The contrasts of the primary metric of a valid ``item_analysis`` (none otherwise)."""
    if ia is None or not valid(ia):
        return []
    return [c for c in ia["contrasts"] if c["metric"] == ia["primary_metric"]]


def item_verdict_lines(ia: Any, form: Form = MARKDOWN) -> list[str]:
    """The primary metric's image-by-image verdict lines, one per contrast, for the
    console and HTML verdicts beside the seed-level ones (none without an analysis)."""
    return [item_verdict_line(c, ia, form) for c in _primary_contrasts(ia)]


def item_lines(ia: Any, heading_level: int = 2, form: Form = MARKDOWN) -> list[str]:
    """A comparison's ``item_analysis`` (``ia``, as compare.json holds it; None: the
    comparison has none) as Markdown parts for ``comparison_markdown`` (empty without
    one): a heading "Image by image (n test items)", what was done, the summary table and
    verdict lines of the primary metric, and the per-item table."""
    if ia is None:
        return []
    h = "#" * (heading_level + 1)
    if not valid(ia):
        return [f"\n{h} Image by image\n", "Not shown: this compare.json's item_analysis is not in the expected "
                "shape (rerun the comparison to write it again).\n"]
    primary = ia["primary_metric"]
    found = _primary_contrasts(ia)
    if not found:
        return []
    n = ia["n_items"]
    parts = [f"\n{h} Image by image ({_units(ia, n)})\n",
             f"Per {form.text(ia['unit'])}: the paired difference loss − {form.code(ia['baseline'])} in "
             f"{form.code(primary)}, averaged over the seeds that scored it (seeds pair across losses); a loss wins "
             f"a {form.text(ia['unit'])} when that average is better for it. Two-sided exact sign test over the "
             f"untied {form.text(ia['unit'])}s (it decides) and Wilcoxon signed-rank test, corrected over the "
             "contrasts as the seed-level table is; trials that finished without failing only. Fewer than 6 untied "
             f"{form.text(ia['unit'])}s cannot reach p < 0.05. Every metric is in compare.json (item_analysis).\n",
             markdown_table(_summary_rows(ia, found, form)),
             "\n".join(f"- {item_verdict_line(c, ia, form)}" for c in found) + "\n"]
    unread = ia.get("n_unreadable")
    if _count(unread) and unread:
        names = [form.text(x) for x in ia.get("unreadable") or [] if isinstance(x, str)]
        parts.append(f"- {unread} test_items.json file(s) could not be read and were left out"
                     + (": " + "; ".join(names) if names else "") + "\n")
    parts += [f"Per {form.text(ia['unit'])} (mean difference in {form.code(primary)}, seeds):\n",
              markdown_table(_per_item_rows(ia, found, form))]
    return parts

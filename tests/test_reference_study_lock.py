"""The reference study under results/, checked from its trial files: its lock precedes the
first test read of every trial it ran, and every trial it committed ran from the commit
the lock names, clean, from one source; its committed report is what `cvloss study report`
writes from them; every search candidate trained at 3 tuning seeds; no identical
replicates; every failed reporting trial counted in success and intent to treat."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from cvloss.study.check import check_study
from cvloss.study.lock import read_lock, trials_that_read_test
from cvloss.study.schema import read_study

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
STUDY_FILE = RESULTS / "study.toml"


def test_the_lock_precedes_every_test_read():
    lock = read_lock(STUDY_FILE)
    reads = trials_that_read_test(check_study(read_study(STUDY_FILE)).comparisons)
    if lock is None:  # not registered yet: then nothing of it may have read test
        assert reads == []
        return
    locked = datetime.fromisoformat(lock["locked_utc"])
    for name, folder, when in reads:
        assert when is not None, f"{folder}: read test at an unrecorded time"
        assert when > locked, f"{name}: {folder} read test at {when.isoformat()}, before the lock ({locked.isoformat()})"


def test_every_trial_ran_from_the_locked_commit_clean():
    lock = read_lock(STUDY_FILE)
    codes = {(c["commit"], c["dirty"], c["source_sha256"])
             for c in (json.loads(p.read_text())["code"] for p in RESULTS.rglob("trial.json"))}
    if lock is None:
        assert codes == set()
        return
    assert lock["dirty"] is False
    assert codes <= {(lock["commit"], False, lock["source_sha256"])}, codes


def test_the_committed_report_is_what_study_report_writes(monkeypatch):
    """``cvloss study report results/study.toml``, run from the repository root, rewrites
    results/study.{md,html,tex,csv} byte for byte from the committed trials: a comparison
    that landed without its report rerun, or a report edited by hand, fails here."""
    from cvloss.study.hypotheses import evaluate_all
    from cvloss.study.lock import check_unchanged, post_hoc
    from cvloss.study.report import render_study_report, report_paths

    if not (RESULTS / "study.md").is_file():
        pytest.skip("results/study.md is written once the study's first comparison has landed")
    monkeypatch.chdir(ROOT)  # the report names its folders as the command line gave them
    study = read_study("results/study.toml")
    plan, lock = check_study(study), read_lock(study.path)
    check_unchanged(plan, lock)
    texts = render_study_report(plan, lock, evaluate_all(plan, post_hoc(plan, lock)))
    for kind, path in report_paths(plan).items():
        assert path.read_text(encoding="utf-8") == texts[kind], f"{path} differs from what `cvloss study report` writes"


def test_the_readme_hypothesis_table_is_the_studys(monkeypatch):
    """results/README.md's hypothesis table is what scripts/study_readme_table.py prints from
    the committed trials (the verdicts a reader quotes cannot drift from the report's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_readme_table", ROOT / "scripts" / "study_readme_table.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    if script.BEGIN not in readme:
        pytest.skip("results/README.md has no hypothesis table yet")
    monkeypatch.chdir(ROOT)
    block = readme[readme.index(script.BEGIN) + len(script.BEGIN):readme.index(script.END)]
    assert block.strip("\n") == script.table(script.evaluate()).strip("\n")


def test_every_search_candidate_trained_at_three_tuning_seeds():
    """Each candidate folder of the study's searches (``tune--<h>/<loss>/t<i>``) holds a
    trial at each of the 3 tuning seeds the study file asks for (``tune_seeds = 3``): a
    candidate is never chosen on one seed's luck."""
    candidates = [p for p in RESULTS.glob("*/*/*/tune--*/*/t*") if p.is_dir()]
    if any(RESULTS.glob("*/*/*+tuned-*/compare--*/compare.json")):  # a tuned comparison landed: its search is here
        assert candidates, "no search candidate folder found under results/ (has the layout changed?)"
    for cand in candidates:
        seeds = sorted(p.parent.name for p in cand.glob("seed*/trial.json"))
        assert len(seeds) >= 3, f"{cand.relative_to(RESULTS)}: trained at {seeds or 'no seed'}"


def test_no_two_reporting_seeds_are_identical_replicates():
    """Each landed comparison checked its seeds for identical replicates (trials whose
    metrics repeat another seed's exactly) and found none: its n counts distinct runs."""
    landed = list(RESULTS.glob("*/*/*/compare--*/compare.json"))
    if (RESULTS / "study.md").is_file():
        assert landed, "the study's report exists but no comparison's compare.json was found"
    for path in landed:
        record = json.loads(path.read_text())
        assert record.get("identical_replicates") == {}, f"{path.relative_to(RESULTS)}: {record.get('identical_replicates')}"


def test_every_failed_reporting_trial_counts_in_success_and_intent_to_treat():
    """Each landed comparison's status, success column and intent-to-treat table agree with
    its trials' own summary.json: a degenerate, collapsed or diverged seed is never dropped
    from the study's counts (success = done seeds / seeds; an ITT table whenever one failed)."""
    from cvloss.io import loss_slug

    landed = list(RESULTS.glob("*/*/*/compare--*/compare.json"))
    if (RESULTS / "study.md").is_file():
        assert landed, "the study's report exists but no comparison's compare.json was found"
    failures = 0
    for path in landed:
        record = json.loads(path.read_text())
        budget_dir, failed_here = path.parents[1], 0
        for loss in record["losses"]:
            statuses = [json.loads((budget_dir / loss_slug(loss) / f"seed{s}" / "summary.json").read_text())["status"]
                        for s in record["seeds"]]
            failed = sum(status != "done" for status in statuses)
            assert record["status"][loss] == statuses, f"{path.parent.name}: {loss}"
            assert record["success"][loss] == pytest.approx((len(statuses) - failed) / len(statuses)), loss
            failed_here += failed
        if failed_here:
            assert record["itt"] is not None and "### Intent to treat" in (path.parent / "compare.md").read_text()
        failures += failed_here
    if any("+tuned-" in str(p) for p in landed):  # the study's own: ring8's hinge seed 0, sr's texture
        assert failures > 0, "no failed reporting trial found: has the status layout changed?"

"""The reference study under results/, checked from its trial files: its lock precedes the
first test read of every trial it ran, and every trial it committed ran from the commit
the lock names, clean, from one source."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from cvloss.study.check import check_study
from cvloss.study.lock import read_lock, trials_that_read_test
from cvloss.study.schema import read_study

RESULTS = Path(__file__).resolve().parents[1] / "results"
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

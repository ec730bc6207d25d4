"""The comparison's tally lines while several trials run at once: counts per batch of
trials (a tuned comparison's search, then its winners), failures, the ETA."""
import io
import re

from cvloss.run.progress import RUNG_STOP, ComparisonView


def _lines(stream):
    return [line for line in stream.getvalue().splitlines() if line.startswith("[trials]")]


def test_the_tally_counts_each_batch_of_trials_and_failures():
    out = io.StringIO()
    view = ComparisonView(out, keys=["miou"])
    view.begin(3, 2)
    for label in ("a/t0", "b/t0"):
        view.trial_start(label, epochs=1, batches=2, start_epoch=0)
    view.trial_end("a/t0", "done")
    view.trial_end("b/t0", "DIVERGED", "loss is nan")
    view.trial_end("c/t0", "already done, skipped")
    assert [re.sub(r"; ETA .*", "", t) for t in _lines(out)] == [
        "[trials] 1/3 done, 1 running, 0 failed", "[trials] 1/3 done, 0 running, 1 failed",
        "[trials] 2/3 done, 0 running, 1 failed"]
    assert "; ETA " in _lines(out)[0]  # one trial's time is known
    view.begin(2, 2)  # the winners: a new batch, never "4/2 done"
    view.trial_start("a/seed0", epochs=1, batches=2, start_epoch=0)
    view.trial_end("a/seed0", "done")
    assert _lines(out)[-1].startswith("[trials] 1/2 done, 0 running, 0 failed; ETA ")


def test_a_trial_stopped_at_its_rung_is_done_for_its_batch_and_no_longer_running():
    out = io.StringIO()
    view = ComparisonView(out)
    view.begin(2, 2)  # a halving search's first rung
    for label in ("a/t0", "a/t1"):
        view.trial_start(label, epochs=9, batches=2, start_epoch=0)
    for label in ("a/t0", "a/t1"):
        view.trial_end(label, RUNG_STOP, "epoch 1 of 9")
    view.begin(1, 2)  # the next rung: one promoted candidate resumes
    view.trial_start("a/t1", epochs=9, batches=2, start_epoch=1)
    assert view.running.keys() == {"a/t1"}
    view.trial_end("a/t1", "done")
    assert [re.sub(r"; ETA .*", "", t) for t in _lines(out)] == [
        "[trials] 1/2 done, 1 running, 0 failed", "[trials] 2/2 done, 0 running, 0 failed",
        "[trials] 1/1 done, 0 running, 0 failed"]

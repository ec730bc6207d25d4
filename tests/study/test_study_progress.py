"""The study's running count: each trial of the plan counts once, the first time it stops,
so a halving search that drops candidates at a rung still ends at ``total/total``."""
from cvloss.run.progress import RUNG_STOP, Reporter
from cvloss.study.run import StudyProgress


def test_a_trial_counts_once_whether_it_stops_at_a_rung_or_ends():
    said, counter = [], [0]
    progress = StudyProgress(Reporter(), "vessels", counter, 4, said.append)
    # a search of two candidates with halving (eta 2), then one winner, then a skipped one
    progress.trial_end("ce/t0/seed10000", RUNG_STOP, "epoch 1 of 4")  # dropped at the rung
    progress.trial_end("ce/t1/seed10000", RUNG_STOP, "epoch 1 of 4")
    progress.trial_end("ce/t1/seed10000", "done", "miou=0.5")  # promoted, trained to the end
    progress.trial_end("ce/seed0", "done", "miou=0.6")
    progress.trial_end("ce/seed1", "already done, skipped", "")
    assert said == ["[study 1/4] vessels: ce/t0/seed10000 stopped at its rung",
                    "[study 2/4] vessels: ce/t1/seed10000 stopped at its rung",
                    "[study 2/4] vessels: ce/t1/seed10000 done",
                    "[study 3/4] vessels: ce/seed0 done",
                    "[study 4/4] vessels: ce/seed1 already done, skipped"]
    assert counter == [4]

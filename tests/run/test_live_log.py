"""--log tensorboard: every epoch's metrics as TensorBoard scalars in <trial>/tensorboard/;
refused in one line when the value is unknown or the package is missing."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cvloss.cli import app
from cvloss.errors import UsageError
from cvloss.run.live_log import check_log

TINY = ["--set", "n_train=8", "--set", "n_val=4", "--set", "epochs=2", "--quiet", "--threads", "1"]


def test_unknown_log_kind_is_refused():
    with pytest.raises(UsageError, match="unknown --log 'neptune'; valid: none, tensorboard, mlflow, wandb"):
        check_log("neptune")
    result = CliRunner().invoke(app, ["train", "--task", "seg", "--loss", "ce", "--log", "neptune"])
    assert result.exit_code == 2 and result.stderr.startswith("error: unknown --log")


def test_tensorboard_events_hold_every_epoch(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install 'cvloss[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = CliRunner().invoke(app, ["train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path), "--log",
                                      "tensorboard", *TINY])
    assert result.exit_code == 0, result.output
    (logdir,) = tmp_path.rglob("tensorboard")
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert {"miou", "train_loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("miou")] == [1, 2]
    # a view of the run, not part of its identity: the same trial without --log is "already done"
    again = CliRunner().invoke(app, ["train", "--task", "seg", "--loss", "ce", "--out", str(tmp_path), *TINY])
    assert again.exit_code == 0 and len(list(tmp_path.rglob("summary.json"))) == 1

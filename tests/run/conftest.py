"""A reporter that records what a run says (messages, trial starts and ends) as lines."""
import pytest

from cvloss.run.progress import Reporter


class Capture(Reporter):
    def __init__(self):
        self.lines: list[str] = []

    def message(self, text):
        self.lines.append(text)

    def trial_start(self, label, epochs, batches, start_epoch):
        self.lines.append(f"START {label} at {start_epoch}")

    def trial_end(self, label, status, detail=""):
        self.lines.append(f"END {label} {status}")


@pytest.fixture
def capture():
    """A fresh :class:`Capture` reporter."""
    return Capture()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real one-node Slurm (munged, slurmctld, slurmd in a temporary folder;
    tests/fixtures/slurm_cluster.py), started once per session and each daemon stopped by
    its pid at the end; skipped, saying why, where Debian's slurm-wlm and munge or
    submitit are missing."""
    import importlib.util
    import shutil
    from pathlib import Path

    path = Path(__file__).parents[1] / "fixtures" / "slurm_cluster.py"
    spec = importlib.util.spec_from_file_location("cvloss_test_fixtures_slurm_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reason = module.missing()
    if reason is None and importlib.util.find_spec("submitit") is None:
        reason = "submitit is not installed (pip install 'cvloss[slurm]')"
    if reason is not None:
        pytest.skip(reason)
    cluster = module.LocalSlurm().start()
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)

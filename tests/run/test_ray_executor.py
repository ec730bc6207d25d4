"""The Ray executor: the serial metrics on a local Ray instance and on a two-node cluster
on this machine, workers killed mid-trial (retried from the checkpoint; twice: crashed,
the other trials go on), Ctrl-C on the driver (cancelled, resumable), the shared-folder
probe, and the lock takeover of a dead attempt on another host. One thread per trial on
both sides, so serial and Ray compute the same floats. The Ray tests skip without Ray;
the two-node one is marked slow. The file is marked ``ray``: the default run leaves it out and
`.ci/run` runs it alone (`pytest -m ray`, then `pytest -m slow tests/run/test_ray_executor.py`)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cvloss.errors import UsageError
from cvloss.run.budgets import resolve_overrides
from cvloss.run.config import TrialConfig
from cvloss.run.lock import LOCK_NAME, OWNER_ENV, TrialLock, take_over_owned
from cvloss.run.ray_executor import (PROBE_PREFIX, check_address, check_shared_folder, gpu_share, parse_device_list,
                                     probe_task)
from cvloss.run.trainer import CHECKPOINT, SUMMARY

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'cvloss[ray]')")
# The whole file runs in its own pytest process (`pytest -m ray`; see pyproject.toml).
pytestmark = pytest.mark.ray

ROOT = Path(__file__).parents[2]
TIMES = ("epoch_time_s", "train_time_s", "data_time_s")
# Six short epochs: long enough to kill or interrupt a trial after its first checkpoint.
SETS = {"n_train": "32", "n_val": "4", "image_size": "48", "epochs": "6"}
LOSSES = ("ce", "dice")


def _cfgs(out: Path) -> list[TrialConfig]:
    overrides = resolve_overrides("seg", dict(SETS))
    return [TrialConfig(task="seg", loss=loss, dataset="synth-pets", budget="smoke", seed=0, device="cpu",
                        out=str(out), feature_weights="auto", overrides=overrides, threads=1) for loss in LOSSES]


def _rows(trial_dir: Path) -> list[dict[str, str]]:
    with open(trial_dir / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The serial run of the comparison: summaries and trial folders by loss."""
    from cvloss.run.trainer import run_trials

    cfgs = _cfgs(tmp_path_factory.mktemp("serial"))
    return {c.loss: (s, c.trial_dir) for c, s in zip(cfgs, run_trials(cfgs))}


def _same_as_serial(serial, trial_dir: Path, summary: dict, loss: str) -> None:
    reference, reference_dir = serial[loss]
    # bit-identical, the status too (done, or degenerate should 6 tiny epochs stay at the majority class)
    assert summary["status"] == reference["status"] in ("done", "degenerate"), loss
    assert summary["metrics"] == reference["metrics"], loss
    assert _rows(trial_dir) == _rows(reference_dir), loss  # every epoch's metrics and train losses


# ---------------------------------------------------------------------- without Ray
def test_the_probe_refuses_a_folder_the_workers_do_not_see(tmp_path):
    out = tmp_path / "new" / "results"
    elsewhere = tmp_path / "node-b-disk"  # a same-named folder on another node's local disk
    elsewhere.mkdir()
    with pytest.raises(UsageError, match="must be a folder every Ray node sees.*does not hold the driver's probe"):
        check_shared_folder(out, lambda folder, token: probe_task(str(elsewhere), token))
    assert not (tmp_path / "new").exists() and list(elsewhere.iterdir()) == []  # nothing left behind


def test_the_probe_accepts_a_shared_folder_and_leaves_nothing(tmp_path):
    seen = []

    def probe(folder, token):
        seen.append(sorted(p.name for p in Path(folder).iterdir()))
        return probe_task(folder, token)

    info = check_shared_folder(tmp_path / "out", probe)
    assert seen == [[f"{PROBE_PREFIX}{seen[0][0][len(PROBE_PREFIX):]}"]]  # the driver's probe was there
    assert info["node"] == socket.gethostname() and info["cvloss"]
    assert not (tmp_path / "out").exists()


def test_options_of_the_ray_executor():
    assert check_address(None) is None and check_address("auto") == "auto"
    assert check_address("10.0.0.1:6379") == "10.0.0.1:6379"
    for bad in ("head", "head:", ":6379", "head:0", "head:70000", "head:port"):
        with pytest.raises(UsageError, match="expected auto or HOST:PORT"):
            check_address(bad)
    # --jobs 8 --devices 0,1: four trials per GPU, as the process pool would place them
    assert gpu_share(None, 4) == 0 and gpu_share([0, 1], 8) == 0.25 and gpu_share([0], 1) == gpu_share([0, 1], 1) == 1
    from cvloss.run.ray_executor import check_device

    check_device("auto", [0]), check_device("cpu", None)
    for device, devices in (("cuda", None), ("cuda:1", [0]), ("mps", None), ("cpu", [0])):
        with pytest.raises(UsageError, match="--device"):
            check_device(device, devices)
    assert parse_device_list("3,1") == [3, 1] and parse_device_list(None) is None
    for bad in ("0,0", "a", "0,", "-1"):
        with pytest.raises(UsageError, match="--devices"):
            parse_device_list(bad)


def test_a_retry_takes_over_the_lock_of_its_dead_attempt_on_another_host(tmp_path, monkeypatch):
    """The pid check cannot see a process on another node, and a fresh heartbeat looks
    live for $CVLOSS_LOCK_TIMEOUT: only the submission's own token frees it at once."""
    now = time.time()
    lock = {"pid": 4242, "host": "node-b", "token": "t", "started": now, "heartbeat": now, "owner": "submission-1"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(lock) + "\n")
    holder = TrialLock(tmp_path).acquire()
    assert holder["host"] == "node-b"  # live: another command would wait for it
    assert not take_over_owned(tmp_path, "submission-2")  # another submission's lock stays
    assert take_over_owned(tmp_path, "submission-1") and not (tmp_path / LOCK_NAME).exists()
    monkeypatch.setenv(OWNER_ENV, "submission-1")
    mine = TrialLock(tmp_path)
    assert mine.acquire() is None
    try:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["owner"] == "submission-1"
    finally:
        mine.release()


def test_plugins_are_loaded_in_each_task_as_on_the_driver(tmp_path, monkeypatch):
    import cvloss.losses as losses
    from cvloss.run.ray_executor import _load_plugins, plugin_paths

    loaded = []
    monkeypatch.setattr(losses, "load_plugins", loaded.append)
    _load_plugins([])
    _load_plugins(("my_losses", "lab.losses"))
    assert loaded == [["my_losses", "lab.losses"]]
    monkeypatch.chdir(tmp_path)  # a .py path travels absolute: a worker's cwd is not the driver's
    assert plugin_paths(["mypkg.losses", "plugins/mine.py"]) == ["mypkg.losses", str(tmp_path / "plugins" / "mine.py")]


# ---------------------------------------------------------------------- a local Ray instance
@pytest.fixture(scope="module")
def local_ray():
    if ray is None:
        pytest.skip("Ray is not installed (pip install 'cvloss[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    temp = tempfile.mkdtemp(prefix="cvray-")  # short: Ray's socket paths live under it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@needs_ray
def test_a_local_instance_gives_the_serial_metrics(local_ray, serial, tmp_path, capture):
    from cvloss.run.ray_executor import RayExecutor

    cfgs = _cfgs(tmp_path)
    summaries = RayExecutor(threads=1).run(cfgs, capture)
    for cfg, summary in zip(cfgs, summaries):
        _same_as_serial(serial, cfg.trial_dir, summary, cfg.loss)
    info = json.loads((cfgs[0].trial_dir / "trial.json").read_text())
    assert info["config"]["threads"] == 1 and "1 threads" in info["device"]
    assert any(line.startswith("ray: 1 node(s), 2 CPU(s), 0 GPU(s); up to 2 trial(s) at once") for line in capture.lines)
    assert f"START seg/synth-pets/ce/seed0 at 0" in capture.lines  # progress came back to the driver's reporter
    assert not list(tmp_path.rglob(f"{PROBE_PREFIX}*")) and not list(tmp_path.rglob(LOCK_NAME))


@needs_ray
def test_an_error_in_a_trial_is_raised_on_the_driver(local_ray, tmp_path, capture):
    from cvloss.run.ray_executor import RayExecutor
    from cvloss.run.trainer import TrialError

    cfg = _cfgs(tmp_path)[0]
    cfg.trial_dir.mkdir(parents=True)
    (cfg.trial_dir / "trial.json").write_text(json.dumps({"identity": {"other": "trial"}}))
    with pytest.raises(TrialError, match="holds an unfinished trial of another configuration"):
        RayExecutor(threads=1).run([cfg], capture)


def _lock(trial_dir: Path) -> dict | None:
    try:
        return json.loads((trial_dir / LOCK_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@needs_ray
def test_killed_workers_are_retried_from_the_checkpoint_and_a_second_death_is_a_crash(
        local_ray, serial, tmp_path, capture, monkeypatch):
    """SIGKILL the trial's pid (from its trial.lock) once it has a checkpoint: dice once
    (retried, resumes, the serial metrics), ce twice (crashed; dice goes on)."""
    from cvloss.run.ray_executor import RayExecutor

    monkeypatch.setenv("CVLOSS_LOCK_HEARTBEAT", "0.2")  # forwarded to the tasks
    cfgs = _cfgs(tmp_path)
    dirs = {c.loss: c.trial_dir for c in cfgs}
    deaths = {"ce": 2, "dice": 1}
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(out=RayExecutor(threads=1).run(cfgs, capture)))
    runner.start()
    killed: dict[str, list[int]] = {loss: [] for loss in LOSSES}
    beats: list[float] = []
    deadline = time.monotonic() + 120
    while runner.is_alive() and time.monotonic() < deadline:
        for loss, trial_dir in dirs.items():
            lock = _lock(trial_dir)
            if lock is None or len(killed[loss]) >= deaths[loss] or lock["pid"] in killed[loss]:
                continue
            if loss == "dice" and lock.get("heartbeat") and not beats:
                beats.append(lock["heartbeat"])
            if (trial_dir / CHECKPOINT).exists() and not (trial_dir / SUMMARY).exists():
                assert lock.get("owner")  # the submission's token, for a takeover across nodes
                if loss == "dice":
                    time.sleep(0.5)  # the worker's heartbeat thread beats every 0.2 s
                    beats.append(_lock(trial_dir)["heartbeat"])
                os.kill(lock["pid"], signal.SIGKILL)
                killed[loss].append(lock["pid"])
        time.sleep(0.02)
    runner.join(60)
    assert [len(killed[loss]) for loss in LOSSES] == [2, 1], killed
    ce, dice = result["out"]
    assert ce["status"] == "crashed" and not (dirs["ce"] / SUMMARY).exists()  # a rerun retries it
    assert (dirs["ce"] / CHECKPOINT).exists()  # resumable
    _same_as_serial(serial, dirs["dice"], dice, "dice")
    assert len(beats) == 2 and beats[1] > beats[0]  # the worker refreshes the heartbeat as the trainer does
    text = "\n".join(capture.lines)
    assert "seg/synth-pets/dice/seed0] its Ray worker" in text and "retrying the trial (attempt 2 of 2)" in text
    resumed = [line for line in capture.lines if line.startswith("START seg/synth-pets/dice/seed0 at ")]
    assert resumed[0].endswith(" at 0") and int(resumed[-1].rsplit(" ", 1)[1]) >= 1  # from its checkpoint
    assert "END seg/synth-pets/ce/seed0 CRASHED" in capture.lines


# ---------------------------------------------------------------------- a two-node cluster
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own session: the test ends exactly these processes."""
    head = ["--include-dashboard=false"] if "--head" in args else []
    return subprocess.Popen(["ray", "start", *args, *head, "--num-cpus=1", "--node-ip-address=127.0.0.1", "--block"],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait(what, nodes: list[subprocess.Popen], logs: list[Path], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        dead = [log for proc, log in zip(nodes, logs) if proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            pytest.fail(f"ray start failed: {(dead or logs)[0].read_text()[-2000:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    """End the node's process group (ray start, its raylet, GCS, workers) at once: no
    `ray stop`, which would end every Ray process of this user on the machine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    if ray is None:
        pytest.skip("Ray is not installed (pip install 'cvloss[ray]')")
    folder = tmp_path_factory.mktemp("ray-nodes")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path), "OMP_NUM_THREADS": "1",
           "RAY_AUTH_MODE": "disabled"}  # a loopback test cluster
    nodes, logs, temps = [], [folder / "head.log", folder / "worker.log"], []
    try:
        for name, args, log in (("head", ["--head", f"--port={port}"], logs[0]),
                                ("worker", [f"--address=127.0.0.1:{port}"], logs[1])):
            temp = tempfile.mkdtemp(prefix=f"cvray-{name}-")  # each node its own temp dir (short socket paths)
            temps.append(temp)
            nodes.append(_start_node([*args, f"--temp-dir={temp}"], {**env, "RAY_TMPDIR": temp}, log))
            if name == "head":  # the worker node may start once the head's GCS listens
                _wait(lambda: _listening(port), nodes, logs)
        _wait(lambda: all("block forever" in log.read_text() for log in logs), nodes, logs)
        yield f"127.0.0.1:{port}", env
    finally:
        for proc in reversed(nodes):
            _stop(proc)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


PLUGIN = '''
import os
from pathlib import Path

from cvloss.losses import Loss, register_loss

Path(__file__).with_name(f"imported-{os.getpid()}").touch()


@register_loss("ray_test_zero", family="pixel-wise", paper="a test plugin")
class Zero(Loss):
    """0 * mean(logits): a loss that only proves the plugin was imported."""

    kind = "seg"

    def forward(self, logits, target, weight=None):
        return 0 * logits.mean()
'''


@needs_ray
@pytest.mark.slow  # ~80 s (two nodes, two drivers): .ci/run runs it, the default suite leaves it out
def test_a_two_node_cluster_gives_the_serial_metrics_after_ctrl_c_and_rerun(two_nodes, serial, tmp_path):
    address, env = two_nodes
    out = tmp_path / "out"
    plugin = tmp_path / "plugin" / "ray_losses.py"  # each process that imports it leaves imported-<pid>
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN)
    cmd = [sys.executable, "-m", "cvloss.cli", "compare", "--task", "seg", "--losses", ",".join(LOSSES), "--seeds", "1",
           "--threads", "1", "--executor", "ray", "--address", address, "--out", str(out), "--plugin", str(plugin),
           *[a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]]
    dirs = {c.loss: c.trial_dir for c in _cfgs(out)}
    # SIGINT at its default in the driver: a suite started in the background (`cmd &`) runs
    # with SIGINT ignored, which the driver would inherit, and Ctrl-C could not be simulated
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (dirs["ce"] / CHECKPOINT).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # Ctrl-C on the driver
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: finished epochs are checkpointed" in err and "ray: 2 node(s), 2 CPU(s)" in err, err
    assert (dirs["ce"] / CHECKPOINT).exists() and not (dirs["ce"] / SUMMARY).exists()
    assert not list(out.rglob(LOCK_NAME)), "a cancelled trial released its lock"
    importers = {int(p.name.split("-")[1]) for p in plugin.parent.glob("imported-*")}
    assert proc.pid in importers and importers - {proc.pid}, importers  # the driver and the tasks' workers

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "seg/synth-pets/ce/seed0] 6 epochs x 4 batches (resuming at epoch" in again.stderr, again.stderr
    for loss, trial_dir in dirs.items():
        _same_as_serial(serial, trial_dir, json.loads((trial_dir / SUMMARY).read_text()), loss)

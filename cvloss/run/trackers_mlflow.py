"""The MLflow store of cvloss's tracker runs (:mod:`cvloss.run.trackers`).

Where: ``$MLFLOW_TRACKING_URI`` when set (any store MLflow knows: a server, a database),
else ``<out>/mlruns/``: a SQLite file ``mlflow.db`` and the runs' files in ``artifacts/``
(MLflow 3 refuses plain folder stores by default, and a database takes the runs of
several worker processes at once). Browse it with
``mlflow ui --backend-store-uri sqlite:///<out>/mlruns/mlflow.db``. MLflow's usage
telemetry is turned off (``MLFLOW_DISABLE_TELEMETRY``) unless the environment says
otherwise: nothing goes anywhere the user did not configure.

Only :class:`mlflow.tracking.MlflowClient` is used -- never the fluent ``mlflow.start_run``
with its process-wide active run -- so a trial's run never leaks into a user's own.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

from cvloss.run.trackers_base import Backend, RunNames

_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
_BATCH = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's log_batch limits


def mlflow_key(name: str) -> str:
    """A metric or param name MLflow takes: letters, digits, ``_ - . / space``; any other
    character (``@``, ``#`` of ``topo#2.mu``) becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", name)


def param_text(value: Any) -> str:
    """A param value as MLflow stores it (text): strings as they are, the rest as JSON
    (``true``, ``0.002``), so the value reads back the same way from any trial."""
    return value if isinstance(value, str) else json.dumps(value)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX); elsewhere none, the retry covers the race."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_logger() -> Iterator[None]:
    """MLflow logs at INFO when it creates a database ("Creating initial MLflow database
    tables..."): progress of ours goes to stderr, and that line is not a result."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class MlflowBackend(Backend):
    kind = "mlflow"

    def __init__(self, out: Path) -> None:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        self.folder: Path | None = None
        if not uri:
            self.folder = Path(os.path.abspath(Path(out) / "mlruns"))
            uri = "sqlite:///" + (self.folder / "mlflow.db").as_posix()
        self.store = uri
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self.run_id: str | None = None

    def client(self) -> Any:
        """The client of the store, made once. The default store's folder is created and
        its database initialised under a file lock: two worker processes that open a new
        store at once would otherwise both create its tables."""
        if self._client is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            with _quiet_logger():
                from mlflow.tracking import MlflowClient

                if self.folder is None:
                    self._client = MlflowClient(self.store)
                else:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    with _file_lock(self.folder / ".init.lock"):
                        self._client = MlflowClient(self.store)
        return self._client

    def experiment(self, name: str) -> str:
        """The id of experiment ``name``, created when missing (another process creating
        it at the same moment is no error: its id is read back)."""
        if name not in self._experiments:
            client = self.client()
            lock = _file_lock(self.folder / ".init.lock") if self.folder is not None else contextlib.nullcontext()
            with lock:
                found = client.get_experiment_by_name(name)
                if found is None:
                    where = (self.folder / "artifacts").as_uri() if self.folder is not None else None
                    try:
                        self._experiments[name] = client.create_experiment(name, artifact_location=where)
                    except Exception:
                        found = client.get_experiment_by_name(name)
                        if found is None:
                            raise
                if found is not None:
                    self._experiments[name] = found.experiment_id
        return self._experiments[name]

    def _active(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client().get_run(run_id)
        except MlflowException:
            return False
        return run.info.lifecycle_stage == "active"

    def start(self, names: RunNames, run_id: str | None, params: dict[str, Any], tags: dict[str, str]) -> str:
        from mlflow.entities import Param

        client = self.client()
        if run_id is not None and self._active(run_id):  # a resumed trial: the same run, RUNNING again
            client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return run_id
        run = client.create_run(self.experiment(names.experiment), run_name=names.run, tags=tags)
        self.run_id = run.info.run_id
        items = [Param(mlflow_key(k), param_text(v)) for k, v in params.items()]
        for chunk in _chunks(items, _BATCH["params"]):
            client.log_batch(self.run_id, params=chunk)
        return self.run_id

    def attach(self, names: RunNames, run_id: str, params: dict[str, Any], tags: dict[str, str]) -> bool:
        if not self._active(run_id):
            return False
        self.run_id = run_id
        return True

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(mlflow_key(k), v, now, step) for k, v in metrics.items()]
        for chunk in _chunks(items, _BATCH["metrics"]):
            self.client().log_batch(self.run_id, metrics=chunk)

    def final(self, step: int, metrics: dict[str, float]) -> None:
        self.log(step, metrics)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        for chunk in _chunks([RunTag(k, v) for k, v in tags.items()], _BATCH["tags"]):
            self.client().log_batch(self.run_id, tags=chunk)

    def files(self, files: list[tuple[Path, str]]) -> None:
        for path, folder in files:
            self.client().log_artifact(self.run_id, str(path), folder or None)

    def end(self, outcome: str | None) -> None:
        if outcome is not None and self.run_id is not None:
            self.client().set_terminated(self.run_id, _STATUS[outcome])

"""The Weights & Biases store of cvloss's tracker runs (:mod:`cvloss.run.trackers`).

W&B's own environment variables decide where, with two defaults of cvloss's: the mode is
``offline`` unless ``WANDB_MODE`` says otherwise (nothing is sent anywhere the user did
not configure), and runs go to ``<out>/wandb/`` unless ``WANDB_DIR`` is set; the project
is ``$WANDB_PROJECT``, else ``cvloss``. ``wandb sync`` uploads them later (a resumed
trial's offline folders replay as one run). Crash reports are off unless the environment
turns them on. A run has ``group`` = ``<task>/<dataset>/<budget>``, ``job_type`` = its
stage, typed params as its config, tags ``key=value`` (at most 64 characters), and
``reinit="create_new"`` so a run of the user's own is never touched. See docs/running.md.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import string
from pathlib import Path
from typing import Any

from cvloss.run.trackers_base import Backend, RunNames

_TAG_MAX = 64  # W&B refuses longer tags
_ID_CHARS = string.ascii_lowercase + string.digits


def wandb_tags(tags: dict[str, str]) -> list[str]:
    """W&B tags from cvloss's: ``key=value``; a comparison ``comparison=<slug>``; one over
    64 characters keeps its first 55 and 8 hex of its sha1 (still one per value)."""
    out = []
    for key, value in tags.items():
        text = f"comparison={value}" if key.startswith("comparison.") else f"{key}={value}"
        if len(text) > _TAG_MAX:
            text = text[:_TAG_MAX - 9] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
        out.append(text)
    return out


class WandbBackend(Backend):
    kind = "wandb"

    def __init__(self, out: Path) -> None:
        env = {k: os.environ.get(k, "").strip() for k in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY")}
        self.mode = env["WANDB_MODE"] or "offline"
        # passed to every init, never left to W&B: it reads its variables once per process
        self.dir = os.path.abspath(env["WANDB_DIR"] or out)
        self.project = env["WANDB_PROJECT"] or "cvloss"
        self.entity = env["WANDB_ENTITY"] or None
        entity = f"{self.entity}/" if self.entity else ""
        self.store = f"{os.path.join(self.dir, 'wandb')} ({self.mode}, project {entity}{self.project})"
        self.run: Any = None

    def new_id(self) -> str:
        """W&B lets the caller choose the id: chosen (and written to trackers.json) before
        the run starts, so a trial killed at any moment resumes this run, never a second."""
        return "".join(secrets.choice(_ID_CHARS) for _ in range(8))

    def _init(self, names: RunNames, run_id: str, **extra: Any) -> None:
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        import wandb

        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_machine_info=True,
                                  x_save_requirements=False, disable_git=True, save_code=False)
        self.run = wandb.init(id=run_id, resume="allow", mode=self.mode, dir=self.dir, project=self.project,
                              entity=self.entity, group=names.experiment, name=names.run, job_type=names.stage,
                              reinit="create_new", settings=settings, **extra)

    def start(self, names: RunNames, run_id: str | None, params: dict[str, Any], tags: dict[str, str]) -> str:
        run_id = run_id or self.new_id()
        self._init(names, run_id, config=params, tags=wandb_tags(tags))
        return run_id

    def attach(self, names: RunNames, run_id: str, params: dict[str, Any], tags: dict[str, str]) -> bool:
        """A finished run continued to add tags and files (offline: one more
        ``offline-run-*-<id>`` folder, which ``wandb sync`` appends to the run; it restates
        the config and the tags, so no segment holds less than the run)."""
        self._init(names, run_id, config=params, tags=wandb_tags(tags))
        return True

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def final(self, step: int, metrics: dict[str, float]) -> None:
        self.run.summary.update(metrics)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.run.tags = tuple(wandb_tags(tags))

    def files(self, files: list[tuple[Path, str]]) -> None:
        """Copied into the run's folder first: ``run.save`` of a file elsewhere links to it
        (and says so on stderr), and a results file may change after the run."""
        root = Path(self.run.dir)
        for path, folder in files:
            dest = root / folder / Path(path).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            self.run.save(str(dest), base_path=str(root), policy="now")

    def end(self, outcome: str | None) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish(exit_code=0 if outcome == "finished" else 1)

"""One selection's scores over the candidates of a search: what a search is scored by
(:class:`Scoring`), a selection's state (:class:`Selection`), the tuning seeds of a
candidate and the scores and ranking of a rung's members. Shared by the search driver
(:mod:`cvloss.run.tuning`) and the TPE search (:mod:`cvloss.run.tpe`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from cvloss.run.config import TrialConfig
from cvloss.run.tune import TUNE_SEED0, Space, centre_distance, project, ranking
from cvloss.run.tune_score import SeedResult, mean_se, status_text
from cvloss.tasks import get_task_class


@dataclass
class Scoring:
    """What a search is scored by: the task's primary metric and direction, its
    secondary metric (exact ties) and direction, the budget's epochs."""

    metric: str
    higher: bool
    secondary: str | None
    secondary_higher: bool
    epochs: int

    @property
    def metrics(self) -> list[str]:
        return [self.metric] + ([self.secondary] if self.secondary else [])


@dataclass
class Selection:
    """One selection over the candidates (module docstring): ``repeat`` (None: pooled),
    per loss the candidates still in (``alive``) and each rung's (candidates, scores)."""

    repeat: int | None
    alive: dict[str, list[int]]
    rungs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    winner: dict[str, int] = field(default_factory=dict)


def trial_seeds(space: Space, i: int, repeat: int | None) -> list[int]:
    """Tuning seeds of candidate ``i`` in a selection: repeat ``repeat``'s (None: all R*K);
    the legacy layout's one seed TUNE_SEED0 + i."""
    return [TUNE_SEED0 + i] if space.legacy() else space.seeds(repeat)


def scoring_of(base: TrialConfig) -> Scoring:
    """The task's metrics and the budget's epochs, as the search scores them."""
    spec = get_task_class(base.task).spec
    secondary = spec.secondary or None
    return Scoring(spec.primary, spec.direction(spec.primary), secondary,
                   spec.direction(secondary) if secondary else True, int(base.params["epochs"]))


def score_members(space: Space, spec: str, own: list[dict[str, Any]], members: list[int], repeat: int | None,
           read: Callable[[str, int, int], SeedResult], sc: Scoring) -> dict[str, Any]:
    """One selection's scores of ``members`` at one rung: mean, SE, secondary mean, per
    seed values and statuses (lists over ``members``), and their ranking, best first."""
    out: dict[str, list] = {"candidates": list(members), "scores": [], "se": [], "secondary": [], "seed_scores": [],
                            "status": []}
    for i in members:
        seeds = [read(spec, i, s) for s in trial_seeds(space, i, repeat)]
        mean, se = mean_se([r.values.get(sc.metric) for r in seeds])
        out["scores"].append(mean)
        out["se"].append(se)
        out["secondary"].append(mean_se([r.values.get(sc.secondary) for r in seeds])[0] if sc.secondary else None)
        out["seed_scores"].append([r.values.get(sc.metric) for r in seeds])
        out["status"].append(status_text([r.status for r in seeds]))
    order = ranking(out["scores"], sc.higher, out["secondary"], sc.secondary_higher,
                    [centre_distance(space, project(space, spec, own[i])) for i in members])
    out["ranking"] = [members[j] for j in order]
    return out

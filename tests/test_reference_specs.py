"""The reference study's plan (``results/study.toml``): every
comparison's specs build for its task and use every registered loss of the task at least
once as a term; its search tunes the learning rate a decade either side of the quick
budget's and each loss's own knobs around their defaults; every task has a comparison;
and ``cvloss study check`` accepts the file as written."""
from pathlib import Path

import pytest

from cvloss.losses.registry import list_losses
from cvloss.losses.spec import parse_spec
from cvloss.run.compare import canonical_specs
from cvloss.study.schema import read_study
from cvloss.task_registry import task_names
from cvloss.tasks import get_task_class

STUDY_FILE = Path(__file__).resolve().parents[1] / "results" / "study.toml"
STUDY = read_study(STUDY_FILE)
COMPARISONS = {c.name: c for c in STUDY.comparisons}


def test_every_task_has_a_reference_comparison_under_the_protocol():
    assert {c.task for c in STUDY.comparisons} == set(task_names())
    for c in STUDY.comparisons:  # quick budget, 10 seeds, the same 6 candidates per loss, 1 thread x 2 jobs
        assert (c.budget, c.seeds, c.jobs, c.threads) == ("quick", "10", 2, 1), c.name
        # a search of 6 candidates, or an arm that trains each objective with its paper's
        # own optimiser (no search, so none is tuned away from its paper)
        assert c.tune_trials == 6 if c.tune else dict(c.sets).get("optimizer") == "paper", c.name


@pytest.mark.parametrize("name", COMPARISONS)
def test_reference_specs_cover_every_loss_of_the_task(name):
    c = COMPARISONS[name]
    canonical_specs(list(c.losses), c.task)  # each builds and fits the task, none twice
    used = {t.name for s in c.losses for t in parse_spec(s)}
    # cvloss's own losses (a plugin a test registered is not part of the reference study)
    builtin = {info.name for info in list_losses(task=c.task) if info.cls.__module__.startswith("cvloss.")}
    missing = builtin - used
    assert not missing, f"{name}: no reference spec uses {sorted(missing)}"


@pytest.mark.parametrize("name", COMPARISONS)
def test_reference_space_is_the_lr_and_each_losss_own_knobs_around_its_default(name):
    """The study tunes every loss's learning rate over [lr/10, lr*10] of the quick budget
    (style: L-BFGS's default step 1) and, beside it, each loss's own knobs: every other
    dimension changes at least one reference spec, and its range holds the value the spec
    trains with untuned (an argument's default, a compound term's weight). The space is
    valid for the comparison's specs (every candidate builds), and the task names a
    secondary metric it reports (the tie-break)."""
    import math

    from cvloss.losses.registry import get_loss_info
    from cvloss.run.budgets import budget_params
    from cvloss.run.tune import check_space, own_dims, parse_space

    c = COMPARISONS[name]
    if not c.tune:
        pytest.skip(f"{name} has no search (each objective at its paper's optimiser)")
    cls = get_task_class(c.task)
    specs = list(c.losses)
    space = parse_space(list(c.tune), c.tune_trials)
    check_space(space, c.task, specs)
    lr_dim, *knobs = space.dims
    assert lr_dim.name == "lr" and lr_dim.kind == "log"
    lr = budget_params(c.task, "quick")["lr"] or 1.0  # style's None: L-BFGS's 1.0
    lo, hi = lr_dim.args
    assert math.isclose(lo * 10, lr) and math.isclose(hi / 10, lr)
    assert cls.spec.secondary in cls.spec.metrics and cls.spec.secondary != cls.spec.primary
    for dim in knobs:
        users = [s for s in specs if dim in own_dims(space, s)]
        assert users, f"{name}: {dim.name} changes no reference spec"
        term, arg = dim.name.split(".")
        if arg == "weight":
            untuned = {t.weight for s in users for t in parse_spec(s) if t.name == term}
        else:
            untuned = {t.args.get(arg, get_loss_info(term).param(arg).default) for s in users for t in parse_spec(s)
                       if t.name == term} - {None}
        assert all(dim.args[0] <= v <= dim.args[1] for v in untuned), f"{name}: {dim.text()} misses {untuned}"


def test_study_check_accepts_the_reference_study():
    """The whole file as ``cvloss study check`` reads it: datasets, spaces with the quick
    budget, the hypotheses' losses and metrics (one Holm family for the whole study)."""
    from cvloss.study.check import check_study, family_counts

    plan = check_study(STUDY)
    assert [c.name for c in plan.comparisons] == list(COMPARISONS)
    assert family_counts(plan) == {"study": len(STUDY.hypotheses)}
    # every comparison carries at least one declared hypothesis
    assert {h.entry.comparison for h in plan.hypotheses} == set(COMPARISONS)

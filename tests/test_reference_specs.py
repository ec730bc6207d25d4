"""Each task's reference specs (the reference study's list, issue 21) build for the task
and use every registered loss of the task at least once as a term."""
import pytest

from cvloss.losses.registry import list_losses
from cvloss.losses.spec import parse_spec
from cvloss.run.compare import canonical_specs
from cvloss.task_registry import TASKS
from cvloss.tasks import get_task_class


@pytest.mark.parametrize("task", TASKS)
def test_reference_specs_cover_every_loss_of_the_task(task):
    specs = get_task_class(task).reference_specs
    assert specs, f"task {task} declares no reference specs"
    canonical_specs(list(specs), task)  # each builds and fits the task, none twice
    used = {t.name for s in specs for t in parse_spec(s)}
    # cvloss's own losses (a plugin a test registered is not part of the reference study)
    builtin = {info.name for info in list_losses(task=task) if info.cls.__module__.startswith("cvloss.")}
    missing = builtin - used
    assert not missing, f"task {task}: no reference spec uses {sorted(missing)}"


@pytest.mark.parametrize("task", TASKS)
def test_reference_space_is_the_lr_one_decade_either_side_of_quick(task):
    """The study tunes every loss's learning rate over [lr/10, lr*10] of the quick budget
    (style: L-BFGS's default step 1), and the space is valid for the task's reference specs."""
    import math

    from cvloss.run.budgets import budget_params
    from cvloss.run.tune import check_space, parse_space

    cls = get_task_class(task)
    space = parse_space(list(cls.reference_space), 6)
    check_space(space, task, list(cls.reference_specs))
    (dim,) = space.dims
    assert dim.name == "lr" and dim.kind == "log"
    lr = budget_params(task, "quick")["lr"] or 1.0  # style's None: L-BFGS's 1.0
    lo, hi = dim.args
    assert math.isclose(lo * 10, lr) and math.isclose(hi / 10, lr)

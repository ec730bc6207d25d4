"""Style's seeds are distinct replicates: seed k takes the pairs at position k of one fixed
permutation of the pool, so two seeds never share a pair; a comparison with more test
seeds than distinct pairs (or named pairs repeated over seeds) is refused in one line
naming both numbers, before anything is written; tuning seeds wrap round the val pool."""
from __future__ import annotations

import pytest
import torch

from cvloss.data.style_pairs import pool_size, seed_pair_indices, seeds_beyond_pool
from cvloss.errors import UsageError
from cvloss.run.budgets import resolve_overrides
from cvloss.run.compare import run_comparison
from cvloss.run.config import TrialConfig
from cvloss.tasks.style import StyleTask

SMOKE = StyleTask.budgets["smoke"] | {"image_size": 32}


@pytest.fixture(scope="module")
def task():
    t = StyleTask("skimage-photos", dict(SMOKE), torch.device("cpu"), feature_weights="random")
    t.load_data()
    return t


def _pairs(task, seed):
    torch.manual_seed(seed)  # as the trainer seeds torch right before build_model
    task.build_model()
    return [(task.data.content_names[c], task.data.style_names[s]) for c, s in task.pairs]


def test_ten_seeds_take_the_ten_test_pairs_without_replacement(task):
    assert pool_size(None, "test") == len(task.data.pairs) == 10  # rocket, motorcycle x 5 styles
    drawn = [_pairs(task, seed) for seed in range(10)]
    assert all(len(d) == 1 for d in drawn)
    assert len({d[0] for d in drawn}) == 10  # every pair once: no two seeds share one
    assert _pairs(task, 3) == drawn[3]  # the same seed, the same pair (for every loss)
    with pytest.raises(UsageError, match=r"seed 10 would take pair 11 of a test pool of 10"):
        _pairs(task, 10)


def test_several_pairs_per_seed_stay_disjoint_and_tuning_seeds_wrap():
    triples = [set(seed_pair_indices(10, seed, 3, "test")) for seed in range(3)]
    assert all(len(t) == 3 for t in triples) and len(set().union(*triples)) == 9
    with pytest.raises(ValueError):
        seed_pair_indices(10, 3, 3, "test")  # pairs 10-12 of 10
    tuning = [seed_pair_indices(15, seed, 1, "val")[0] for seed in range(10000, 10015)]
    assert sorted(tuning) == list(range(15))  # the val pool, each pair once, modulo its size


def test_eleven_seeds_on_ten_pairs_are_refused_naming_both_numbers(tmp_path):
    with pytest.raises(UsageError) as info:
        StyleTask.check_seeds(SMOKE, list(range(11)), "skimage-photos")
    text = str(info.value)
    assert "11 seeds x 1 pair(s) need 11 distinct content/style pairs but the test pool has 10" in text
    assert "\n" not in text
    StyleTask.check_seeds(SMOKE, list(range(10)), "skimage-photos")  # 10 on 10: fine
    with pytest.raises(UsageError, match="seed 12 would take pairs past the test pool of 10"):
        StyleTask.check_seeds(SMOKE, [3, 12], "skimage-photos")
    assert seeds_beyond_pool(list(range(4)), 10, 3) is not None  # 4 x 3 = 12 > 10
    base = TrialConfig(task="style", loss="", dataset="skimage-photos", budget="smoke", device="cpu",
                       out=str(tmp_path / "out"), feature_weights="random",
                       overrides=resolve_overrides("style", {"image_size": "32"}))
    with pytest.raises(UsageError, match="need 11 distinct"):
        run_comparison(base, ["content+100*style", "content+100*style+0.01*tv"], list(range(11)))
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_named_pairs_over_several_seeds_are_identical_replicates_and_refused():
    named = SMOKE | {"pairs": "chelsea:waves"}
    with pytest.raises(UsageError, match="3 seeds of the same named pairs/files with init_noise=0 would be 3 "
                                         "identical replicates"):
        StyleTask.check_seeds(named, [0, 1, 2], "skimage-photos")
    StyleTask.check_seeds(named, [0], "skimage-photos")
    StyleTask.check_seeds(named | {"init_noise": 0.01}, [0, 1, 2], "skimage-photos")  # the noise varies

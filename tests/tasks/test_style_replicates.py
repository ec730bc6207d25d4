"""Style's seeds are distinct replicates: seed k takes the pairs at position k of one fixed
order of the pool (every content once before any twice), so two seeds never share a pair
and the first 10 seeds optimise the 10 test contents; a comparison with more test
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

SMOKE = StyleTask.spec.budgets["smoke"] | {"image_size": 32}


@pytest.fixture(scope="module")
def task():
    t = StyleTask("skimage-photos", dict(SMOKE), torch.device("cpu"), feature_weights="random")
    t.load_data()
    return t


def _pairs(task, seed):
    torch.manual_seed(seed)  # as the trainer seeds torch right before build_model
    task.build_model()
    return [(task.data.content_names[c], task.data.style_names[s]) for c, s in task.pairs]


def test_ten_seeds_take_ten_test_contents_without_replacement(task):
    # 10 test contents x 5 styles (it was rocket, motorcycle x 5 styles)
    assert pool_size(None, "test") == len(task.data.pairs) == 50
    drawn = [_pairs(task, seed) for seed in range(10)]
    assert all(len(d) == 1 for d in drawn)
    assert {d[0][0] for d in drawn} == set(task.data.content_names)  # 10 seeds: the 10 photos, once each
    assert _pairs(task, 3) == drawn[3]  # the same seed, the same pair (for every loss)
    assert len({d[0] for d in drawn + [_pairs(task, seed) for seed in range(10, 50)]}) == 50  # every pair once
    with pytest.raises(UsageError, match=r"seed 50 would take pair 51 of a test pool of 50"):
        _pairs(task, 50)


def test_several_pairs_per_seed_stay_disjoint_and_tuning_seeds_wrap():
    triples = [set(seed_pair_indices(10, seed, 3, "test")) for seed in range(3)]
    assert all(len(t) == 3 for t in triples) and len(set().union(*triples)) == 9
    with pytest.raises(ValueError):
        seed_pair_indices(10, 3, 3, "test")  # pairs 10-12 of 10
    tuning = [seed_pair_indices(15, seed, 1, "val")[0] for seed in range(10000, 10015)]
    assert sorted(tuning) == list(range(15))  # the val pool, each pair once, modulo its size


def test_more_seeds_than_pairs_are_refused_naming_both_numbers(tmp_path):
    with pytest.raises(UsageError) as info:
        StyleTask.spec.check_seeds(SMOKE, list(range(51)), "skimage-photos")
    text = str(info.value)
    assert "51 seeds x 1 pair(s) need 51 distinct content/style pairs but the test pool has 50" in text
    assert "\n" not in text
    StyleTask.spec.check_seeds(SMOKE, list(range(50)), "skimage-photos")  # 50 on 50: fine
    with pytest.raises(UsageError, match="seed 52 would take pairs past the test pool of 50"):
        StyleTask.spec.check_seeds(SMOKE, [3, 52], "skimage-photos")
    assert seeds_beyond_pool(list(range(4)), 10, 3) is not None  # 4 x 3 = 12 > 10
    base = TrialConfig(task="style", loss="", dataset="skimage-photos", budget="smoke", device="cpu",
                       out=str(tmp_path / "out"), feature_weights="random",
                       overrides=resolve_overrides("style", {"image_size": "32"}))
    with pytest.raises(UsageError, match="need 51 distinct"):
        run_comparison(base, ["content+100*style", "content+100*style+0.01*tv"], list(range(51)))
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_named_pairs_over_several_seeds_are_identical_replicates_and_refused():
    named = SMOKE | {"pairs": "chelsea:waves"}
    with pytest.raises(UsageError, match="3 seeds of the same named pairs/files with init_noise=0 would be 3 "
                                         "identical replicates"):
        StyleTask.spec.check_seeds(named, [0, 1, 2], "skimage-photos")
    StyleTask.spec.check_seeds(named, [0], "skimage-photos")
    StyleTask.spec.check_seeds(named | {"init_noise": 0.01}, [0, 1, 2], "skimage-photos")  # the noise varies

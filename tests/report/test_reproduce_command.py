"""The report's reproduce command of a tuned comparison names the search (same folder
hash), never the tuned tag as a setting."""
import shlex

from cvloss.report.markdown import reproduce_command
from cvloss.run.tune import parse_space


def test_a_tuned_comparison_is_reproduced_with_its_search():
    space = parse_space(["lr=log(1e-4,1e-2)"], 6, seed=3)
    result = {"task": "embed", "dataset": "synth-ids", "losses": ["softmax", "contrastive"], "seeds": [0, 1],
              "budget": f"quick+epochs=4+tuned-{space.key()}",
              "tuning": {"space": [d.text() for d in space.dims], "trials": 6, "sampler": "random", "sampler_seed": 3}}
    argv = shlex.split(reproduce_command(result, {"overrides": {}}))
    assert "tuned-" not in " ".join(argv)
    assert argv[argv.index("--set") + 1] == "epochs=4" and argv.count("--set") == 1
    tune = [argv[i + 1] for i, a in enumerate(argv) if a == "--tune"]
    again = parse_space(tune, int(argv[argv.index("--tune-trials") + 1]), argv[argv.index("--tune-sampler") + 1],
                        int(argv[argv.index("--tune-seed") + 1]))
    assert again.key() == space.key()  # the same folders: rerunning resumes, retrains nothing
    plain = reproduce_command({**result, "budget": "quick", "tuning": None}, {"overrides": {"lr": 0.01}})
    assert "--tune" not in plain and "--set lr=0.01" in plain

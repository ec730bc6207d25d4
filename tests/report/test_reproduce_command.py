"""The report's reproduce command of a tuned comparison names the search (same folder
hash), never the tuned tag as a setting."""
import shlex
from dataclasses import replace

from cvloss.report.markdown import reproduce_command
from cvloss.run.tune import LEGACY_PROTOCOL, Halving, TuneProtocol, parse_space


def test_a_tuned_comparison_is_reproduced_with_its_search():
    space = parse_space(["lr=log(1e-4,1e-2)"], 6, "random", 3, LEGACY_PROTOCOL)  # a record of the first protocol
    result = {"task": "embed", "dataset": "synth-ids", "losses": ["softmax", "contrastive"], "seeds": [0, 1],
              "budget": f"quick+epochs=4+tuned-{space.key()}",
              "tuning": {"space": [d.text() for d in space.dims], "trials": 6, "sampler": "random", "sampler_seed": 3}}
    argv = shlex.split(reproduce_command(result, {"overrides": {}}))
    assert "tuned-" not in " ".join(argv)
    assert argv[argv.index("--set") + 1] == "epochs=4" and argv.count("--set") == 1
    tune = [argv[i + 1] for i, a in enumerate(argv) if a == "--tune"]
    again = parse_space(tune, int(argv[argv.index("--tune-trials") + 1]), argv[argv.index("--tune-sampler") + 1],
                        int(argv[argv.index("--tune-seed") + 1]),
                        TuneProtocol(seeds=int(argv[argv.index("--tune-seeds") + 1])))
    assert again.key() == space.key() and again.tuned_key() == space.tuned_key()  # the same folders: retrains nothing
    # a search of several seeds, repeats and halving names them all
    full = parse_space(["lr=log(1e-4,1e-2)"], 6, protocol=TuneProtocol(seeds=3, repeats=2, halving=Halving(3, 2)))
    tuned = {**result, "tuning": {**result["tuning"], "sampler": "lhs", "tune_seeds": 3, "repeats": 2,
                                  "halving": {"eta": 3, "min_epochs": 2}}}
    argv = shlex.split(reproduce_command(tuned, {"overrides": {}}))
    opt = lambda name: int(argv[argv.index(name) + 1])  # noqa: E731
    again = parse_space(["lr=log(1e-4,1e-2)"], 6, "lhs", 3, TuneProtocol(
        seeds=opt("--tune-seeds"), repeats=opt("--tune-repeats"),
        halving=Halving(opt("--tune-halving"), opt("--tune-min-epochs"))))
    assert again.tuned_key() == replace(full, seed=3).tuned_key()
    plain = reproduce_command({**result, "budget": "quick", "tuning": None}, {"overrides": {"lr": 0.01}})
    assert "--tune" not in plain and "--set lr=0.01" in plain

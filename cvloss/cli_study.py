"""``cvloss study``: a study file's commands (parse, call :mod:`cvloss.study`, print).

Examples::

    cvloss study check study.toml      # validate everything, print the plan; trains nothing
    cvloss study lock study.toml       # study.toml.lock: hashes of every comparison and hypothesis
    cvloss study run study.toml --jobs 2 --threads 1
    cvloss study report study.toml     # study.md / .html / .tex / .csv: hypotheses, then comparisons

Trials go under the study file's folder unless ``--out``. Errors are one line and exit 2
(the main app's error handling: this sub-app is added to it by :mod:`cvloss.cli`).
"""
from __future__ import annotations

import sys
from typing import Optional

import typer

_CONTEXT = {"help_option_names": ["-h", "--help"]}
study_app = typer.Typer(help="Studies as files: check, lock, run and report a study.toml (README: Studies).",
                        no_args_is_help=True, context_settings=_CONTEXT)

_FILE_HELP = "The study file (study.toml; README: Studies)."
_OUT_HELP = "Results root of the study's trials and reports (default: the study file's folder)."
_DATA_DIR_HELP = "Datasets folder (default $CVLOSS_DATA, then the user cache)."
_PLUGIN_HELP = "Import a module that registers losses before the study is read (repeatable; as cvloss compare --plugin)."


def _plan(file: str, out: Optional[str], data_dir: Optional[str], plugins: Optional[list[str]] = None):
    """The study read, checked and planned, and its lock (None without one)."""
    from cvloss.losses import load_plugins
    from cvloss.study.check import check_study
    from cvloss.study.lock import read_lock
    from cvloss.study.schema import read_study

    load_plugins(plugins or [])
    study = read_study(file)
    return check_study(study, out, data_dir), read_lock(study.path)


def _echo_err(line: str) -> None:
    typer.echo(line, err=True)


@study_app.command("check")
def check(
    file: str = typer.Argument(..., help=_FILE_HELP),
    out: Optional[str] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
) -> None:
    """Validate every comparison and hypothesis (tasks, losses, datasets present, spaces,
    metrics) and print the plan: trials, search trials and estimated CPU hours. Trains
    and writes nothing."""
    from cvloss.report.console import print_table
    from cvloss.study.check import family_counts, plan_rows
    from cvloss.study.costs import COSTS
    from cvloss.study.lock import changes, post_hoc

    plan, lock = _plan(file, out, data_dir, plugin)
    print_table(plan_rows(plan), title=f"study {plan.study.path.name}: the plan (trials under {plan.out})")
    typer.echo(f"CPU hours: an estimate at one thread per trial from {COSTS.name} (seconds per trial-epoch measured "
               f"on a 2-core CPU); n/a where it has no figure (full: a GPU budget)")
    families = family_counts(plan)
    typer.echo(f"hypotheses: {len(plan.hypotheses)}" + (" in " + ", ".join(f"{f} (m = {n})" for f, n in families.items())
                                                       if families else ""))
    if lock is None:
        typer.echo("lock: none (cvloss study lock FILE registers the study before any trial reads test)")
        return
    changed = changes(lock, plan)
    later = [n for n, why in post_hoc(plan, lock).items()]
    typer.echo(f"lock: {lock['locked_utc']}" + (f"; CHANGED since: {'; '.join(changed)}" if changed else "; unchanged")
               + (f"; post hoc: {', '.join(later)}" if later else ""))


@study_app.command("lock")
def lock(
    file: str = typer.Argument(..., help=_FILE_HELP),
    out: Optional[str] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
) -> None:
    """Write FILE.lock: the sha256 of every comparison and hypothesis (canonical form),
    the time, the commit and the source hash. Refused once any trial of the study has
    read test."""
    from cvloss.study.lock import write_lock

    plan, _ = _plan(file, out, data_dir, plugin)
    path, changed = write_lock(plan)
    for line in changed:
        _echo_err(f"note: relocked: {line}")
    typer.echo(f"locked: {path} ({len(plan.comparisons)} comparison(s), {len(plan.hypotheses)} hypothesis(es))")


@study_app.command("run")
def run(
    file: str = typer.Argument(..., help=_FILE_HELP),
    out: Optional[str] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    executor: str = typer.Option("local", "--executor", help="local | ray | slurm | a registered executor."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Trials at once (default: each comparison's "
                                                                  "jobs hint, else 1)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per trial (default: each "
                                                                  "comparison's threads hint)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    devices: Optional[str] = typer.Option(None, "--devices", help="CUDA device indices for the workers, e.g. 0,1."),
    address: Optional[str] = typer.Option(None, "--address", help="With --executor ray: auto or HOST:PORT."),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition"),
    slurm_time: Optional[str] = typer.Option(None, "--slurm-time", help="Overrides each comparison's slurm.time."),
    slurm_account: Optional[str] = typer.Option(None, "--slurm-account"),
    slurm_qos: Optional[str] = typer.Option(None, "--slurm-qos"),
    slurm_gpus_per_trial: Optional[int] = typer.Option(None, "--slurm-gpus-per-trial",
                                                       help="Overrides each comparison's slurm.gpus."),
    slurm_array_parallelism: Optional[int] = typer.Option(None, "--slurm-array-parallelism"),
    slurm_max_requeues: Optional[int] = typer.Option(None, "--slurm-max-requeues"),
    slurm_extra: Optional[list[str]] = typer.Option(None, "--slurm-extra"),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Run only this comparison (repeatable)."),
    unlocked: bool = typer.Option(False, "--unlocked", help="Run an unlocked study: every hypothesis is then post "
                                                            "hoc, and the study can no longer be locked."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Pool finished trials of other code (as compare)."),
    retrain_stale: bool = typer.Option(False, "--retrain-stale", help="Move trials of other code aside and retrain."),
    break_stale_locks: bool = typer.Option(False, "--break-stale-locks", help="Take over every trial lock met."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Run every comparison of the study through the library, resumably (a rerun skips
    finished trials), on any executor; a comparison's hints apply where an option is not
    given. Refused when the study differs from its lock, or is unlocked without
    --unlocked."""
    from cvloss.study.run import StudyRunOptions, run_study

    plan, lock_ = _plan(file, out, data_dir, plugin)
    opts = StudyRunOptions(executor=executor, jobs=jobs, threads=threads, device=device, devices=devices,
                           address=address, slurm_partition=slurm_partition, slurm_time=slurm_time,
                           slurm_account=slurm_account, slurm_qos=slurm_qos, slurm_gpus_per_trial=slurm_gpus_per_trial,
                           slurm_array_parallelism=slurm_array_parallelism, slurm_max_requeues=slurm_max_requeues,
                           slurm_extra=list(slurm_extra or []), plugins=list(plugin or []),
                           break_stale_locks=break_stale_locks, allow_mixed=allow_mixed, retrain_stale=retrain_stale,
                           unlocked=unlocked, quiet=quiet, only=list(only) if only else None)
    try:
        results = run_study(plan, lock_, opts, say=None if not quiet else (lambda line: None))
    except KeyboardInterrupt:
        typer.echo("interrupted: finished trials are kept and checkpointed; run the same command again to resume",
                   err=True)
        raise typer.Exit(130)
    for name, result in results.items():
        folder = getattr(result, "dir", None) or (result.get("dir") if isinstance(result, dict) else None)
        typer.echo(f"{name}: {folder}")
    typer.echo(f"report: cvloss study report {plan.study.path}" + (f" --out {out}" if out else ""))


@study_app.command("report")
def report(
    file: str = typer.Argument(..., help=_FILE_HELP),
    out: Optional[str] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    replot: bool = typer.Option(False, "--replot/--no-replot", help="Redraw each comparison's standard plots."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
) -> None:
    """Write the study's report (Markdown, HTML, LaTeX, CSV): the hypotheses -- registered
    before the lock, then post hoc -- each with Δ, its CI, the family-corrected p, the
    MDE and the verdict; then each comparison's report. Refused when the study differs
    from its lock."""
    from cvloss.report.console import print_table
    from cvloss.study.hypotheses import evaluate_all, verdict_words
    from cvloss.study.lock import check_unchanged, post_hoc
    from cvloss.study.report import cells, write_study_report

    plan, lock_ = _plan(file, out, data_dir, plugin)
    check_unchanged(plan, lock_)
    evaluated = evaluate_all(plan, post_hoc(plan, lock_))
    paths = write_study_report(plan, lock_, evaluated, replot=replot)
    rows = [{"hypothesis": r["hypothesis"], "registered": "yes" if r["registered"] else "post hoc",
             "contrast": f"{r['a']} {'>' if r['claim'] == 'better' else '≠'} {r['b']} on {r['metric']}",
             "Δ ± CI": cells(r)["delta"], "p (Holm)": cells(r)["p_adj"], "MDE": cells(r)["mde"],
             "verdict": verdict_words(r)} for r in evaluated["completed"]]
    if rows:
        print_table(rows, title="hypotheses (completed trials)", fit=True, all_columns_in=str(paths["csv"]))
    for path in paths.values():
        typer.echo(f"report: {path}")
    sys.stdout.flush()

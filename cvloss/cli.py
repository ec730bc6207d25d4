"""cvloss command line: a thin Typer layer over :mod:`cvloss.api` (parse, call, print).

Examples::

    cvloss losses list --task seg
    cvloss compare --task seg --losses ce,topo --budget smoke
    cvloss train --task seg --loss "ce+0.1*topo(mu=0.5)" --seed 1
    cvloss report                 # gathers ./cvloss-results (or $CVLOSS_RESULTS)
    cvloss datasets adopt oxford-pets /datasets/oxford-iiit-pet

Streams: stdout carries only tables and paths; progress and warnings go to stderr
(``--quiet`` silences them). Errors: bad input is one line on stderr, exit code 2,
nothing written; a failure that is not the user's is a bug, one line, exit code 1
(``--debug`` shows the traceback).
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from typing import Optional

import typer
import typer.core

# The commands import what they use inside their functions: `cvloss --help`, `losses list`
# and `datasets list` then start without torch, torchvision or matplotlib.
from cvloss import __version__, api  # cvloss.api imports the library's heavy parts inside its functions
from cvloss.errors import CvlossError
from cvloss.task_registry import TASK_HELP

_BUG = "internal error (a bug in cvloss, not in your input)"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _is_cli_usage_error(exc: BaseException) -> bool:
    """Click's (or Typer's vendored click's) usage errors: they carry an exit code and a
    message. Recognised by shape because Typer >= 0.29 has its own copy of click."""
    return hasattr(exc, "format_message") and hasattr(exc, "exit_code")


class _OneLineErrors(typer.core.TyperGroup):
    """Every error is one line: cvloss errors, a broken torch/torchvision install
    (:func:`cvloss.environment.environment_problem`: versions and the pip command that
    fixes them) and OS errors (a folder that cannot be written, a full disk) exit 2, usage
    errors of the command line exit 2, anything else is a bug: exit 1 with a line that
    says so."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except CvlossError as exc:
            if _state["debug"]:
                raise
            typer.echo(f"error: {_one_line(exc)}", err=True)
            ctx.exit(2)
        except Exception as exc:
            if _state["debug"] or _is_cli_usage_error(exc):
                raise
            code, line = _error_line(exc)
            typer.echo(f"error: {line}", err=True)
            ctx.exit(code)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Click's usage errors print three lines (usage, hint, error); ours print one."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        except Exception as exc:
            if not _is_cli_usage_error(exc):
                raise
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `cvloss` or group: the help
                typer.echo(exc.format_message(), err=True)
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)  # UsageError, BadParameter, NoSuchOption ...
            hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
            typer.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _error_line(exc: Exception) -> tuple[int, str]:
    """(exit code, line) of an exception that is not a cvloss error. Asked first: is it
    the environment (torch and torchvision that do not load together, a compiled
    extension that is missing, CUDA without a driver)? Those are raised as RuntimeError,
    ImportError or OSError from deep inside torch, and are no bug of cvloss."""
    from cvloss.environment import environment_problem

    problem = environment_problem(exc)
    if problem is not None:
        return 2, _one_line(problem)
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return 2, f"cannot use{where}: {_one_line(exc.strerror or exc)}"
    return 1, (f"{_BUG}: {type(exc).__name__}: {_one_line(exc)}; rerun with --debug for the traceback and "
               f"report it")


_CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    cls=_OneLineErrors,
    help="cvloss: which loss should I use, and what does it buy me? Fair, reproducible comparisons of computer-vision losses.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=_CONTEXT,
)
losses_app = typer.Typer(help="List and describe the registered losses.", no_args_is_help=True, context_settings=_CONTEXT)
app.add_typer(losses_app, name="losses")
datasets_app = typer.Typer(help="List, download and verify datasets (the catalog that ships with cvloss).",
                           no_args_is_help=True, context_settings=_CONTEXT)
app.add_typer(datasets_app, name="datasets")
from cvloss.cli_study import study_app  # noqa: E402 -- cvloss study check/lock/run/report (README: Studies)
app.add_typer(study_app, name="study")

_state = {"debug": False}
_seen_warnings: set[str] = set()


def _show_warning_once(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``warning: ...`` line on stderr, each text once per command (the
    random-feature warning is raised by every loss that builds a network)."""
    text = _one_line(message)
    if text in _seen_warnings:
        return
    _seen_warnings.add(text)
    print(f"warning: {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _chatter(quiet: bool):
    """Around a run: warnings once each; with ``quiet`` neither warnings nor whatever the
    libraries write on stderr (download notices) -- errors are printed after, outside."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning_once
        warnings.simplefilter("ignore" if quiet else "always")
        if quiet:
            with contextlib.redirect_stderr(io.StringIO()):
                yield
        else:
            yield


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cvloss {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state["debug"] = debug


# ---------------------------------------------------------------- losses
_PLUGIN_HELP = ("Import a module that registers losses with @register_loss before the specs are read: a dotted "
                "name on sys.path (mypkg.losses) or a path to a .py file (repeatable). Installed packages with a "
                "'cvloss.losses' entry point load by themselves.")


def _plugins(plugins: Optional[list[str]], quiet: bool = False) -> None:
    """Load the entry-point plugins and the ``--plugin`` modules before any spec is read:
    a module that cannot be imported is one error line (exit 2) with nothing written; an
    installed plugin that cannot be used is one warning line and is skipped."""
    from cvloss.losses import load_plugins

    with _chatter(quiet):
        load_plugins(plugins or [])


@losses_app.command("list")
def losses_list(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Only losses that serve this task."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
) -> None:
    """Name, family, tasks served, paper and defaults of every registered loss (and the
    plugin of each plugin loss)."""
    _plugins(plugin)
    from cvloss.losses import list_losses
    from cvloss.report.console import print_table

    infos = list_losses(task)
    with_origin = any(i.plugin is not None for i in infos)  # the column only when a plugin adds losses
    rows = [
        {
            "name": i.name,
            "family": i.family,
            "tasks": ",".join(i.tasks),
            "paper": i.paper,
            "defaults": ", ".join(f"{p.name}={p.default}" for p in i.params),
            **({"from": i.origin} if with_origin else {}),
        }
        for i in infos
    ]
    print_table(rows, title=f"losses{' for ' + task if task else ''} ({len(rows)})")


@losses_app.command("show")
def losses_show(
    name: str = typer.Argument(..., help="A registered loss name, e.g. wgan_gp."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
) -> None:
    """Formula, constants, input shapes and arguments of one loss."""
    _plugins(plugin)
    from cvloss.losses import get_loss_info

    try:
        info = get_loss_info(name)
    except KeyError as exc:
        fail(exc.args[0])
    typer.echo(f"{info.name}  ({info.family}; {info.paper})")
    if info.plugin is not None:
        typer.echo(f"from: {info.origin}")
    typer.echo(f"tasks: {', '.join(info.tasks)}    input kind: {info.kind}")
    typer.echo("arguments: " + (", ".join(f"{p.name}: {p.type_name} = {p.default!r}" for p in info.params) or "none"))
    typer.echo("")
    typer.echo(info.doc)


# ---------------------------------------------------------------- datasets
_DATA_DIR_HELP = "Datasets folder (default $CVLOSS_DATA, then the user cache dir)."
_CATALOG_HELP = "A user catalog in datasets.toml's format, added to the built-in one (default $CVLOSS_CATALOG)."
_TRUST_HELP = ("Trust the user catalog as code: its loaders may be module:function, imported and run "
               "(README: Security). Without it a catalog names registered loaders only.")
_DATASET_HELP = ("Dataset name, or a folder of your own data (./path, /path, ~/path; README: 'Your own data'); "
                 "default: the task's embedded one.")


@datasets_app.command("list")
def datasets_list(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Only datasets of this task."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    catalog: Optional[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
    trust_catalog: bool = typer.Option(False, "--trust-catalog", help=_TRUST_HELP),
) -> None:
    """Name, task, size, and whether each dataset is present locally (and where: downloaded,
    or an adopted copy), and where its caches go (a folder cvloss cannot or must not write:
    under $CVLOSS_CACHE, else $XDG_CACHE_HOME/cvloss); then what each dataset's train, val
    and test splits hold."""
    api.use_catalog(catalog, trust_catalog)
    from cvloss.data.registry import (SPLITS, adopted_copy, copy_note, data_cache_dir, dataset_dir, datasets_for,
                                      load_catalog, presence_problem)
    from cvloss.report.console import print_table

    infos = datasets_for(task) if task else list(load_catalog().values())
    rows = []
    for info in infos:
        problem = presence_problem(info, data_dir)
        root = dataset_dir(info.name, data_dir)
        note = None if problem is None or info.embedded else copy_note(info, data_dir)
        if info.embedded:
            where = "embedded" + (f" (stands in for {info.real})" if info.real else "")
        elif problem is None:
            adopted = adopted_copy(info, data_dir)
            where = str(root) if adopted is None else f"adopted: {adopted}"
        elif note is not None:  # an extracted copy that adoption would make usable
            where = note
        else:  # a half-extracted folder is not "not downloaded": say it is incomplete
            where = f"incomplete: {root} (run cvloss datasets download {info.name})" if root.exists() else ("not downloaded" if info.files else f"not placed in {root}")
        size = "generated" if info.embedded else (f"{info.size_bytes / 2**20:,.0f} MiB" if info.size_bytes else "?")
        # where decoded splits and derived maps go (cvloss.data.cache.cache_dir decides, in one place)
        cache = str(data_cache_dir(info, data_dir)) if problem is None else "-"
        rows.append({"name": info.name, "tasks": ",".join(info.tasks), "size": size,
                     "present": "yes" if problem is None else "no", "where": where, "cache": cache})
    print_table(rows)
    typer.echo("")
    print_table([{"dataset": info.name, "split": split, "holds": info.splits[split]}
                 for info in infos for split in SPLITS], title="splits")


def _downloadable(name: str, verb: str):
    """The catalog entry of a real dataset, or ``None`` (after saying so) for an embedded one."""
    from cvloss.data.registry import get_dataset

    info = get_dataset(name)
    if info.embedded:
        typer.echo(f"{name} is embedded (generated on the fly): nothing to {verb}")
        return None
    return info


@datasets_app.command("download")
def datasets_download(
    name: str = typer.Argument(..., help="Dataset name, e.g. oxford-pets."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    catalog: Optional[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
    trust_catalog: bool = typer.Option(False, "--trust-catalog", help=_TRUST_HELP),
) -> None:
    """Download (resuming a partial file), verify the checksum and extract safely."""
    api.use_catalog(catalog, trust_catalog)
    import sys

    from cvloss.data.fetch import download

    info = _downloadable(name, "download")
    if info is None:
        return
    path = download(info, data_dir, progress=sys.stderr.isatty())
    typer.echo(f"{name}: ready in {path}")


@datasets_app.command("verify")
def datasets_verify(
    name: str = typer.Argument(..., help="Dataset name, e.g. oxford-pets."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    catalog: Optional[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
    trust_catalog: bool = typer.Option(False, "--trust-catalog", help=_TRUST_HELP),
) -> None:
    """Check every downloaded file of NAME against its published checksum (or, where none is
    published, the sha256 recorded at its first download: trusted-on-first-use), and that
    every archive was extracted completely."""
    api.use_catalog(catalog, trust_catalog)
    from cvloss.data.fetch import verify
    from cvloss.data.registry import presence_problem
    from cvloss.report.console import print_table

    info = _downloadable(name, "verify")
    if info is None:
        return
    checks = verify(info, data_dir)
    print_table([{"file": c.filename, "status": c.status, "detail": c.message} for c in checks])
    bad = [c for c in checks if c.status in ("missing", "mismatch")]
    if bad:
        fail(f"{name}: {len(bad)} file(s) missing or corrupt: {', '.join(c.filename for c in bad)}", code=1)
    problem = presence_problem(info, data_dir)
    if problem is not None:
        fail(problem, code=1)


@datasets_app.command("adopt")
def datasets_adopt(
    name: str = typer.Argument(..., help="Dataset name, e.g. oxford-pets."),
    path: str = typer.Argument(..., help="The extracted copy, or the folder holding it (e.g. torchvision's "
                                         "oxford-iiit-pet/ or lfw-py/)."),
    catalog: Optional[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
    trust_catalog: bool = typer.Option(False, "--trust-catalog", help=_TRUST_HELP),
) -> None:
    """Use a copy of NAME that is already extracted (shared read-only storage, torchvision's
    folder) in place: check the folders, lists, per-split counts and published checksums
    its loader needs, and record it in <cache>/adopted/NAME.json. PATH is never written;
    runs then read it from any --data-dir. Each problem found is one error line (exit 2)."""
    api.use_catalog(catalog, trust_catalog)
    from cvloss.data.adopt import AdoptionError, adopt_dataset
    from cvloss.data.registry import get_dataset

    info = get_dataset(name)
    try:
        done = adopt_dataset(info, path)
    except AdoptionError as exc:
        for line in exc.problems:
            typer.echo(f"error: {_one_line(line)}", err=True)
        raise typer.Exit(2)
    counts = ", ".join(f"{k} {v}" for k, v in done.counts.items()) or "layout only"
    checked = f"; {', '.join(f'{f} ({a})' for f, a in done.verified.items())} verified" if done.verified else ""
    typer.echo(f"{name}: adopted {done.root} ({counts}{checked}; {done.files} files fingerprinted)")
    typer.echo(f"record: {done.record}")


# ---------------------------------------------------------------- train / compare / report
_DEVICE_HELP = "auto (cuda > mps > cpu), cpu, cuda, cuda:N (one GPU of several) or mps."
_OUT_HELP = "Results root folder (default $CVLOSS_RESULTS, else ./cvloss-results)."
_SET_HELP = "Override a budget setting, e.g. --set epochs=5 (repeatable); becomes part of the results path."
_THREADS_HELP = ("CPU threads for torch (default: torch's choice). Use 1 per process when several runs share "
                 "a small CPU: oversubscribed threads spin and can be 10x slower. With --executor ray or slurm: "
                 "also the CPUs each trial reserves (default 1).")


_FID_HELP = "The FID Inception weights file (torch-fidelity's weights-inception-2015-12-05-6726825d.pth)."
_JOBS_HELP = ("Trials at once, each in its own worker process (default 1: one after another here). Threads per "
              "worker: --threads, else the CPUs shared out.")
_DEVICES_HELP = "CUDA device indices for the workers, round-robin (several workers per GPU allowed), e.g. 0,1."


_EXECUTOR_HELP = ("Where the trials run: local (this machine: --jobs worker processes), ray (Ray tasks: a local "
                  "instance, or the cluster of --address; cvloss[ray]), slurm (one Slurm job per trial, from a login "
                  "node; cvloss[slurm]), or an executor an installed package registers.")
_ADDRESS_HELP = "With --executor ray: auto (the cluster `ray start` made on this node) or HOST:PORT of a Ray head."
_SLURM_HELP = {
    "partition": "With --executor slurm: the partition of the trials' jobs (default: the cluster's).",
    "time": "With --executor slurm: each job's time limit, e.g. 4:00:00 or 1-00:00:00 (default 4:00:00); a trial "
            "still training then is requeued and resumes from its last epoch.",
    "account": "With --executor slurm: the account the jobs are charged to.",
    "qos": "With --executor slurm: the jobs' quality of service.",
    "gpus": "With --executor slurm: GPUs per trial (--gres=gpu:N; the trial trains on cuda). Default 0: the CPU.",
    "array": "With --executor slurm: submit the trials as one job array running at most N at once (default: "
             "one job per trial).",
    "requeues": "With --executor slurm: how often a preempted or timed-out trial is requeued (default 3).",
    "extra": "With --executor slurm: any other sbatch option, KEY=VALUE (or KEY for a flag), repeatable, e.g. "
             "--slurm-extra mem=8G --slurm-extra constraint=a100.",
}


_LOG_HELP = ("Live views while training, repeatable or comma-separated (--log tensorboard,mlflow): none; tensorboard "
             "(<trial>/tensorboard/; cvloss[tensorboard]); mlflow (one run per trial in $MLFLOW_TRACKING_URI, else "
             "<out>/mlruns; cvloss[mlflow]); wandb (one run per trial, offline unless $WANDB_MODE says otherwise, in "
             "$WANDB_DIR, else <out>/wandb; cvloss[wandb]).")
_MIXED_HELP = ("Pool finished trials made by other code (source hash, plugins used, torch version) with new "
               "ones; refused without it, and every table says MIXED with it.")
_RETRAIN_STALE_HELP = ("Move trial folders made by other code aside as <trial>.stale-<n> and retrain them "
                       "(without it, a comparison that would reuse them is refused before training).")
_REPORT_MIXED_HELP = "Accepted for old scripts; no longer needed: each comparison shows its own provenance."
_TUNE_SAMPLER_HELP = ("lhs (a centred Latin hypercube over the whole range) | grid | random (the first protocol's "
                      "independent draws; reproduces committed searches) | tpe (cvloss[tune]; no repeats or halving).")
_TUNE_SEEDS_HELP = ("Tuning seeds per candidate (with --tune; default 3): every candidate of every loss at the same "
                    "K seeds (10000+), scored by its mean val score ± SE.")
_TUNE_REPEATS_HELP = ("Run the whole search R times with fresh tuning seeds and report how often each candidate won; "
                      "the winner is chosen by the pooled R×K seeds (default 1).")
_TUNE_HALVING_HELP = ("Successive halving with factor ETA >= 2: every candidate for epochs/ETA^j epochs, the best "
                      "1/ETA continue, up to the full budget (default: off).")
_TUNE_HELP = ('A search dimension NAME=log(a,b)|uniform(a,b)|int(a,b)|choice(x,y,...), repeatable; NAME is a '
              'budget setting (lr, weight_decay) or a loss parameter <term>.<arg> / <term>.weight / <term>#2.<arg>.')


_STRICT_HELP = ("Exit 1 when any trial diverged, collapsed, ended degenerate or is missing (for CI); without it such "
                "a trial is a result.")
_KEEP_HELP = ("Keep each finished trial's resume checkpoints (checkpoint.pt, checkpoint.prev.pt); by default "
              "only its final weights, model.pt, stay.")
_WIDE_HELP = ("Print every column in one table, however wide (default: tables that fit the terminal, or "
              "120 characters in a pipe; columns that do not fit are left out with a note naming the file "
              "that has them all).")


def _failures(status: dict[str, list[str]], strict: bool) -> None:
    """A divergence, a collapse or a degenerate trial is a result (counted in the table), not
    a failure of the command: one line on stderr names them, and only ``--strict`` turns
    them into exit 1."""
    counts: dict[str, int] = {}
    for states in status.values():
        for state in states:
            if state != "done":
                counts[state] = counts.get(state, 0) + 1
    if not counts:
        return
    total = sum(len(states) for states in status.values())
    crashed = counts.get("crashed", 0)  # a dead worker is not a result: always exit 1
    typer.echo(f"failures: {', '.join(f'{n} {k}' for k, n in sorted(counts.items()))} of {total} trial(s)"
               + ("; --strict: exit 1" if strict else "; a crashed trial (its worker died twice): exit 1 (rerun to retry it)"
                  if crashed else " (counted in the table; --strict makes this exit 1)"), err=True)
    if strict or crashed:
        raise typer.Exit(1)


def _interrupted(where: str) -> None:
    typer.echo(f"interrupted: finished epochs are checkpointed under {where}; run the same command again to resume", err=True)
    raise typer.Exit(130)


@app.command()
def train(
    task: str = typer.Option(..., "--task", "-t", help=TASK_HELP),
    loss: str = typer.Option(..., "--loss", "-l", help='Loss spec, e.g. "ce+0.1*topo(mu=0.5)".'),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help=_DATASET_HELP),
    catalog: Optional[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
    trust_catalog: bool = typer.Option(False, "--trust-catalog", help=_TRUST_HELP),
    budget: str = typer.Option("smoke", "--budget", "-b", help="smoke | quick | full."),
    seed: int = typer.Option(0, "--seed", help="Seed of init, batch order and augmentation."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    sets: Optional[list[str]] = typer.Option(None, "--set", help=_SET_HELP),
    out: Optional[str] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Datasets folder (default $CVLOSS_DATA, then the user cache)."),
    feature_weights: str = typer.Option("auto", "--feature-weights", help="imagenet | random | auto | PATH to a VGG state_dict."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    threads: Optional[int] = typer.Option(None, "--threads", help=_THREADS_HELP),
    break_stale_locks: bool = typer.Option(
        False, "--break-stale-locks", help="Take over every trial lock met, even one that looks live."),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    fid_weights: Optional[str] = typer.Option(None, "--fid-weights", help=_FID_HELP),
    log: Optional[list[str]] = typer.Option(None, "--log", help=_LOG_HELP),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help=_KEEP_HELP),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
    wide: bool = typer.Option(False, "--wide", help=_WIDE_HELP),
) -> None:
    """Train one model under one loss and write its results folder."""
    options = api.RunOptions(device=device, out=out, threads=threads, log=log, break_stale_locks=break_stale_locks,
                             plugins=plugin, quiet=quiet)
    with _chatter(quiet):
        api.prepare(options)
    plan = api.plan_trial(task, loss, seed=seed, dataset=dataset, budget=budget, sets=sets, data_dir=data_dir,
                          feature_weights=feature_weights, catalog=catalog, trust_catalog=trust_catalog,
                          fid_weights=fid_weights, keep_checkpoints=keep_checkpoints, options=options)
    try:
        with _chatter(quiet):
            summary = api.train(plan)
    except KeyboardInterrupt:
        _interrupted(str(plan.trial_dir))
    from cvloss.report.console import print_table

    row = {"loss": plan.config.loss, "seed": seed, "status": summary["status"]}
    row.update({k: f"{v:.4g}" for k, v in summary.get("metrics", {}).items()})
    print_table([row], fit=True, wide=wide, all_columns_in=str(plan.trial_dir / "summary.json"))
    typer.echo(f"results: {plan.trial_dir}")
    _failures({plan.config.loss: [summary["status"]]}, strict)


@app.command()
def compare(
    task: str = typer.Option(..., "--task", "-t", help=TASK_HELP),
    losses: str = typer.Option(..., "--losses", "-l", help='Comma-separated specs; the first is the baseline, e.g. "ce,topo,ce+0.1*topo".'),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help=_DATASET_HELP),
    catalog: Optional[str] = typer.Option(None, "--catalog", help=_CATALOG_HELP),
    trust_catalog: bool = typer.Option(False, "--trust-catalog", help=_TRUST_HELP),
    budget: str = typer.Option("smoke", "--budget", "-b", help="smoke | quick | full."),
    seeds: str = typer.Option("3", "--seeds", help="A count (3 -> seeds 0,1,2) or a list (0,1,2)."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    sets: Optional[list[str]] = typer.Option(None, "--set", help=_SET_HELP),
    out: Optional[str] = typer.Option(None, "--out", "-o", help=_OUT_HELP),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Datasets folder (default $CVLOSS_DATA, then the user cache)."),
    feature_weights: str = typer.Option("auto", "--feature-weights", help="imagenet | random | auto | PATH to a VGG state_dict."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    threads: Optional[int] = typer.Option(None, "--threads", help=_THREADS_HELP),
    break_stale_locks: bool = typer.Option(
        False, "--break-stale-locks", help="Take over every trial lock met, even one that looks live."),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    fid_weights: Optional[str] = typer.Option(None, "--fid-weights", help=_FID_HELP),
    log: Optional[list[str]] = typer.Option(None, "--log", help=_LOG_HELP),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help=_KEEP_HELP),
    target_effect: Optional[float] = typer.Option(
        None, "--target-effect", help="A difference in the primary metric's units: also print the seeds "
                                      "needed to detect it (80% power, corrected level)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help=_JOBS_HELP),
    devices: Optional[str] = typer.Option(None, "--devices", help=_DEVICES_HELP),
    executor_name: str = typer.Option("local", "--executor", help=_EXECUTOR_HELP),
    address: Optional[str] = typer.Option(None, "--address", help=_ADDRESS_HELP),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help=_SLURM_HELP["partition"]),
    slurm_time: Optional[str] = typer.Option(None, "--slurm-time", help=_SLURM_HELP["time"]),
    slurm_account: Optional[str] = typer.Option(None, "--slurm-account", help=_SLURM_HELP["account"]),
    slurm_qos: Optional[str] = typer.Option(None, "--slurm-qos", help=_SLURM_HELP["qos"]),
    slurm_gpus_per_trial: Optional[int] = typer.Option(None, "--slurm-gpus-per-trial", help=_SLURM_HELP["gpus"]),
    slurm_array_parallelism: Optional[int] = typer.Option(None, "--slurm-array-parallelism",
                                                          help=_SLURM_HELP["array"]),
    slurm_max_requeues: Optional[int] = typer.Option(None, "--slurm-max-requeues", help=_SLURM_HELP["requeues"]),
    slurm_extra: Optional[list[str]] = typer.Option(None, "--slurm-extra", help=_SLURM_HELP["extra"]),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help=_MIXED_HELP),
    retrain_stale: bool = typer.Option(False, "--retrain-stale", help=_RETRAIN_STALE_HELP),
    tune: Optional[list[str]] = typer.Option(None, "--tune", help=_TUNE_HELP),
    tune_trials: Optional[int] = typer.Option(None, "--tune-trials", help="Candidates per loss (with --tune; default 8)."),
    tune_sampler: str = typer.Option("lhs", "--tune-sampler", help=_TUNE_SAMPLER_HELP),
    tune_seed: int = typer.Option(0, "--tune-seed", help="Seed of the sampler (the same candidates for every loss)."),
    tune_seeds: Optional[int] = typer.Option(None, "--tune-seeds", help=_TUNE_SEEDS_HELP),
    tune_repeats: Optional[int] = typer.Option(None, "--tune-repeats", help=_TUNE_REPEATS_HELP),
    tune_halving: Optional[int] = typer.Option(None, "--tune-halving", help=_TUNE_HALVING_HELP),
    tune_min_epochs: Optional[int] = typer.Option(None, "--tune-min-epochs",
                                                  help="Fewest epochs of the first rung (with --tune-halving; "
                                                       "default 1)."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
    wide: bool = typer.Option(False, "--wide", help=_WIDE_HELP),
) -> None:
    """Train every loss at every seed (same init and batches per seed) and compare them."""
    options = api.RunOptions(
        device=device, out=out, threads=threads, log=log, break_stale_locks=break_stale_locks, plugins=plugin,
        executor=executor_name, jobs=jobs, devices=devices, quiet=quiet,
        executor_options=dict(address=address, slurm_partition=slurm_partition, slurm_time=slurm_time,
                              slurm_account=slurm_account, slurm_qos=slurm_qos,
                              slurm_gpus_per_trial=slurm_gpus_per_trial,
                              slurm_array_parallelism=slurm_array_parallelism,
                              slurm_max_requeues=slurm_max_requeues, slurm_extra=slurm_extra))
    executor = api.executor_for(options)
    with _chatter(quiet):
        api.prepare(options)
    plan = api.plan_comparison(
        task, losses, dataset=dataset, budget=budget, seeds=seeds, sets=sets, data_dir=data_dir,
        feature_weights=feature_weights, catalog=catalog, trust_catalog=trust_catalog, fid_weights=fid_weights,
        keep_checkpoints=keep_checkpoints, target_effect=target_effect, allow_mixed=allow_mixed,
        retrain_stale=retrain_stale, options=options,
        tuning=api.Tuning(space=tune, trials=tune_trials, sampler=tune_sampler, seed=tune_seed, seeds=tune_seeds,
                          repeats=tune_repeats, halving=tune_halving, min_epochs=tune_min_epochs))
    try:
        with _chatter(quiet):
            result = api.run_plan(plan, executor)
    except KeyboardInterrupt:
        _interrupted(str(plan.group_dir))
    from cvloss.report.console import print_comparison

    features = f"; features: {', '.join(result.feature_weights)}" if result.feature_weights else ""
    print_comparison(result, f"{task} / {plan.dataset_label} / {result.budget}: mean ± 95% CI over seeds "
                             f"{list(plan.seeds)}{features}", wide=wide)
    typer.echo(f"results: {result.dir}")
    _failures(result.status, strict)


@app.command()
def export(
    tracker: str = typer.Argument(..., help="mlflow | wandb"),
    results_dir: Optional[str] = typer.Argument(None, help="Results root folder whose comparisons to push (default "
                                                           "$CVLOSS_RESULTS, else ./cvloss-results)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No warnings."),
) -> None:
    """Push finished comparisons into MLflow or W&B from their files: one run per trial
    (params, every epoch's metrics, final metrics, tags, samples), each comparison a tag on
    its runs with its plots. The store: $MLFLOW_TRACKING_URI / W&B's variables, else
    RESULTS_DIR/mlruns or RESULTS_DIR/wandb (offline). Runs already there are not pushed twice."""
    with _chatter(quiet):
        done = api.export_results(tracker, results_dir)
    typer.echo(f"exported {done['comparisons']} comparison(s) to {tracker} {done['store']}: {done['created']} run(s) "
               f"created, {done['updated']} updated, {done['unchanged']} already there")


@app.command()
def report(
    results_dir: Optional[str] = typer.Argument(None, help="Results root folder to gather (default $CVLOSS_RESULTS, "
                                                           "else ./cvloss-results)."),
    html: bool = typer.Option(True, "--html/--no-html", help="Also write the self-contained report.html."),
    replot: bool = typer.Option(True, "--replot/--no-replot",
                                help="Redraw each comparison's standard plots from its trials (one look per loss)."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help=_REPORT_MIXED_HELP),
) -> None:
    """Gather every comparison under RESULTS_DIR into RESULTS_DIR/REPORT.md and
    RESULTS_DIR/report.html (one self-contained file: tables, plots, provenance)."""
    paths = api.write_report(results_dir, html=html, replot=replot)
    if allow_mixed:
        typer.echo("note: --allow-mixed is no longer needed: the report shows each comparison's provenance", err=True)
    for path in paths.values():
        typer.echo(f"report: {path}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

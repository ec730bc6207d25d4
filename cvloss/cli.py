"""cvloss command line: a thin Typer layer over the library (parse, call, print).

Examples::

    cvloss losses list --task seg
    cvloss losses show wgan_gp
    cvloss compare --task seg --losses ce,topo --budget smoke
    cvloss train --task seg --loss "ce+0.1*topo(mu=0.5)" --seed 1
    cvloss report                 # gathers ./cvloss-results (or $CVLOSS_RESULTS)
    cvloss export mlflow          # its comparisons into MLflow (./cvloss-results/mlruns unless $MLFLOW_TRACKING_URI)
    cvloss datasets list
    cvloss datasets adopt oxford-pets /datasets/oxford-iiit-pet   # an extracted copy, read in place

Streams: stdout carries only tables and paths; progress, warnings (each once) and library
chatter go to stderr, and ``--quiet`` silences them. Errors: bad input (ours or a usage
error of the command line) is one line on stderr and exit code 2, with nothing written; a
failure that is not the user's is a bug and says so in one line (exit code 1;
``--debug`` shows the traceback).
"""
from __future__ import annotations

import contextlib
import io
import math
import sys
import warnings
from typing import Optional

import typer
import typer.core

# The commands import what they use inside their functions: `cvloss --help`, `losses list`
# and `datasets list` then start without torch, torchvision or matplotlib.
from cvloss import __version__
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


def _use_catalog(path: Optional[str], trust: bool = False) -> None:
    """``--catalog FILE``: checked now, and exported as ``$CVLOSS_CATALOG`` so that every
    part of the run (and any worker process it starts) reads the same catalog.
    ``--trust-catalog``: the sha256 of that catalog's bytes is exported as
    ``$CVLOSS_TRUSTED_CATALOG`` (those bytes, and no edit of them, may name
    ``module:function`` loaders); without the flag the variable is cleared, so only the
    flag trusts a catalog. A catalog that is refused leaves the environment as it was."""
    import os

    from cvloss.data.registry import CATALOG_ENV, TRUST_ENV, load_catalog, user_catalog_digest

    before = {key: os.environ.get(key) for key in (CATALOG_ENV, TRUST_ENV)}
    try:
        if path is not None:
            os.environ[CATALOG_ENV] = os.path.abspath(os.path.expanduser(path))
        os.environ.pop(TRUST_ENV, None)
        digest = user_catalog_digest() if trust else None
        if digest is not None:
            os.environ[TRUST_ENV] = digest
        load_catalog()  # a malformed, clashing or untrusted user catalog is one line now, before anything runs
    except Exception:
        for key, value in before.items():  # the environment as it was (tests run the CLI in-process)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        raise


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
    _use_catalog(catalog, trust_catalog)
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
    _use_catalog(catalog, trust_catalog)
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
    _use_catalog(catalog, trust_catalog)
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
    _use_catalog(catalog, trust_catalog)
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


def _set_threads(threads: Optional[int]) -> None:
    if threads is None:
        return
    if threads < 1:
        fail(f"--threads must be >= 1; got {threads}")
    import torch

    torch.set_num_threads(threads)


def _base_config(task: str, dataset: Optional[str], budget: str, device: str, out: str, data_dir: Optional[str],
                 feature_weights: str, sets: Optional[list[str]], catalog: Optional[str] = None,
                 trust_catalog: bool = False):
    """Every option checked (and values made canonical) before any data, network or
    folder is touched: a bad setting costs nothing and writes nothing."""
    from cvloss.losses.features import check_feature_weights
    from cvloss.run.budgets import budget_params, parse_overrides, resolve_overrides
    from cvloss.run.config import TrialConfig, resolve_results_dir
    from cvloss.run.trainer import resolve_device
    from cvloss.tasks import get_task_class

    get_task_class(task)  # an unknown task is refused first
    _use_catalog(catalog, trust_catalog)
    out = resolve_results_dir(out)
    overrides = resolve_overrides(task, parse_overrides(sets))  # canonical: lr=1 and lr=1.0 are one folder
    budget_params(task, budget, overrides)  # the budget name, and checks that tie settings together
    check_feature_weights(feature_weights)
    resolve_device(device)  # an unavailable device fails now, not after loading data
    from cvloss.data.registry import default_dataset, ensure_present, get_dataset

    info = get_dataset(default_dataset(task) if dataset is None else dataset, task=task)  # "" is refused
    # refuse before any training, naming what to fetch; an extracted copy in the data dir
    # that is not adopted (or changed since) is checked here, once, and used in place
    ensure_present(info, data_dir, say=lambda line: typer.echo(line, err=True))
    print_ = None
    if info.root is not None:  # a dataset folder: every file checked now, its fingerprint in the identity
        from cvloss.data.folders import index_folder

        print_ = index_folder(info.root, task).fingerprint
    cfg = TrialConfig(task=task, loss="", dataset=info.name, budget=budget, device=device, out=out,
                      data_dir=data_dir, feature_weights=feature_weights, overrides=overrides, data_fingerprint=print_)
    from cvloss.run.trainer import data_changed

    changed = data_changed(cfg)  # results of other data in the same folder: refused, not resumed or skipped
    if changed is not None:
        fail(changed)
    return cfg


def _require_feature_weights(task: str, specs: list[str], feature_weights: str) -> None:
    """``--feature-weights imagenet``: the ImageNet weights of every VGG the run builds --
    its loss terms' and its task's feature metrics' -- are in torch's cache (or downloaded
    now), before any trial folder exists; offline, one line naming what to fetch and where."""
    if feature_weights.lower() != "imagenet":  # auto falls back to random weights (warning) in the trial
        return
    from cvloss.losses.features import require_feature_weights
    from cvloss.losses.spec import default_feature_archs
    from cvloss.tasks import get_task_class

    archs = [arch for spec in specs for arch in default_feature_archs(spec, task)]
    metrics = getattr(get_task_class(task), "feature_metrics", None)  # sr, style: a VGG scores every loss
    if metrics is not None:
        archs += [net.arch for net, _ in metrics(feature_weights).values()]
    require_feature_weights(feature_weights, archs)


_FID_HELP = "The FID Inception weights file (torch-fidelity's weights-inception-2015-12-05-6726825d.pth)."


def _fid_weights(path: Optional[str]) -> Optional[str]:
    """``--fid-weights``: an existing file, as an absolute path; recorded, not in the folder name."""
    from pathlib import Path

    from cvloss.errors import UsageError

    if path is not None and not Path(path).expanduser().is_file():
        raise UsageError(f"--fid-weights {path}: no such file")
    return None if path is None else str(Path(path).expanduser().resolve())


def _reporter(quiet: bool, task: str, jobs: int = 1):
    from cvloss.run.progress import make_reporter
    from cvloss.tasks import get_task_class

    return make_reporter(quiet, keys=list(get_task_class(task).metrics), jobs=jobs)


def _progress(executor, quiet: bool, task: str):
    """The reporter of a comparison on ``executor``: its own choice of view."""
    from cvloss.tasks import get_task_class

    return executor.progress(quiet, keys=list(get_task_class(task).metrics))


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


def _executor(name: str, **options):
    """The executor ``--executor`` names, from the registry, with every executor option
    checked in one place (:func:`cvloss.run.executor.executor_from_options`) before
    anything is written or submitted."""
    from cvloss.run.executor import ExecutorOptions, executor_from_options

    options["plugins"] = list(options.get("plugins") or [])
    options["slurm_extra"] = list(options.get("slurm_extra") or [])
    return executor_from_options(name, ExecutorOptions(**options))


_LOG_HELP = ("Live views while training, repeatable or comma-separated (--log tensorboard,mlflow): none; tensorboard "
             "(<trial>/tensorboard/; cvloss[tensorboard]); mlflow (one run per trial in $MLFLOW_TRACKING_URI, else "
             "<out>/mlruns; cvloss[mlflow]); wandb (one run per trial, offline unless $WANDB_MODE says otherwise, in "
             "$WANDB_DIR, else <out>/wandb; cvloss[wandb]).")
_MIXED_HELP = ("Pool finished trials made by other code (source hash, plugins used, torch version) with new "
               "ones; refused without it, and every table says MIXED with it.")
_RETRAIN_STALE_HELP = ("Move trial folders made by other code aside as <trial>.stale-<n> and retrain them "
                       "(without it, a comparison that would reuse them is refused before training).")
_REPORT_MIXED_HELP = "Accepted for old scripts; no longer needed: each comparison shows its own provenance."
_TUNE_HELP = ('A search dimension NAME=log(a,b)|uniform(a,b)|int(a,b)|choice(x,y,...), repeatable; NAME is a '
              'budget setting (lr, weight_decay) or a loss parameter <term>.<arg> / <term>.weight / <term>#2.<arg>.')


def _tune_space(items, trials, sampler, seed, task, specs):
    """The search of ``--tune`` (None without it), checked whole before anything is written:
    its size, its names and weights, and every candidate applied to every spec
    (:func:`cvloss.run.tune.check_space`; the tuned comparison checks them once more
    against the budget and ``--set`` overrides before its first folder)."""
    if not items:
        if trials is not None:
            fail("--tune-trials needs --tune (the space to search), e.g. --tune 'lr=log(1e-4,1e-2)'")
        return None
    from cvloss.run.tune import check_space, parse_space

    space = parse_space(items, 8 if trials is None else trials, sampler, seed)
    check_space(space, task, specs)
    if space.sampler == "tpe":
        try:
            import optuna  # noqa: F401
        except ImportError:
            fail("--tune-sampler tpe needs Optuna: pip install 'cvloss[tune]' (or pip install optuna)")
    return space


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
    _set_threads(threads)
    _plugins(plugin, quiet)
    from dataclasses import replace

    from cvloss.run.compare import canonical_specs
    from cvloss.run.live_log import check_log
    from cvloss.run.trainer import run_trial

    if seed < 0:
        fail(f"--seed must be >= 0; got {seed}")
    base = _base_config(task, dataset, budget, device, out, data_dir, feature_weights, sets, catalog, trust_catalog)
    (spec,) = canonical_specs([loss], task)
    _require_feature_weights(task, [spec], feature_weights)
    cfg = replace(base, loss=spec, seed=seed, fid_weights=_fid_weights(fid_weights), log=check_log(log),
                  threads=threads, keep_checkpoints=keep_checkpoints)

    try:
        with _chatter(quiet):
            summary = run_trial(cfg, _reporter(quiet, task), break_stale_locks=break_stale_locks)
    except KeyboardInterrupt:
        _interrupted(str(cfg.trial_dir))
    from cvloss.report.console import print_table

    row = {"loss": spec, "seed": seed, "status": summary["status"]}
    row.update({k: f"{v:.4g}" for k, v in summary.get("metrics", {}).items()})
    print_table([row], fit=True, wide=wide, all_columns_in=str(cfg.trial_dir / "summary.json"))
    typer.echo(f"results: {cfg.trial_dir}")
    _failures({spec: [summary["status"]]}, strict)


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
    tune_sampler: str = typer.Option("random", "--tune-sampler", help="random | grid | tpe (tpe: cvloss[tune])."),
    tune_seed: int = typer.Option(0, "--tune-seed", help="Seed of the sampler (the same candidates for every loss)."),
    plugin: Optional[list[str]] = typer.Option(None, "--plugin", help=_PLUGIN_HELP),
    wide: bool = typer.Option(False, "--wide", help=_WIDE_HELP),
) -> None:
    """Train every loss at every seed (same init and batches per seed) and compare them."""
    _set_threads(threads)
    executor = _executor(executor_name, jobs=jobs, threads=threads, devices=devices, device=device,
                         break_stale_locks=break_stale_locks, plugins=plugin, address=address,
                         slurm_partition=slurm_partition, slurm_time=slurm_time, slurm_account=slurm_account,
                         slurm_qos=slurm_qos, slurm_gpus_per_trial=slurm_gpus_per_trial,
                         slurm_array_parallelism=slurm_array_parallelism, slurm_max_requeues=slurm_max_requeues,
                         slurm_extra=slurm_extra)
    _plugins(plugin, quiet)
    from cvloss.report.console import print_comparison
    from cvloss.run.compare import canonical_specs, parse_seeds, run_comparison, split_losses
    from cvloss.run.live_log import check_log

    seed_list = parse_seeds(seeds)
    base = _base_config(task, dataset, budget, device, out, data_dir, feature_weights, sets, catalog, trust_catalog)
    specs = canonical_specs(split_losses(losses), task)
    _require_feature_weights(task, specs, feature_weights)
    if target_effect is not None and not (math.isfinite(target_effect) and target_effect > 0):
        fail(f"--target-effect must be a positive difference in the primary metric's units; got {target_effect}")
    from dataclasses import replace

    base = replace(base, fid_weights=_fid_weights(fid_weights), log=check_log(log), threads=threads,
                   keep_checkpoints=keep_checkpoints)
    space = _tune_space(tune, tune_trials, tune_sampler, tune_seed, task, specs)
    try:
        with _chatter(quiet):
            if space is None:
                result = run_comparison(base, specs, seed_list, _progress(executor, quiet, task),
                                        break_stale_locks=break_stale_locks, target_effect=target_effect,
                                        allow_mixed=allow_mixed, executor=executor, retrain_stale=retrain_stale)
            else:
                from cvloss.run.tuning import run_tuned_comparison

                result = run_tuned_comparison(base, specs, seed_list, space, _progress(executor, quiet, task),
                                              break_stale_locks=break_stale_locks, target_effect=target_effect,
                                              allow_mixed=allow_mixed, executor=executor,
                                              retrain_stale=retrain_stale)
    except KeyboardInterrupt:
        _interrupted(str(base.group_dir))
    from cvloss.data.registry import get_dataset

    real = get_dataset(base.dataset).real
    data = f"{base.dataset} (embedded stand-in for {real})" if real else base.dataset
    print_comparison(result, f"{task} / {data} / {result['budget']}: mean ± 95% CI over seeds {seed_list}"
                     + (f"; features: {', '.join(result['feature_weights'])}" if result.get("feature_weights") else ""),
                     wide=wide)
    typer.echo(f"results: {result['dir']}")
    _failures(result["status"], strict)


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
    from pathlib import Path

    from cvloss.run.config import resolve_results_dir
    from cvloss.run.live_log import check_log
    from cvloss.run.trackers import TRACKERS
    from cvloss.run.trackers_export import export_results

    if tracker not in TRACKERS:
        fail(f"unknown tracker {tracker!r}; valid: {', '.join(TRACKERS)}")
    check_log(tracker, option="export")  # its package installed
    root = Path(resolve_results_dir(results_dir))
    if not root.is_dir():
        fail(f"no results folder {root}: run `cvloss compare ...` first, or name the folder to export")
    with _chatter(quiet):
        done = export_results(tracker, root)
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
    from pathlib import Path

    from cvloss.report.html import write_reports
    from cvloss.run.config import resolve_results_dir

    root = Path(resolve_results_dir(results_dir))
    if not root.is_dir():
        fail(f"no results folder {root}: run `cvloss compare ...` first, or name the folder to gather")
    if not any(root.glob("**/compare.json")):
        fail(f"no comparisons under {root}: run `cvloss compare ...` first")
    if allow_mixed:
        typer.echo("note: --allow-mixed is no longer needed: the report shows each comparison's provenance", err=True)
    paths = write_reports(root, html=html, replot=replot)
    for path in paths.values():
        typer.echo(f"report: {path}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

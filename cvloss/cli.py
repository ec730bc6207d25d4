"""cvloss command line: a thin Typer layer over the library (parse, call, print).

Examples::

    cvloss losses list --task seg
    cvloss losses show wgan_gp
    cvloss compare --task seg --losses ce,topo --budget smoke
    cvloss train --task seg --loss "ce+0.1*topo(mu=0.5)" --seed 1
    cvloss report results
    cvloss datasets list

Errors print one line to stderr and exit non-zero (2 for bad input); ``--debug`` shows
the traceback.
"""
from __future__ import annotations

from typing import Optional

import typer
import typer.core

from cvloss import __version__
from cvloss.errors import CvlossError

class _OneLineErrors(typer.core.TyperGroup):
    """Turn user-facing errors raised anywhere below into one line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (CvlossError, ValueError, KeyError, FileNotFoundError, PermissionError) as exc:
            if _state["debug"]:
                raise
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            typer.echo(f"error: {msg}", err=True)
            ctx.exit(2)


app = typer.Typer(
    cls=_OneLineErrors,
    help="cvloss: which loss should I use, and what does it buy me? Fair, reproducible comparisons of computer-vision losses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
losses_app = typer.Typer(help="List and describe the registered losses.", no_args_is_help=True)
app.add_typer(losses_app, name="losses")

_state = {"debug": False}


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
@losses_app.command("list")
def losses_list(task: Optional[str] = typer.Option(None, "--task", "-t", help="Only losses that serve this task.")) -> None:
    """Name, family, tasks served, paper and defaults of every registered loss."""
    from cvloss.losses import list_losses
    from cvloss.report.console import print_table

    infos = list_losses(task)
    rows = [
        {
            "name": i.name,
            "family": i.family,
            "tasks": ",".join(i.tasks),
            "paper": i.paper,
            "defaults": ", ".join(f"{p.name}={p.default}" for p in i.params),
        }
        for i in infos
    ]
    print_table(rows, title=f"losses{' for ' + task if task else ''} ({len(rows)})")


@losses_app.command("show")
def losses_show(name: str = typer.Argument(..., help="A registered loss name, e.g. wgan_gp.")) -> None:
    """Formula, constants, input shapes and arguments of one loss."""
    from cvloss.losses import get_loss_info

    try:
        info = get_loss_info(name)
    except KeyError as exc:
        fail(exc.args[0])
    typer.echo(f"{info.name}  ({info.family}; {info.paper})")
    typer.echo(f"tasks: {', '.join(info.tasks)}    input kind: {info.kind}")
    typer.echo("arguments: " + (", ".join(f"{p.name}: {p.type_name} = {p.default!r}" for p in info.params) or "none"))
    typer.echo("")
    typer.echo(info.doc)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The `ganpack` command: the Typer app, every command registered on it, and the one place where
errors become a line on stderr and an exit code. Each command parses, calls one library function,
prints; the modules beside this one hold them, one module per command group.

The commands that need torch (train, train-classifier, export, and pack of a run) import it only
when they run, so `ganpack --help` and every other command work in an install without torch."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated

import typer

import gan_pack
from gan_pack.cli import apply, export, inspection, onnx, package, sample, serve, train
from gan_pack.cli.parts import parts_app
from gan_pack.cli.text import one_line
from gan_pack.errors import GanPackError, Interrupted, in_chain

try:  # typer >= 0.20 vendors click and raises its own exceptions; older typer raises click's
    from typer import TyperException as UsageProblem
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException as UsageProblem  # type: ignore[assignment]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganpack {gan_pack.__version__}")
        raise typer.Exit()


def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """gan_pack: train -> export -> sample."""


def build_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                      help="Train GAN/cGAN generators, export them to ONNX, sample them with onnxruntime.",
                      context_settings={"help_option_names": ["-h", "--help"]})
    app.callback()(root)
    app.command("train")(train.train_command())
    app.command()(export.export)
    app.command("inspect")(export.inspect_checkpoint)
    app.command()(sample.sample)
    app.command()(sample.interpolate)
    app.command()(apply.apply)
    app.command()(inspection.info)
    app.command()(inspection.evaluate)
    app.command("train-classifier")(train.train_classifier)
    app.command()(inspection.report)
    app.command()(inspection.runs)
    app.command()(export.pack)
    app.command()(package.verify)
    app.command()(serve.serve)
    app.command()(onnx.optimize)
    app.command()(onnx.quantize)
    app.add_typer(parts_app, name="parts")
    return app


def exit_code(e: BaseException) -> int | None:
    """The exit code for an exception a command raised, having said why on stderr; None for a bug
    (it is raised again, traceback and all)."""
    if isinstance(e, (KeyboardInterrupt, typer.Abort)):      # older typer: Ctrl-C as Abort
        typer.echo("interrupted", err=True)
        return 130
    if isinstance(e, Interrupted):
        typer.echo(f"interrupted: {one_line(e)}", err=True)
        return e.exit_code
    if isinstance(e, UsageProblem):
        if not e.format_message():           # bare `ganpack`: the help was printed
            return 0
        typer.echo(f"error: {e.format_message()} (see 'ganpack --help')", err=True)
        return getattr(e, "exit_code", 2) or 2
    if isinstance(e, GanPackError):
        typer.echo(f"error: {one_line(e)}", err=True)
        return e.exit_code
    if isinstance(e, OSError):
        from gan_pack.core.files import DISK_ERRNOS, write_failure

        if e.errno not in DISK_ERRNOS:
            return None
        typer.echo(f"error: {one_line(write_failure(e.filename or 'a file', e))}", err=True)
        return 2
    if in_chain(e, KeyboardInterrupt) is not None:      # a library (torch.onnx) wraps Ctrl-C in its own error
        typer.echo("interrupted", err=True)
        return 130
    return None


def interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_sigterm():
    """SIGTERM (kill, a scheduler's stop) ends a command as Ctrl-C does: what it was writing is kept
    or removed, its locks released, and what to do next said (`serve` installs uvicorn's own handler).
    Returns the handler it replaced, or None where it changed nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    """Console entry point: one line on stderr and the error's exit code for any mistake of the user's."""
    replaced = stop_on_sigterm()
    try:
        code = build_app()(standalone_mode=False, prog_name="ganpack")
        if code == 130:                      # typer turns Ctrl-C into exit code 130, silently
            typer.echo("interrupted", err=True)
    except BaseException as e:  # noqa: BLE001 - each kind is mapped below; bugs are raised again
        if isinstance(e, SystemExit):
            raise
        code = exit_code(e)
        if code is None:
            raise
    finally:
        if replaced is not None:
            signal.signal(signal.SIGTERM, replaced)
    sys.exit(code or 0)

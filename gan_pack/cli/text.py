"""What every command prints: text from files made safe for a terminal, one-line errors, parity
tables, stage lines for long steps, and progress bars on a terminal. typer + rich only."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

ModelPath = Annotated[Path, typer.Argument(help="An exported generator: its .onnx, or its package folder.")]
TRUNCATION_HELP = ("Truncation threshold: redraw noise components beyond +-T (>= 0.1; fidelity over variety). "
                   "Default: the package's own (ganpack info shows it), else none; 0: none.")
PSI_HELP = ("StyleGAN-family models: truncation psi in w space around the average latent (1: none, 0.7: "
            "typical, 0: the average image).")
VARIANT_HELP = ("Of a package: the model file to run, main or a variant (cuda, fp16, int8); default: the "
                "variant made for the device's provider, else main.")


def note_variant(generator) -> None:
    """On stderr, the package variant a command runs when it is not the package's main model."""
    if generator.variant not in (None, "main"):
        typer.echo(f"running {generator.describe()}", err=True)


def printable(text: str, limit: int = 200) -> str:
    """Text from a file, safe on a terminal: control characters escaped, long values cut."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return safe if len(safe) <= limit else safe[:limit] + f"... ({len(safe)} characters)"


def one_line(e: BaseException) -> str:
    """A message as one line of printable text (it may quote a file's contents)."""
    return " ".join("".join(c if c.isprintable() else " " for c in part) for part in str(e).splitlines())


def stage(message: str) -> None:
    """A line on stderr as a long step starts, so logs (CI, nohup) show where the time goes."""
    typer.echo(f"... {message}", err=True)


def warn(message: str) -> None:
    typer.echo(printable(message, 500), err=True)


def show_parity(reports) -> None:
    """Each parity table on stdout; a failure written anyway (--allow-mismatch) loudly on stderr."""
    for report in reports:
        typer.echo(report.table())
        if not report.ok:
            typer.echo(f"WARNING: parity FAILED ({report.first_failure()}); written anyway because of "
                       f"--allow-mismatch", err=True)


def parity_summary(parity: dict) -> str:
    """One line of a stored report (this version's or an older one's) for `ganpack info`."""
    cells = ", ".join(f"batch {b['batch']} max abs {b['max_abs']:.1e}" for b in parity.get("batches", []))
    ok = parity.get("ok")
    verdict = "ok" if ok is True else "FAILED" if ok is False else "no bound recorded"
    return f"parity ({parity.get('precision', '?')} vs {parity.get('reference', '?')}): {cells}; {verdict}"


def versus_summary(parity: dict) -> str:
    """One line of an int8 model's stored comparison with its fp32 model."""
    return ", ".join(f"batch {b['batch']} max abs {b['max_abs']:.3f} (mean {b.get('mean_abs', float('nan')):.4f})"
                     for b in parity["batches"])


@contextlib.contextmanager
def progress(total: int, unit: str):
    """advance(k) for a long job: a progress bar on a terminal (stderr), nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True,
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(unit, total=total)
        yield lambda k: bar.advance(task, k)

"""`ganpack verify` (torch-free, onnx-free): is a package whole, and does it give its images here?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gan_pack.cli.text import printable
from gan_pack.contract.choices import Device
from gan_pack.errors import GanPackError, VerifyError


def verify(
    path: Annotated[Path, typer.Argument(help="A package folder (ganpack pack) or an .onnx.")],
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto: where to run the golden vectors.")] = Device.cpu,
) -> None:
    """Check a package on this machine: checksums, contract, metadata, then its golden vectors.

    Exit 0 when all hold, 1 when the package is wrong or tampered, 2 for a usage error.
    Example: ganpack verify exported/mnist-cgan/
    """
    from gan_pack.package.verify import verify as check

    if not path.exists():
        raise GanPackError(f"{path} does not exist; give a package folder or an .onnx")
    report = check(path, device.value)
    for line in report.lines:
        typer.echo(printable(line, 400))
    if report.problems:
        more = f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        raise VerifyError(f"{report.problems[0]}{more}")
    typer.echo("verified: every check holds")

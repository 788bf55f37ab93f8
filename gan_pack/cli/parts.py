"""`ganpack parts split|join` (torch-free): a run folder in parts of bounded size, to move it
between machines and resume it there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

parts_app = typer.Typer(no_args_is_help=True, help="Cut a run folder into parts of bounded size, and join them "
                                                    "back (to carry a run between machines and --resume it).")


@parts_app.command()
def split(
    run: Annotated[Path, typer.Argument(help="The run folder (ganpack train --out).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the parts and parts.json into.")],
    part_mib: Annotated[int, typer.Option(help="Largest part, in MiB.")] = 15,
    files: Annotated[str, typer.Option(help="Comma-separated run files to include (default: all there: config.json, "
                                            "metrics.jsonl, exports.jsonl, checkpoint.pt, checkpoint-best.pt).")] = "",
) -> None:
    """Write a run's files as numbered parts of at most --part-mib MiB, with their checksums.

    Example: ganpack parts split runs/emoji -o parts/ --part-mib 15 --files config.json,metrics.jsonl,checkpoint.pt
    """
    from gan_pack.core.parts import split_run

    names = [f.strip() for f in files.split(",") if f.strip()] or None
    manifest = split_run(run, out, part_mib, names)
    count = sum(len(entry["parts"]) for entry in manifest["files"])
    total = sum(entry["bytes"] for entry in manifest["files"])
    typer.echo(f"wrote {count} parts ({total / (1 << 20):.1f} MiB of {len(manifest['files'])} files) and "
               f"{out / 'parts.json'}")


@parts_app.command()
def join(
    folders: Annotated[list[Path], typer.Argument(help="Folder(s) holding parts.json and the parts.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write the files into.")],
) -> None:
    """Check every part against parts.json, then write the whole files into a run folder.

    Nothing is written unless every file is whole. Example: ganpack parts join a/ b/ -o runs/emoji
    """
    from gan_pack.core.parts import join_run

    names = join_run(folders, out)
    typer.echo(f"wrote {', '.join(names)} into {out}; continue with: ganpack train --resume --out {out}")

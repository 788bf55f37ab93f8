"""`ganpack apply`: an image model (an upscaler, a restorer) on image files, tiled. Base install only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.contract.choices import Device


def apply(
    model: Annotated[Path, typer.Argument(help="An exported image model: its .onnx, or its package folder.")],
    inputs: Annotated[list[str], typer.Argument(help="PNG, JPEG or WebP files, folders of them, or globs.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="OUT.png for one image; a folder for several "
                                                                 "(each NAME.png).")],
    tile: Annotated[Optional[int], typer.Option(
        help="Tile side in input pixels (0: the whole image at once). Default: chosen from a 256 MiB activation "
             "budget.")] = None,
    tile_overlap: Annotated[Optional[int], typer.Option(
        help="Input pixels neighbouring tiles share; their seams are blended across it. Default: 8.")] = None,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto.")] = Device.cpu,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime's threads (default: all cores).")] = None,
    variant: Annotated[Optional[str], typer.Option(help="A package's model file: main, cuda, int8.")] = None,
) -> None:
    """Run an image model on images: tiles with blended seams, alpha kept, sizes padded to the
    model's rules and cropped back; PNG out, written band by band.

    Example: ganpack apply exported/emoji-sr-x4 small.png -o big.png
    """
    from gan_pack.runtime.image_model import ImageModel, apply_files, expand_inputs, output_paths

    sources = expand_inputs(inputs)
    targets = output_paths(sources, output)
    runner = ImageModel(model, device.value, threads, variant)
    tiling = runner.tiling(tile, tile_overlap)
    if len(sources) == 1:
        apply_files(runner, sources, targets, tiling)
    else:
        with typer.progressbar(length=len(sources), label="applying", file=None) as bar:
            apply_files(runner, sources, targets, tiling, progress=lambda _: bar.update(1))
    where = targets[0] if len(targets) == 1 else targets[0].parent
    typer.echo(f"wrote {where} ({len(targets)} image{'s' * (len(targets) > 1)}, {runner.scale}x, "
               f"{'tiles of ' + str(tiling.tile) if tiling.tile else 'untiled'})")

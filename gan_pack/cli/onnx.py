"""The commands that rewrite ONNX graphs (torch-free; need the onnx package): optimize and quantize."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.cli.text import show_parity
from gan_pack.contract.choices import OptimizeMode, QuantizeMode


def optimize(
    model: Annotated[Path, typer.Argument(help="An exported fp32 generator (.onnx).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: the model itself, "
                                                                        "replaced atomically.")] = None,
    mode: Annotated[OptimizeMode, typer.Option(help="auto (write only if faster on this CPU) or on.")] \
        = OptimizeMode.auto,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: max abs difference from the original file (default 1e-4).")] = None,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
) -> None:
    """Rewrite an exported generator onto faster CPU kernels, proven against the original (needs onnx).

    Transposed convolutions become phase convolutions and thin convolutions a matrix product; the
    math is the same. Example: ganpack optimize exported/mnist-cgan/
    """
    from gan_pack.onnx_tools.optimize import optimize_generator

    done = optimize_generator(model, output, mode.value, atol, allow_mismatch)
    record = done.record or {}
    rates = record.get("images_per_s")
    speed = (f": {rates['rewritten']:,.0f} against {rates['original']:,.0f} images/s at batch {record['batch']}"
             if rates else "")
    if done.report is not None:
        show_parity([done.report])
    if done.record is None:
        what = "nothing to rewrite (no ConvTranspose 4/2/1, no thin Conv)"
    elif done.report is None:
        what = f"the rewritten graph was not faster on this CPU{speed}; the graph is unchanged"
    else:
        what = f"rewrote {', '.join(f'{n} {k}' for k, n in record['rewrites'].items())}{speed}"
    wrote = f"wrote {done.path} with its activation size" if done.written else "nothing written"
    typer.echo(f"{model}: {what}; {wrote}")


def quantize(
    model: Annotated[Path, typer.Argument(help="An exported fp32 generator (.onnx).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: NAME.int8.onnx beside it.")] = None,
    mode: Annotated[QuantizeMode, typer.Option(help="auto (dynamic for MLPs, static for convolutional generators), "
                                            "static (calibrated, QDQ) or dynamic.")] = QuantizeMode.auto,
    calibration_n: Annotated[int, typer.Option(help="Noise samples for static calibration.")] = 512,
    seed: Annotated[int, typer.Option(help="Calibration noise seed.")] = 0,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: mean abs pixel difference from the fp32 model (default 0.15).")] = None,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
) -> None:
    """Make an int8 variant of an exported generator (onnxruntime quantization; needs onnx).

    Example: ganpack quantize exported/mnist-cgan-mlp/ -o runs/mnist-cgan-mlp.int8.onnx
    """
    from gan_pack.onnx_tools.quantize import default_output, quantize_generator
    from gan_pack.runtime.session import resolve_model_file

    model = resolve_model_file(model)
    path, before = output or default_output(model), model.stat().st_size     # before: -o may be the model itself
    show_parity([quantize_generator(model, path, mode.value, calibration_n, seed, atol, allow_mismatch)])
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, was {before / 1e6:.2f} MB)")

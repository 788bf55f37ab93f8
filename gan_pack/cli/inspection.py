"""The commands that look at models and runs (torch-free): info, evaluate, report, runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.cli.text import (
    PSI_HELP,
    TRUNCATION_HELP,
    VARIANT_HELP,
    ModelPath,
    parity_summary,
    printable,
    stage,
    versus_summary,
    warn,
)
from gan_pack.contract.choices import Device
from gan_pack.contract.limits import EVAL_K

SUMMARISED = ("parity", "train_config", "parity_vs_fp32", "parity_vs_original")


def info(
    model: ModelPath,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto: which variant of a package to show.")] = Device.cpu,
    variant: Annotated[Optional[str], typer.Option(help=VARIANT_HELP)] = None,
) -> None:
    """Print a model's metadata, inputs/outputs, parity report, size and available providers.

    Example: ganpack info exported/mnist-cgan/ --device cuda
    """
    from gan_pack.runtime.generator import OnnxGenerator
    from gan_pack.runtime.session import available_providers

    image = _image_model(model, device.value, variant)
    if image is not None:
        _image_info(image)
        typer.echo(f"providers available: {', '.join(available_providers())}")
        return
    generator = OnnxGenerator(model, device=device.value, variant=variant)
    meta = generator.info.raw
    typer.echo(f"{printable(str(generator.path))}  ({generator.path.stat().st_size / 1e6:.2f} MB)")
    if generator.variant is not None:
        typer.echo(f"  variant: {generator.variant} ({generator.chosen}), running on {generator.providers[0]}")
    for key in sorted(k for k in meta if k not in SUMMARISED):
        typer.echo(f"  {printable(key, 40):<20} {printable(meta[key])}")
    _tensors(generator.session)
    if generator.info.parity:
        typer.echo(printable(parity_summary(generator.info.parity), 2000))
    if "parity_vs_fp32" in meta:
        typer.echo(printable(f"{generator.info.precision} vs the fp32 model: "
                             f"{versus_summary(json.loads(meta['parity_vs_fp32']))}", 2000))
    try:
        typer.echo(printable(parity_summary(json.loads(meta["parity_vs_original"])), 2000))
    except (KeyError, ValueError, TypeError, AttributeError):
        pass                                  # absent (not rewritten by optimize) or not a report
    typer.echo(f"providers available: {', '.join(available_providers())}")


def evaluate(
    model: ModelPath,
    classifier: Annotated[Path, typer.Option(help="An exported classifier of the same data.")],
    data_dir: Annotated[Path, typer.Option(help="Folder with the real data's IDX files.")],
    n: Annotated[int, typer.Option("-n", "--num", help="Generated (and real) images to compare.")] = 10000,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    k: Annotated[int, typer.Option(help="Neighbours for precision/recall/density/coverage.")] = EVAL_K,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every figure here.")] = None,
    truncation: Annotated[Optional[float], typer.Option(help=TRUNCATION_HELP)] = None,
    psi: Annotated[Optional[float], typer.Option(help=PSI_HELP)] = None,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto.")] = Device.cpu,
    variant: Annotated[Optional[str], typer.Option(help=VARIANT_HELP)] = None,
) -> None:
    """Measure a generator offline, through onnxruntime: FCD, accuracy, coverage, PRDC.

    Example: ganpack evaluate exported/mnist-cgan/ --classifier exported/mnist-classifier.onnx
    --data-dir ../shared/data/mnist --json runs/mnist-cgan.eval.json
    """
    from gan_pack.core.files import check_output_path, write_text_atomic
    from gan_pack.evaluate.quality import evaluate_generator, format_report
    from gan_pack.runtime.labels import check_seed

    check_seed(seed, "--seed")
    if json_out is not None:
        check_output_path(json_out, ".json")
    result = evaluate_generator(model, classifier, data_dir, n=n, seed=seed, k=k, truncation=truncation, log=stage,
                                device=device.value, variant=variant, psi=psi)
    typer.echo(format_report(result))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (the --out of `ganpack train`).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file (default RUN/report.html).")] \
        = None,
    png: Annotated[Optional[Path], typer.Option(help="Also write a one-image summary PNG here.")] = None,
) -> None:
    """One self-contained HTML page of a run: settings, curves, grids, parity and metadata.

    Example: ganpack report runs/demo -o report.html --png summary.png
    """
    from gan_pack.core.files import check_output_path
    from gan_pack.package.report import load_run, write_report, write_summary_png

    for path, suffix in ((output, ".html"), (png, ".png")):
        if path is not None:
            check_output_path(path, suffix)
    run = load_run(run_dir, warn=warn)
    typer.echo(f"wrote {write_report(run, output, warn)}")
    if png is not None:
        typer.echo(f"wrote {write_summary_png(run, png)}")


def runs(folder: Annotated[Path, typer.Argument(help="The folder that holds your runs.")] = Path("runs")) -> None:
    """A table of the runs in a folder, newest first.

    Example: ganpack runs runs/
    """
    from gan_pack.package.report import format_runs, list_runs

    rows = list_runs(folder, warn=warn)
    table = "\n".join(printable(line, 1000) for line in format_runs(rows).splitlines())
    typer.echo(table if rows else f"no runs in {folder}")


def _image_model(model, device: str, variant: str | None):
    """The image model at `model` (an upscaler or restorer), or None for anything else."""
    from gan_pack.contract.image_model import is_image_model
    from gan_pack.errors import GanPackError
    from gan_pack.runtime.image_model import ImageModel
    from gan_pack.runtime.onnxscan import model_metadata
    from gan_pack.runtime.session import pick_model_file

    try:
        path, _, _ = pick_model_file(model, device, variant)
        if not is_image_model(model_metadata(path)):
            return None
    except (GanPackError, OSError, ValueError):
        return None                                    # the generator path below says what is wrong
    return ImageModel(model, device, None, variant)


def _image_info(image) -> None:
    spec, meta = image.spec, image.info.raw
    typer.echo(f"{printable(str(image.path))}  ({image.path.stat().st_size / 1e6:.2f} MB)")
    if image.plan.variant is not None:
        typer.echo(f"  variant: {image.plan.variant} ({image.plan.why}), running on {image.session.get_providers()[0]}")
    for key in sorted(k for k in meta if k not in ("parity", "gan_pack.spec")):
        typer.echo(f"  {printable(key, 40):<20} {printable(meta[key])}")
    typer.echo(f"image model: {spec.arch}, {spec.scale}x, {spec.in_channels} -> {spec.out_channels} channels, "
               f"{spec.size_rule()}, tiling {spec.tiling}")
    _tensors(image.session)
    if image.info.parity:
        typer.echo(printable(parity_summary(image.info.parity), 2000))
    if "psnr_vs_fp32" in meta:
        typer.echo(printable(f"{image.info.precision} vs the fp32 model: {meta['psnr_vs_fp32']}", 400))


def _tensors(session) -> None:
    """A session's inputs, optional inputs (with a default) and outputs: name, type, shape."""
    for title, values in (("inputs:", session.get_inputs()),
                          ("optional inputs (with a default):", session.get_overridable_initializers()),
                          ("outputs:", session.get_outputs())):
        if not values:
            continue
        typer.echo(title)
        for value in values:
            typer.echo(f"  {printable(value.name, 40):<8} {value.type:<16} {printable(str(value.shape))}")

"""The `ganpack` command: each command parses, calls one library function, prints.

The torch-side commands live in cli_train.py and import torch only when they run, so `sample`,
`info`, `interpolate`, `evaluate`, `report`, `runs` and `quantize` work without torch installed."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

import gan_pack
from gan_pack import cli_train
from gan_pack.config import Device
from gan_pack.errors import GanPackError

try:  # typer >= 0.20 vendors click and raises its own exceptions; older typer raises click's
    from typer import TyperException as UsageProblem
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException as UsageProblem

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Train GAN/cGAN generators, export them to ONNX, sample them with onnxruntime.",
                  context_settings={"help_option_names": ["-h", "--help"]})
app.command()(cli_train.train)
app.command()(cli_train.export)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganpack {gan_pack.__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """gan_pack: train -> export -> sample."""


def main() -> None:
    """Console entry point: one line on stderr and exit 2 for any mistake of the user's."""
    try:
        code = app(standalone_mode=False, prog_name="ganpack")
    except UsageProblem as e:
        if not e.format_message():           # bare `ganpack`: the help was printed
            sys.exit(0)
        typer.echo(f"error: {e.format_message()} (see 'ganpack --help')", err=True)
        code = getattr(e, "exit_code", 2) or 2
    except GanPackError as e:
        typer.echo(f"error: {e}", err=True)
        code = 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        code = 130
    sys.exit(code or 0)


class Format(str, Enum):
    png = "png"
    npy = "npy"


ModelPath = Annotated[Path, typer.Argument(help="An exported generator (.onnx).")]


@app.command()
def sample(
    model: ModelPath,
    n: Annotated[int, typer.Option("-n", "--num", help="How many images.")] = 64,
    label: Annotated[Optional[int], typer.Option(help="cGAN: one label for all images.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="cGAN: labels like 0,1,2, repeated to fill -n.")] = None,
    per_class: Annotated[Optional[int], typer.Option(help="cGAN: K images of every class, one row each.")] = None,
    seed: Annotated[int, typer.Option(help="Noise seed: same seed, same images.")] = 0,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto.")] = Device.cpu,
    batch_size: Annotated[int, typer.Option(help="Images per onnxruntime call.")] = 1024,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Grid PNG (.npy with --format npy).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(help="Write one file per image here, streaming.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="png or npy.")] = Format.png,
    nrow: Annotated[Optional[int], typer.Option(help="Images per grid row.")] = None,
) -> None:
    """Sample an exported generator with onnxruntime (no torch).

    Examples: ganpack sample exported/mnist-cgan.onnx --per-class 10 -o samples.png;
    ganpack sample exported/mnist-gan.onnx -n 100000 --out-dir samples/ --format npy
    """
    from gan_pack import images as imaging
    from gan_pack.files import check_output_path
    from gan_pack.runtime import LabelRequest, OnnxGenerator

    if n < 1:
        raise GanPackError(f"-n must be at least 1, not {n}")
    if output is not None and out_dir is not None:
        raise GanPackError("give either -o (one file) or --out-dir (one file per image), not both")
    generator = OnnxGenerator(model, device=device.value, threads=threads, batch_size=batch_size)
    request = LabelRequest.parse(generator.info.num_classes, n, label, labels, per_class)
    if out_dir is not None:
        check_output_path(out_dir, folder=True)
        for start, batch in generator.iter_batches(request.n, request.labels, seed):
            imaging.save_each(out_dir, batch, start, fmt.value)
        typer.echo(f"wrote {request.n} {fmt.value} files to {out_dir}/")
        return
    output = check_output_path(output or Path(f"samples.{fmt.value}"))
    images = generator.sample(request.n, request.labels, seed)
    if fmt is Format.npy:
        imaging.save_npy(output, images)
    else:
        imaging.save_grid(output, images, nrow or request.columns)
    typer.echo(f"wrote {output} ({request.n} images, seed {seed})")


@app.command()
def interpolate(
    model: ModelPath,
    steps: Annotated[int, typer.Option(help="Images along the walk, ends included.")] = 10,
    label: Annotated[Optional[int], typer.Option(help="cGAN: walk in this class (default: one row per class).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the two end points.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write.")] = Path("walk.png"),
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto.")] = Device.cpu,
) -> None:
    """A spherical interpolation (slerp) between two noise vectors: the classic latent walk.

    Example: ganpack interpolate exported/mnist-cgan.onnx --steps 10 --label 3 -o walk.png
    """
    from gan_pack.files import check_output_path
    from gan_pack.images import save_grid
    from gan_pack.runtime import OnnxGenerator, latent_walk

    if steps < 2:
        raise GanPackError(f"--steps must be at least 2, not {steps}")
    generator = OnnxGenerator(model, device=device.value)
    noise, row_labels, rows = latent_walk(generator, steps, label, seed)
    save_grid(check_output_path(output), generator.generate(noise, row_labels), nrow=steps)
    typer.echo(f"wrote {output} ({rows} row(s) of {steps} steps, seed {seed})")


@app.command()
def info(model: ModelPath) -> None:
    """Print a model's metadata, inputs/outputs, parity report, size and available providers.

    Example: ganpack info exported/mnist-cgan.onnx
    """
    import json

    from gan_pack.contract import parity_summary
    from gan_pack.runtime import OnnxGenerator, available_providers

    generator = OnnxGenerator(model)
    meta = generator.info.raw
    typer.echo(f"{model}  ({model.stat().st_size / 1e6:.2f} MB)")
    for key in sorted(k for k in meta if k not in ("parity", "train_config", "parity_vs_fp32")):
        typer.echo(f"  {key:<20} {meta[key]}")
    for title, values in (("inputs:", generator.session.get_inputs()), ("outputs:", generator.session.get_outputs())):
        typer.echo(title)
        for value in values:
            typer.echo(f"  {value.name:<8} {value.type:<16} {value.shape}")
    if generator.info.parity:
        typer.echo(parity_summary(generator.info.parity))
    if "parity_vs_fp32" in meta:
        versus = json.loads(meta["parity_vs_fp32"])
        cells = ", ".join(f"batch {b['batch']} max abs {b['max_abs']:.3f} (mean {b['mean_abs']:.4f})"
                          for b in versus["batches"])
        typer.echo(f"{generator.info.precision} vs the fp32 model: {cells}")
    typer.echo(f"providers available: {', '.join(available_providers())}")


@app.command()
def evaluate(
    model: ModelPath,
    classifier: Annotated[Path, typer.Option(help="An exported classifier of the same data.")],
    data_dir: Annotated[Path, typer.Option(help="Folder with the real data's IDX files.")],
    n: Annotated[int, typer.Option("-n", "--num", help="Generated (and real) images to compare.")] = 10000,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    k: Annotated[int, typer.Option(help="Neighbours for precision/recall/density/coverage.")] = 5,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every figure here.")] = None,
) -> None:
    """Measure a generator offline, through onnxruntime: FCD, accuracy, coverage, PRDC.

    Example: ganpack evaluate exported/mnist-cgan.onnx --classifier exported/mnist-classifier.onnx
    --data-dir ../shared/data/mnist --json runs/mnist-cgan.eval.json
    """
    import json

    from gan_pack.evaluate import evaluate_generator, format_report
    from gan_pack.files import check_output_path, write_text_atomic

    if json_out is not None:
        check_output_path(json_out)
    result = evaluate_generator(model, classifier, data_dir, n=n, seed=seed, k=k)
    typer.echo(format_report(result))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


app.command("train-classifier")(cli_train.train_classifier)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (the --out of `ganpack train`).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file (default RUN/report.html).")] \
        = None,
    png: Annotated[Optional[Path], typer.Option(help="Also write a one-image summary PNG here.")] = None,
) -> None:
    """One self-contained HTML page of a run: settings, curves, grids, parity and metadata.

    Example: ganpack report runs/demo -o report.html --png summary.png
    """
    from gan_pack.files import check_output_path
    from gan_pack.report import load_run, write_report, write_summary_png

    for path in (output, png):
        if path is not None:
            check_output_path(path)
    run = load_run(run_dir, warn=lambda message: typer.echo(message, err=True))
    typer.echo(f"wrote {write_report(run, output)}")
    if png is not None:
        typer.echo(f"wrote {write_summary_png(run, png)}")


@app.command()
def runs(folder: Annotated[Path, typer.Argument(help="The folder that holds your runs.")] = Path("runs")) -> None:
    """A table of the runs in a folder, newest first.

    Example: ganpack runs runs/
    """
    from gan_pack.report import format_runs, list_runs

    rows = list_runs(folder)
    typer.echo(format_runs(rows) if rows else f"no runs in {folder}")


class Mode(str, Enum):
    auto = "auto"
    static = "static"
    dynamic = "dynamic"


@app.command()
def quantize(
    model: Annotated[Path, typer.Argument(help="An exported fp32 generator (.onnx).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: NAME.int8.onnx beside it.")] = None,
    mode: Annotated[Mode, typer.Option(help="auto (dynamic for MLPs, static for convolutional generators), "
                                            "static (calibrated, QDQ) or dynamic.")] = Mode.auto,
    calibration_n: Annotated[int, typer.Option(help="Noise samples for static calibration.")] = 512,
    seed: Annotated[int, typer.Option(help="Calibration noise seed.")] = 0,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: mean abs pixel difference from the fp32 model (default 0.15).")] = None,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
) -> None:
    """Make an int8 variant of an exported generator (onnxruntime quantization; needs onnx).

    Example: ganpack quantize exported/mnist-cgan-mlp.onnx -o runs/mnist-cgan-mlp.int8.onnx
    """
    from gan_pack.quantize import default_output, quantize_generator

    path = output or default_output(model)
    cli_train.show_parity([quantize_generator(model, path, mode.value, calibration_n, seed, atol, allow_mismatch)])
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, was {model.stat().st_size / 1e6:.2f} MB)")

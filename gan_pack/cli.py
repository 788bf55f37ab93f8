"""The `ganpack` command. Torch-side modules are imported inside the commands that need them,
so `sample`, `info`, `interpolate` and `evaluate` run without torch installed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

import gan_pack
from gan_pack.errors import GanPackError

try:  # typer >= 0.20 vendors click; older typer depends on it
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Train GAN/cGAN generators, export them to ONNX, sample them with onnxruntime.",
                  context_settings={"help_option_names": ["-h", "--help"]})


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


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
    except ClickException as e:
        typer.echo(f"error: {e.format_message()} (see 'ganpack --help')", err=True)
        code = getattr(e, "exit_code", 2) or 2
    except GanPackError as e:
        typer.echo(f"error: {e}", err=True)
        code = 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        code = 130
    sys.exit(code or 0)


# ---------------------------------------------------------------- train

@app.command()
def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="gan, or cgan (conditional on the class label).")] = "gan",
    arch: Annotated[str, typer.Option(help="mlp (the classic tutorial pair) or dcgan (convolutional).")] = "mlp",
    dataset: Annotated[str, typer.Option(help="mnist, fashion-mnist, or folder (an image folder).")] = "mnist",
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the IDX files (offline) or the images.")] = None,
    image_size: Annotated[int, typer.Option(help="Image side in pixels (dcgan: 28, 32 or 64).")] = 28,
    channels: Annotated[int, typer.Option(help="1 (grayscale) or 3 (RGB).")] = 1,
    epochs: Annotated[int, typer.Option(help="Total epochs (a resumed run continues up to this).")] = 10,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate, both networks.")] = 2e-4,
    lr_d: Annotated[Optional[float], typer.Option(help="Discriminator learning rate (default: --lr).")] = None,
    lr_decay_from: Annotated[Optional[int], typer.Option(
        help="From this epoch on, both learning rates fall linearly to 1/(n+1) of theirs in the last "
             "epoch (n = epochs left); may be set when resuming a run (default: constant).")] = None,
    beta1: Annotated[float, typer.Option(help="Adam beta1.")] = 0.5,
    beta2: Annotated[float, typer.Option(help="Adam beta2.")] = 0.999,
    noise_dim: Annotated[int, typer.Option(help="Dimension of the standard-normal noise.")] = 100,
    width: Annotated[int, typer.Option(help="dcgan base channel count.")] = 64,
    d_width: Annotated[Optional[int], typer.Option(help="dcgan D base channel count (default: --width).")] = None,
    spectral_norm: Annotated[bool, typer.Option(help="Spectral normalisation in D.")] = False,
    late_label: Annotated[bool, typer.Option(help="dcgan cGAN: feed the label to D's last layer too.")] = False,
    mbstd: Annotated[int, typer.Option(
        help="dcgan D: add a minibatch-variation plane over groups of this many images, so D can "
             "tell a G that draws too few styles (0: off; --batch-size must be a multiple).")] = 0,
    r1: Annotated[float, typer.Option(
        help="R1 penalty weight gamma: D's loss gains gamma/2 |grad D(real)|^2 (0: off).")] = 0.0,
    augment: Annotated[str, typer.Option(
        help="D sees real and fake images through these differentiable augmentations, comma-"
             "separated: translation, cutout (default: none).")] = "",
    ema: Annotated[bool, typer.Option(help="Keep an EMA of G's weights for samples and export.")] = True,
    ema_decay: Annotated[float, typer.Option(help="EMA decay per step.")] = 0.999,
    loss: Annotated[str, typer.Option(help="bce (on logits), bce-prob (the tutorial's), or hinge.")] = "bce",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same CPU run.")] = 0,
    log_every: Annotated[int, typer.Option(help="Steps between lines of metrics.jsonl.")] = 100,
    eval_every: Annotated[int, typer.Option(help="Evaluate the EMA generator every K epochs (0: never).")] = 0,
    classifier: Annotated[Optional[str], typer.Option(help="Exported classifier for --eval-every.")] = None,
    eval_n: Annotated[int, typer.Option(help="Images per in-training evaluation.")] = 5000,
    tensorboard: Annotated[bool, typer.Option(help="Also log to TensorBoard (tensorboard --logdir runs/).")] = False,
    fast: Annotated[bool, typer.Option(help="Data on the device, fused Adam, and on one GPU the whole "
                                             "step as a CUDA graph; --no-fast: DataLoader, eager steps. "
                                             "Same math.")] = True,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast for the forward passes (GPUs with bf16).")] = False,
    out: Annotated[str, typer.Option("--out", "-o", help="Run folder to write.")] = "runs/run",
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
) -> None:
    """Train a generator; writes config.json, checkpoint.pt, metrics.jsonl and samples/ into --out.

    Example: ganpack train --model cgan --epochs 3 --data-dir ../shared/data/mnist --out runs/demo
    """
    from gan_pack.config import TrainConfig

    settings = {k: v for k, v in ctx.params.items() if k != "resume"}
    if resume:
        settings = _merge_resume_settings(ctx, settings)
    config = TrainConfig(**settings)
    _run_training(config, resume)


def _merge_resume_settings(ctx: typer.Context, settings: dict) -> dict:
    """Flags given on the command line win; the rest come from the run being resumed."""
    from gan_pack.train import load_checkpoint

    saved = load_checkpoint(settings["out"])["config"]
    given = {k for k in settings if ctx.get_parameter_source(k).name in ("COMMANDLINE", "ENVIRONMENT")}
    return {k: (settings[k] if k in given or k not in saved else saved[k]) for k in settings}


def _run_training(config, resume: bool) -> None:
    from gan_pack.train import train as train_run

    def on_start(t):
        where = f"from epoch {t.epoch} " if resume else ""
        typer.echo(f"training {config.model} ({config.arch}) on {config.dataset} ({t.info.size} images, "
                   f"{t.device}) {where}-> {config.out}", err=True)

    def on_epoch(t):
        rec = t.last_record or {}
        typer.echo(f"epoch {t.epoch}/{config.epochs}  step {t.step}  d_loss {rec.get('d_loss')}  "
                   f"g_loss {rec.get('g_loss')}  D(x) {rec.get('d_x')}  D(G(z)) {rec.get('d_g_z')}  "
                   f"{rec.get('images_per_s')} images/s", err=True)

    t = train_run(config, resume=resume, on_epoch=on_epoch, progress_factory=ProgressBar, on_start=on_start)
    if t.world.main:
        typer.echo(f"done: {t.epoch} epochs, {t.step} steps; samples in {config.out}/samples/", err=True)


class ProgressBar:
    """A rich progress bar for one epoch: steps done, losses and images/s."""

    def __init__(self, t):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(f"epoch {t.epoch + 1}/{t.config.epochs}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[stats]}"),
                                 transient=True, disable=not sys.stderr.isatty())
        self.task = self.progress.add_task("train", total=len(t.batches), stats="")
        self.progress.start()

    def update(self, record: dict, steps: int) -> None:
        stats = (f"d {record['d_loss']:.3f} g {record['g_loss']:.3f} "
                 f"{record['images_per_s']:.0f} img/s")
        self.progress.update(self.task, advance=steps, stats=stats)

    def close(self) -> None:
        self.progress.stop()


# ---------------------------------------------------------------- export

@app.command()
def export(
    source: Annotated[Path, typer.Argument(help="A run folder or its checkpoint.pt.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    weights: Annotated[str, typer.Option(help="ema (default) or raw generator weights.")] = "ema",
    opset: Annotated[int, typer.Option(help="ONNX opset (18..23).")] = 18,
    atol: Annotated[Optional[float], typer.Option(help="Parity bound (default 1e-4 fp32, 2e-2 fp16).")] = None,
    precision: Annotated[str, typer.Option(help="fp32, fp16 (half weights and compute, float32 I/O) or int8 (quantization of the fp32 export).")] = "fp32",
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
) -> None:
    """Export a trained generator to one self-contained .onnx file and prove it matches PyTorch.

    Example: ganpack export runs/demo -o exported/demo.onnx
    """
    from gan_pack.export import ExportOptions, export_generator, parity_path, parity_table

    if precision == "int8":
        _export_int8(source, output, ExportOptions(weights=weights, opset=opset, atol=atol,
                                                   allow_mismatch=allow_mismatch))
        return
    options = ExportOptions(weights=weights, opset=opset, atol=atol, precision=precision,
                            allow_mismatch=allow_mismatch)
    report = export_generator(source, output, options)
    typer.echo(parity_table(report))
    if not report.ok:
        typer.echo(f"WARNING: parity FAILED ({report.first_failure()}); written anyway because of "
                   f"--allow-mismatch", err=True)
    size = output.stat().st_size / 1e6
    typer.echo(f"wrote {output} ({size:.2f} MB) and {parity_path(output)}")


def _export_int8(source: Path, output: Path, options) -> None:
    """The fp32 export (checked against PyTorch), then its int8 quantization (mode auto)."""
    import json
    import tempfile

    from gan_pack.export import check_output_path, export_generator, parity_path, parity_table, record_export
    from gan_pack.files import write_text_atomic
    from gan_pack.quantize import quantize_generator

    output = check_output_path(output)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        report = export_generator(source, fp32, options, record=False)
        typer.echo(parity_table(report))
        result = quantize_generator(fp32, output, "auto")
    write_text_atomic(parity_path(output), json.dumps({"fp32_vs_pytorch": report.to_dict(),
                                                       "int8_vs_fp32": result}, indent=2) + "\n")
    record_export(source, output, f"int8-{result['mode']}", options.weights)
    typer.echo(f"int8 vs fp32: {_versus_line(result['batches'])}")
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB) and {parity_path(output)}")


# ---------------------------------------------------------------- sample

def _parse_labels(label: Optional[int], labels: Optional[str], per_class: Optional[int],
                  n: int, num_classes: int):
    """(n, labels for the runtime, grid columns) from the three mutually exclusive flags."""
    given = [x is not None for x in (label, labels, per_class)]
    if sum(given) > 1:
        raise GanPackError("give only one of --label, --labels and --per-class")
    if any(given) and num_classes == 0:
        raise GanPackError("this model is unconditional (num_classes 0): drop --label/--labels/--per-class")
    if per_class is not None:
        if per_class < 1:
            raise GanPackError(f"--per-class must be at least 1, not {per_class}")
        return per_class * num_classes, [c for c in range(num_classes) for _ in range(per_class)], per_class
    if labels is not None:
        try:
            items = [int(x) for x in labels.split(",") if x.strip()]
        except ValueError:
            raise GanPackError(f"--labels must be comma-separated integers like 0,1,2, not {labels!r}")
        if not items:
            raise GanPackError("--labels is empty; give e.g. --labels 0,1,2")
        return n, [items[i % len(items)] for i in range(n)], None
    return n, label, None


def _check_writable(path: Path, is_dir: bool = False) -> None:
    import os

    folder = path if is_dir else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GanPackError(f"cannot create {folder} ({e.strerror}); choose another output path")
    if not os.access(folder, os.W_OK):
        raise GanPackError(f"{folder} is not writable; choose another output path")


@app.command()
def sample(
    model: Annotated[Path, typer.Argument(help="An exported generator (.onnx).")],
    n: Annotated[int, typer.Option("-n", "--num", help="How many images.")] = 64,
    label: Annotated[Optional[int], typer.Option(help="cGAN: one label for all images.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="cGAN: labels like 0,1,2, repeated to fill -n.")] = None,
    per_class: Annotated[Optional[int], typer.Option(help="cGAN: K images of every class, one row each.")] = None,
    seed: Annotated[int, typer.Option(help="Noise seed: same seed, same images.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Images per onnxruntime call.")] = 1024,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Grid PNG (or .npy with --format npy).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(help="Write one file per image here, streaming.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="png or npy.")] = "png",
    nrow: Annotated[Optional[int], typer.Option(help="Images per grid row.")] = None,
) -> None:
    """Sample an exported generator with onnxruntime (no torch).

    Examples: ganpack sample exported/mnist-cgan.onnx --per-class 10 -o samples.png;
    ganpack sample exported/mnist-gan.onnx -n 100000 --out-dir samples/ --format npy
    """
    from gan_pack import images as imaging
    from gan_pack.runtime import OnnxGenerator

    if fmt not in ("png", "npy"):
        raise GanPackError(f"--format must be png or npy, not {fmt!r}")
    if n < 1:
        raise GanPackError(f"-n must be at least 1, not {n}")
    if output is not None and out_dir is not None:
        raise GanPackError("give either -o (one file) or --out-dir (one file per image), not both")
    generator = OnnxGenerator(model, device=device, threads=threads, batch_size=batch_size)
    n, label_spec, columns = _parse_labels(label, labels, per_class, n, generator.info.num_classes)
    if out_dir is not None:
        _check_writable(out_dir, is_dir=True)
        for start, batch in generator.iter_batches(n, label_spec, seed):
            imaging.save_each(out_dir, batch, start, fmt)
        typer.echo(f"wrote {n} {fmt} files to {out_dir}/")
        return
    output = output or Path(f"samples.{fmt}")
    _check_writable(output)
    images = generator.sample(n, label_spec, seed)
    if fmt == "npy":
        imaging.save_npy(output, images)
    else:
        imaging.save_grid(output, images, nrow or columns)
    typer.echo(f"wrote {output} ({n} images, seed {seed})")


@app.command()
def interpolate(
    model: Annotated[Path, typer.Argument(help="An exported generator (.onnx).")],
    steps: Annotated[int, typer.Option(help="Images along the walk, ends included.")] = 10,
    label: Annotated[Optional[int], typer.Option(help="cGAN: walk in this class (default: one row per class).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the two end points.")] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write.")] = Path("walk.png"),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
) -> None:
    """A spherical interpolation (slerp) between two noise vectors: the classic latent walk.

    Example: ganpack interpolate exported/mnist-cgan.onnx --steps 10 --label 3 -o walk.png
    """
    import numpy as np

    from gan_pack.images import save_grid
    from gan_pack.runtime import OnnxGenerator, slerp

    if steps < 2:
        raise GanPackError(f"--steps must be at least 2, not {steps}")
    generator = OnnxGenerator(model, device=device)
    k = generator.info.num_classes
    if label is not None and k == 0:
        raise GanPackError("this model is unconditional (num_classes 0): drop --label")
    ends = generator.noise(2, seed)
    walk = slerp(ends[0], ends[1], steps)                        # (steps, noise_dim)
    rows = [label] if label is not None else (list(range(k)) if k else [None])
    noise = np.concatenate([walk] * len(rows))
    row_labels = None if k == 0 else np.repeat(np.asarray(rows, dtype=np.int64), steps)
    _check_writable(output)
    save_grid(output, generator.generate(noise, row_labels), nrow=steps)
    typer.echo(f"wrote {output} ({len(rows)} row(s) of {steps} steps, seed {seed})")


def _versus_line(batches: list[dict]) -> str:
    return ", ".join(f"batch {b['batch']} max abs {b['max_abs']:.3f} (mean {b['mean_abs']:.4f})" for b in batches)


@app.command()
def info(model: Annotated[Path, typer.Argument(help="An exported generator (.onnx).")]) -> None:
    """Print a model's metadata, inputs/outputs, parity report, size and available providers.

    Example: ganpack info exported/mnist-cgan.onnx
    """
    import json

    from gan_pack.runtime import OnnxGenerator, available_providers

    generator = OnnxGenerator(model)
    meta = generator.info.raw
    typer.echo(f"{model}  ({model.stat().st_size / 1e6:.2f} MB)")
    for key in sorted(k for k in meta if k not in ("parity", "train_config", "parity_vs_fp32")):
        typer.echo(f"  {key:<20} {meta[key]}")
    typer.echo("inputs:")
    for i in generator.session.get_inputs():
        typer.echo(f"  {i.name:<8} {i.type:<16} {i.shape}")
    typer.echo("outputs:")
    for o in generator.session.get_outputs():
        typer.echo(f"  {o.name:<8} {o.type:<16} {o.shape}")
    parity = generator.info.parity
    if parity:
        typer.echo(f"parity ({parity['precision']} vs {parity['reference']}): "
                   + ", ".join(f"batch {b['batch']} max abs {b['max_abs']:.1e}" for b in parity["batches"])
                   + f"; {'ok' if parity['ok'] else 'FAILED'}")
    if "parity_vs_fp32" in meta:
        versus = json.loads(meta["parity_vs_fp32"])
        typer.echo(f"{generator.info.precision} vs the fp32 model: {_versus_line(versus['batches'])}")
    typer.echo(f"providers available: {', '.join(available_providers())}")


# ---------------------------------------------------------------- evaluate

@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="An exported generator (.onnx).")],
    classifier: Annotated[Path, typer.Option(help="An exported classifier of the same data.")],
    data_dir: Annotated[Path, typer.Option(help="Folder with the real data's IDX files.")],
    n: Annotated[int, typer.Option("-n", "--num", help="Generated (and real) images to compare.")] = 10000,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    k: Annotated[int, typer.Option(help="Neighbours for precision/recall/density/coverage.")] = 5,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every figure here.")] = None,
) -> None:
    """Measure a generator offline, through onnxruntime: FCD, accuracy, coverage, PRDC.

    Example: ganpack evaluate exported/mnist-cgan.onnx --classifier exported/mnist-classifier.onnx
    --data-dir ../shared/data/mnist --json exported/mnist-cgan.eval.json
    """
    import json

    from gan_pack.evaluate import evaluate_generator, format_report
    from gan_pack.files import write_text_atomic

    if json_out is not None:
        _check_writable(json_out)
    result = evaluate_generator(model, classifier, data_dir, n=n, seed=seed, k=k)
    typer.echo(format_report(result))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


@app.command("train-classifier")
def train_classifier(
    data_dir: Annotated[str, typer.Option(help="Folder with the four IDX files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx classifier to write.")],
    dataset: Annotated[str, typer.Option(help="mnist or fashion-mnist.")] = "mnist",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 12,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Train the small CNN that `evaluate` measures in, and export it to ONNX.

    Example: ganpack train-classifier --dataset mnist --data-dir ../shared/data/mnist
    -o exported/mnist-classifier.onnx
    """
    from gan_pack.classifier import ClassifierConfig, export_classifier
    from gan_pack.classifier import train_classifier as fit
    from gan_pack.export import check_output_path

    config = ClassifierConfig(dataset=dataset, data_dir=data_dir, epochs=epochs,
                              batch_size=batch_size, device=device, seed=seed)
    check_output_path(output)
    model, acc = fit(config, log=lambda line: typer.echo(line, err=True))
    export_classifier(model, output, config, acc)
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e3:.0f} KB), test accuracy {100 * acc:.2f}%")


# ---------------------------------------------------------------- report and runs

def _warn(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (the --out of `ganpack train`).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file (default RUN/report.html).")] = None,
    png: Annotated[Optional[Path], typer.Option(help="Also write a one-image summary PNG here.")] = None,
) -> None:
    """One self-contained HTML page of a run: settings, curves, grids, parity and metadata.

    Example: ganpack report runs/demo -o report.html --png summary.png
    """
    from gan_pack.report import load_run, write_report, write_summary_png

    if output is not None:
        _check_writable(output)
    run = load_run(run_dir, warn=_warn)
    typer.echo(f"wrote {write_report(run, output)}")
    if png is not None:
        _check_writable(png)
        typer.echo(f"wrote {write_summary_png(run, png)}")


@app.command()
def runs(folder: Annotated[Path, typer.Argument(help="The folder that holds your runs.")] = Path("runs")) -> None:
    """A table of the runs in a folder, newest first.

    Example: ganpack runs runs/
    """
    from gan_pack.report import format_runs, list_runs

    rows = list_runs(folder)
    typer.echo(format_runs(rows) if rows else f"no runs in {folder}")


@app.command()
def quantize(
    model: Annotated[Path, typer.Argument(help="An exported fp32 generator (.onnx).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: NAME.int8.onnx beside it.")] = None,
    mode: Annotated[str, typer.Option(help="auto (dynamic for MLPs, static for convolutional generators), static (calibrated, QDQ) or dynamic.")] = "auto",
    calibration_n: Annotated[int, typer.Option(help="Noise samples for static calibration.")] = 512,
    seed: Annotated[int, typer.Option(help="Calibration noise seed.")] = 0,
) -> None:
    """Make an int8 variant of an exported generator (onnxruntime quantization; needs onnx).

    Example: ganpack quantize exported/mnist-cgan-mlp.onnx -o mnist-cgan-mlp.int8.onnx
    """
    from gan_pack.quantize import quantize_generator

    result = quantize_generator(model, output, mode, calibration_n, seed)
    path = Path(result["output"])
    typer.echo(f"parity vs fp32: {_versus_line(result['batches'])}")
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, was {model.stat().st_size / 1e6:.2f} MB)")

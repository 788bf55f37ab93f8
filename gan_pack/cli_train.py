"""The commands that need torch: train, export, train-classifier. Registered on the app in cli.py;
torch-side modules are imported inside each command, so `ganpack --help` and the torch-free
commands never load torch."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.config import Arch, Dataset, Device, Loss, Model
from gan_pack.contract import Precision, Weights
from gan_pack.errors import GanPackError

START, DATA, NETS, OPTIM, RUN, EVAL = ("Start here", "Data", "Networks and loss", "Optimizer and EMA",
                                       "Where it runs", "In-training evaluation")


def _plain(value):
    return value.value if isinstance(value, Enum) else value


def _require_torch() -> None:
    """One line instead of a ModuleNotFoundError traceback in the runtime-only install."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise GanPackError("this command needs torch, which this install lacks: "
                           "pip install 'gan-pack[train]' (the runtime alone samples, evaluates and reports)")


def train(
    ctx: typer.Context,
    model: Annotated[Model, typer.Option(help="gan, or cgan (conditional on the class label).", rich_help_panel=START)] = Model.gan,
    epochs: Annotated[int, typer.Option(help="Total epochs (a resumed run continues up to this).", rich_help_panel=START)] = 10,
    data_dir: Annotated[Optional[str], typer.Option(help="Folder with the IDX files (offline) or the images.", rich_help_panel=START)] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Run folder to write.", rich_help_panel=START)] = "runs/run",
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.", rich_help_panel=START)] = False,
    dataset: Annotated[Dataset, typer.Option(help="mnist, fashion-mnist, or folder (an image folder).", rich_help_panel=DATA)] = Dataset.mnist,
    image_size: Annotated[int, typer.Option(help="Image side in pixels (dcgan: 28, 32 or 64).", rich_help_panel=DATA)] = 28,
    channels: Annotated[int, typer.Option(help="1 (grayscale) or 3 (RGB).", rich_help_panel=DATA)] = 1,
    arch: Annotated[Arch, typer.Option(help="mlp (the classic tutorial pair) or dcgan (convolutional).", rich_help_panel=NETS)] = Arch.mlp,
    noise_dim: Annotated[int, typer.Option(help="Dimension of the standard-normal noise.", rich_help_panel=NETS)] = 100,
    width: Annotated[int, typer.Option(help="dcgan base channel count.", rich_help_panel=NETS)] = 64,
    d_width: Annotated[Optional[int], typer.Option(help="dcgan D base channel count (default: --width).", rich_help_panel=NETS)] = None,
    loss: Annotated[Loss, typer.Option(help="bce (on logits), bce-prob (the tutorial's), or hinge.", rich_help_panel=NETS)] = Loss.bce,
    spectral_norm: Annotated[bool, typer.Option(help="Spectral normalisation in D.", rich_help_panel=NETS)] = False,
    late_label: Annotated[bool, typer.Option(help="dcgan cGAN: feed the label to D's last layer too.", rich_help_panel=NETS)] = False,
    mbstd: Annotated[int, typer.Option(help="dcgan D: a minibatch-variation plane over groups of this many images "
                                            "(0: off; --batch-size must be a multiple).", rich_help_panel=NETS)] = 0,
    r1: Annotated[float, typer.Option(help="R1 penalty weight gamma: D's loss gains gamma/2 |grad D(real)|^2 (0: off).",
                                      rich_help_panel=NETS)] = 0.0,
    augment: Annotated[str, typer.Option(help="D sees real and fake through these augmentations, comma-separated: "
                                              "translation, cutout (default: none).", rich_help_panel=NETS)] = "",
    batch_size: Annotated[int, typer.Option(help="Images per step.", rich_help_panel=OPTIM)] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate, both networks.", rich_help_panel=OPTIM)] = 2e-4,
    lr_d: Annotated[Optional[float], typer.Option(help="Discriminator learning rate (default: --lr).", rich_help_panel=OPTIM)] = None,
    lr_decay_from: Annotated[Optional[int], typer.Option(
        help="From this epoch on, both learning rates fall linearly to 1/(n+1) of theirs in the last epoch "
             "(n = epochs left); may be set when resuming (default: constant).", rich_help_panel=OPTIM)] = None,
    beta1: Annotated[float, typer.Option(help="Adam beta1.", rich_help_panel=OPTIM)] = 0.5,
    beta2: Annotated[float, typer.Option(help="Adam beta2.", rich_help_panel=OPTIM)] = 0.999,
    ema: Annotated[bool, typer.Option(help="Keep an EMA of G's weights for samples and export.", rich_help_panel=OPTIM)] = True,
    ema_decay: Annotated[float, typer.Option(help="EMA decay per step.", rich_help_panel=OPTIM)] = 0.999,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same CPU run.", rich_help_panel=OPTIM)] = 0,
    device: Annotated[Device, typer.Option(help="auto, cpu or cuda.", rich_help_panel=RUN)] = Device.auto,
    fast: Annotated[bool, typer.Option(help="Data on the device, fused Adam, and on one GPU the whole step as a CUDA "
                                            "graph; --no-fast: DataLoader, eager steps. Same math.", rich_help_panel=RUN)] = True,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast for the forward passes (GPUs with bf16).", rich_help_panel=RUN)] = False,
    log_every: Annotated[int, typer.Option(help="Steps between lines of metrics.jsonl.", rich_help_panel=RUN)] = 100,
    tensorboard: Annotated[bool, typer.Option(help="Also log to TensorBoard (tensorboard --logdir runs/).", rich_help_panel=RUN)] = False,
    eval_every: Annotated[int, typer.Option(help="Evaluate the EMA generator every K epochs (0: never).", rich_help_panel=EVAL)] = 0,
    classifier: Annotated[Optional[str], typer.Option(help="Exported classifier for --eval-every.", rich_help_panel=EVAL)] = None,
    eval_n: Annotated[int, typer.Option(help="Images per in-training evaluation.", rich_help_panel=EVAL)] = 5000,
) -> None:
    """Train a generator; writes config.json, checkpoint.pt, metrics.jsonl and samples/ into --out.

    Example: ganpack train --model cgan --epochs 3 --data-dir ../shared/data/mnist --out runs/demo
    """
    _require_torch()
    from gan_pack.checkpoint import resume_settings
    from gan_pack.config import TrainConfig
    from gan_pack.train import train as train_run

    settings = {k: _plain(v) for k, v in ctx.params.items() if k != "resume"}
    if resume:
        given = {k for k in settings if ctx.get_parameter_source(k).name in ("COMMANDLINE", "ENVIRONMENT")}
        settings = resume_settings(settings["out"], settings, given)
    trainer = train_run(TrainConfig.from_dict(settings), resume=resume, monitors=[ConsoleMonitor(resume)])
    if trainer.world.main:
        typer.echo(f"done: {trainer.epoch} epochs, {trainer.step} steps; samples in {trainer.run_dir}/samples/", err=True)


class ConsoleMonitor:
    """What `ganpack train` prints on stderr: a line at the start and per epoch, and on a terminal a
    progress bar for the epoch under way."""

    def __init__(self, resumed: bool):
        self.resumed, self.bar, self.last = resumed, None, {}

    def on_start(self, trainer) -> None:
        recipe = trainer.config.recipe
        where = f"from epoch {trainer.epoch} " if self.resumed else ""
        typer.echo(f"training {recipe.model} ({recipe.arch}) on {recipe.dataset} ({trainer.info.size} images, "
                   f"{trainer.device}) {where}-> {trainer.run_dir}", err=True)

    def on_epoch_start(self, trainer) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(f"epoch {trainer.epoch + 1}/{trainer.config.schedule.epochs}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[stats]}"),
                            transient=True, disable=not sys.stderr.isatty())
        self.task = self.bar.add_task("train", total=len(trainer.batches), stats="")
        self.first_step = trainer.step
        self.bar.start()

    def on_record(self, trainer, record: dict) -> None:
        if record.get("eval"):
            return
        self.last = record
        stats = f"d {record['d_loss']:.3f} g {record['g_loss']:.3f} {record['images_per_s']:.0f} img/s"
        self.bar.update(self.task, completed=record["step"] - self.first_step, stats=stats)

    def on_epoch_end(self, trainer) -> list[dict]:
        self.bar.stop()
        r = self.last
        typer.echo(f"epoch {trainer.epoch}/{trainer.config.schedule.epochs}  step {trainer.step}  "
                   f"d_loss {r.get('d_loss')}  g_loss {r.get('g_loss')}  D(x) {r.get('d_x')}  "
                   f"D(G(z)) {r.get('d_g_z')}  {r.get('images_per_s')} images/s", err=True)
        return []

    def on_end(self, trainer) -> None:
        pass


def export(
    source: Annotated[Path, typer.Argument(help="A run folder or its checkpoint.pt.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    weights: Annotated[Weights, typer.Option(help="ema (default) or raw generator weights.")] = Weights.ema,
    opset: Annotated[int, typer.Option(help="ONNX opset (18..23).")] = 18,
    atol: Annotated[Optional[float], typer.Option(help="Parity bound: max abs difference vs PyTorch (default 1e-4 fp32, 2e-2 fp16); for int8 the mean abs difference vs the fp32 export (default 0.15).")] = None,
    precision: Annotated[Precision, typer.Option(
        help="fp32, fp16 (half weights and compute, float32 I/O) or int8 (quantization of the fp32 export).")] = Precision.fp32,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
) -> None:
    """Export a trained generator to one self-contained .onnx file and prove it matches PyTorch.

    Example: ganpack export runs/demo -o runs/demo.onnx
    """
    _require_torch()
    from gan_pack.contract import parity_path
    from gan_pack.export import ExportOptions, export_generator

    options = ExportOptions(weights=weights.value, opset=opset, atol=atol, precision=precision.value,
                            allow_mismatch=allow_mismatch)
    show_parity(export_generator(source, output, options))
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB) and {parity_path(output)}")


def show_parity(reports) -> None:
    """Each parity table on stdout; a failure written anyway (--allow-mismatch) loudly on stderr."""
    for report in reports:
        typer.echo(report.table())
        if not report.ok:
            typer.echo(f"WARNING: parity FAILED ({report.first_failure()}); written anyway because of "
                       f"--allow-mismatch", err=True)


def train_classifier(
    data_dir: Annotated[str, typer.Option(help="Folder with the four IDX files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx classifier to write.")],
    dataset: Annotated[str, typer.Option(help="mnist or fashion-mnist.")] = "mnist",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 12,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    device: Annotated[Device, typer.Option(help="auto, cpu or cuda.")] = Device.auto,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Train the small CNN that `evaluate` measures in, and export it to ONNX.

    Example: ganpack train-classifier --dataset mnist --data-dir ../shared/data/mnist
    -o runs/mnist-classifier.onnx
    """
    _require_torch()
    from gan_pack.classifier import ClassifierConfig, export_classifier
    from gan_pack.classifier import train_classifier as fit
    from gan_pack.files import check_output_path

    config = ClassifierConfig(dataset=dataset, data_dir=data_dir, epochs=epochs,
                              batch_size=batch_size, device=device.value, seed=seed)
    check_output_path(output, ".onnx")
    model, acc = fit(config, log=lambda line: typer.echo(line, err=True))
    export_classifier(model, output, config, acc)
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e3:.0f} KB), test accuracy {100 * acc:.2f}%")

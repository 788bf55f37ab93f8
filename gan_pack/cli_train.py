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
from gan_pack.errors import GanPackError, Interrupted

START, DATA, NETS, OPTIM, RUN, EVAL = ("Start here", "Data", "Networks and loss", "Optimizer and EMA",
                                       "Where it runs", "In-training evaluation")


def _option(help: str, panel: str, *names: str):
    return typer.Option(*names, help=help, rich_help_panel=panel)


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
    model: Annotated[Model, _option("gan, or cgan (conditional on the class label).", START)] = Model.gan,
    epochs: Annotated[int, _option("Total epochs (a resumed run continues up to this).", START)] = 10,
    data_dir: Annotated[Optional[str], _option("Folder with the IDX files (offline) or the images.", START)] = None,
    out: Annotated[str, _option("Run folder to write.", START, "--out", "-o")] = "runs/run",
    resume: Annotated[bool, _option("Continue the run in --out from its last checkpoint.", START)] = False,
    dataset: Annotated[Dataset, _option("mnist, fashion-mnist, or folder (an image folder).", DATA)] = Dataset.mnist,
    image_size: Annotated[int, _option("Image side in pixels (dcgan: 28, 32 or 64).", DATA)] = 28,
    channels: Annotated[int, _option("1 (grayscale) or 3 (RGB).", DATA)] = 1,
    arch: Annotated[Arch, _option("mlp (the classic tutorial pair) or dcgan (convolutional).", NETS)] = Arch.mlp,
    noise_dim: Annotated[int, _option("Dimension of the standard-normal noise.", NETS)] = 100,
    width: Annotated[int, _option("dcgan base channel count.", NETS)] = 64,
    d_width: Annotated[Optional[int], _option("dcgan D base channel count (default: --width).", NETS)] = None,
    loss: Annotated[Loss, _option("bce (on logits), bce-prob (the tutorial's), or hinge.", NETS)] = Loss.bce,
    spectral_norm: Annotated[bool, _option("Spectral normalisation in D.", NETS)] = False,
    late_label: Annotated[bool, _option("dcgan cGAN: feed the label to D's last layer too.", NETS)] = False,
    mbstd: Annotated[int, _option("dcgan D: a minibatch-variation plane over groups of this many images "
                                  "(0: off; --batch-size must be a multiple).", NETS)] = 0,
    r1: Annotated[float, _option("R1 penalty weight gamma: D's loss gains gamma/2 |grad D(real)|^2 (0: off).",
                                 NETS)] = 0.0,
    augment: Annotated[str, _option("D sees real and fake through these augmentations, comma-separated: "
                                    "translation, cutout (default: none).", NETS)] = "",
    batch_size: Annotated[int, _option("Images per step.", OPTIM)] = 64,
    lr: Annotated[float, _option("Adam learning rate, both networks.", OPTIM)] = 2e-4,
    lr_d: Annotated[Optional[float], _option("Discriminator learning rate (default: --lr).", OPTIM)] = None,
    lr_decay_from: Annotated[Optional[int], _option(
        "From this epoch on, both learning rates fall linearly to 1/(n+1) of theirs in the last epoch "
        "(n = epochs left); may be set when resuming (default: constant).", OPTIM)] = None,
    beta1: Annotated[float, _option("Adam beta1.", OPTIM)] = 0.5,
    beta2: Annotated[float, _option("Adam beta2.", OPTIM)] = 0.999,
    ema: Annotated[bool, _option("Keep an EMA of G's weights for samples and export.", OPTIM)] = True,
    ema_decay: Annotated[float, _option("EMA decay per step.", OPTIM)] = 0.999,
    seed: Annotated[int, _option("Seed: the same seed gives the same CPU run.", OPTIM)] = 0,
    device: Annotated[Device, _option("auto, cpu or cuda.", RUN)] = Device.auto,
    fast: Annotated[bool, _option("Data on the device, fused Adam, and on one GPU the whole step as a CUDA "
                                            "graph; --no-fast: DataLoader, eager steps. Same math.", RUN)] = True,
    bf16: Annotated[bool, _option("bf16 autocast for the forward passes (GPUs with bf16).", RUN)] = False,
    log_every: Annotated[int, _option("Steps between lines of metrics.jsonl.", RUN)] = 100,
    tensorboard: Annotated[bool, _option("Also log to TensorBoard (tensorboard --logdir runs/).", RUN)] = False,
    eval_every: Annotated[int, _option("Evaluate the EMA generator every K epochs (0: never).", EVAL)] = 0,
    classifier: Annotated[Optional[str], _option("Exported classifier for --eval-every.", EVAL)] = None,
    eval_n: Annotated[int, _option("Images per in-training evaluation.", EVAL)] = 5000,
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
    config = TrainConfig.from_dict(settings)
    try:
        trainer = train_run(config, resume=resume, monitors=[ConsoleMonitor(resume)])
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(Path(config.run.out))) from None
    if trainer.world.main:
        typer.echo(f"done: {trainer.epoch} epochs, {trainer.step} steps; samples in {trainer.run_dir}/samples/",
                   err=True)


def interrupted_message(run_dir: Path) -> str:
    from gan_pack.checkpoint import CHECKPOINT_NAME

    if (run_dir / CHECKPOINT_NAME).is_file():
        return (f"the run in {run_dir} keeps its last checkpoint; continue it with "
                f"ganpack train --resume --out {run_dir}")
    return "stopped before the first checkpoint, so there is nothing to resume; run the same command again"


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


OWN = "Your own generator (a state dict and the class that builds it)"


class Tutorial(str, Enum):
    gan = "tutorial-gan"
    cgan = "tutorial-cgan"


class Rewrite(str, Enum):
    auto = "auto"
    on = "on"
    off = "off"


class LabelInput(str, Enum):
    index = "index"
    onehot = "onehot"


def export(
    source: Annotated[Path, typer.Argument(help="A run folder or its checkpoint.pt; or, with --module or --from, "
                                                "a state dict (generator.pth).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    weights: Annotated[Weights, typer.Option(help="ema (default) or raw generator weights of a run.")] = Weights.ema,
    opset: Annotated[int, typer.Option(help="ONNX opset (18..23).")] = 18,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: max abs difference from PyTorch (default 1e-4 fp32, 2e-2 fp16); for int8, mean "
             "abs difference from the fp32 export (default 0.15).")] = None,
    precision: Annotated[Precision, typer.Option(
        help="fp32, fp16 (half weights and compute, float32 I/O) or int8 (quantized fp32 export).")] = Precision.fp32,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
    rewrite: Annotated[Rewrite, typer.Option(
        help="Transposed convolutions as phase convolutions, thin convolutions as a matrix product: auto "
             "(kept where they measure faster on this CPU), on, or off.")] = Rewrite.auto,
    module: Annotated[Optional[str], _option("FILE.py:ClassName of your generator (imports that file).", OWN)] = None,
    init: Annotated[Optional[str], _option("JSON keyword arguments for the class, e.g. '{\"ngpu\": 1}'.", OWN)] = None,
    tutorial: Annotated[Optional[Tutorial], _option(
        "The classic MNIST tutorial's generator (sizes read from the weights).", OWN, "--from")] = None,
    noise_dim: Annotated[Optional[int], _option("Length of the noise vector (needed with --module).", OWN)] = None,
    num_classes: Annotated[Optional[int], _option("Classes of a conditional generator (0: none).", OWN)] = None,
    class_names: Annotated[Optional[str], _option("Comma-separated class names, for the metadata.", OWN)] = None,
    dataset: Annotated[str, _option("What it was trained on, for the metadata.", OWN)] = "unknown",
    image_shape: Annotated[Optional[str], _option("C,H,W of an image (default: from the output).", OWN)] = None,
    noise_shape: Annotated[Optional[str], _option(
        "The noise shape your forward takes per sample, e.g. 100,1,1 (default: flat).", OWN)] = None,
    label_input: Annotated[LabelInput, _option("What your forward takes as labels: index or onehot.", OWN)] \
        = LabelInput.index,
    output_range: Annotated[str, _option("Your output's range: -1,1 (Tanh) or 0,1 (Sigmoid).", OWN)] = "-1,1",
) -> None:
    """Export a generator to one self-contained .onnx file and prove it matches PyTorch.

    Examples: ganpack export runs/demo -o runs/demo.onnx;
    ganpack export generator.pth --from tutorial-cgan -o mnist-cgan.onnx;
    ganpack export netG.pth --module models.py:Generator --noise-dim 100 --noise-shape 100,1,1 -o dcgan.onnx
    """
    _require_torch()
    from gan_pack.contract import parity_path
    from gan_pack.export import ExportOptions, check_outputs, export_generator, write_package

    options = ExportOptions(weights=weights.value, opset=opset, atol=atol, precision=precision.value,
                            allow_mismatch=allow_mismatch, rewrite=rewrite.value)
    own = {"--noise-dim": noise_dim, "--num-classes": num_classes, "--class-names": class_names,
           "--image-shape": image_shape, "--noise-shape": noise_shape, "--init": init}
    if module is None and tutorial is None:
        given = [flag for flag, value in own.items() if value is not None]
        if given:
            raise GanPackError(f"{', '.join(given)} describe your own generator: add --module FILE.py:Class or --from")
        show_parity(export_generator(source, output, options))
    else:
        from gan_pack.importer import package_file, parse_init

        if module is not None and tutorial is not None:
            raise GanPackError("give either --module (your class) or --from (the tutorial's), not both")
        settings = {"noise_dim": noise_dim, "num_classes": num_classes, "dataset": dataset,
                    "class_names": [c.strip() for c in class_names.split(",")] if class_names else [],
                    "image_shape": _ints("--image-shape", image_shape),
                    "noise_shape": _ints("--noise-shape", noise_shape),
                    "label_input": label_input.value, "output_range": _range(output_range),
                    "source": module or tutorial.value, "arch": tutorial.value if tutorial else "imported"}
        output = check_outputs(output)
        packaged = package_file(source, settings, module, parse_init(init), tutorial.value if tutorial else None)
        show_parity(write_package(packaged, output, options))
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB) and {parity_path(output)}")


def _ints(flag: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise GanPackError(f"{flag} takes comma-separated integers like 1,28,28, not {text!r}") from None
    if not values or min(values) < 1:
        raise GanPackError(f"{flag} takes positive sizes, not {text!r}")
    return values


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise GanPackError(f"--output-range takes -1,1 or 0,1, not {text!r}") from None
    return low, high


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

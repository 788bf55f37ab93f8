"""The training commands, train and train-classifier. They need torch, which is imported only when
they run, so `ganpack --help` and the torch-free commands never load it. `train`'s options are
TrainConfig's fields (pytorch/config.py declares each once, with its help and panel)."""

from __future__ import annotations

import inspect
import sys
import time
import typing
from dataclasses import MISSING, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.contract.choices import Device
from gan_pack.errors import GanPackError, Interrupted
from gan_pack.pytorch.config import GROUPS, PANELS, START

PROGRESS_EVERY = 30             # seconds between progress lines when stderr is not a terminal


def require_torch() -> None:
    """One line instead of a ModuleNotFoundError traceback in an install without torch."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        from gan_pack.core.extras import install_hint

        raise GanPackError(f"this command needs torch, which this install lacks: {install_hint('train')}; the "
                           f"base install samples, evaluates and verifies")


def _option_type(hint, choices):
    """The type typer parses a setting as: its Enum for a choice, else the field's own (Optional kept)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = choices or (args[0] if args else hint)
    return Optional[base] if args else base


def config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per TrainConfig setting, with its default, help and panel."""
    params = []
    for group in GROUPS.values():
        hints = typing.get_type_hints(group)
        for f in fields(group):
            meta = f.metadata
            default = f.default if f.default is not MISSING else None
            if meta["choices"] is not None:
                default = meta["choices"](default)
            option = typer.Option(*meta["flags"], help=meta["help"], rich_help_panel=meta["panel"])
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[_option_type(hints[f.name], meta["choices"]),
                                                                 option]))
    return sorted(params, key=lambda p: PANELS.index(p.annotation.__metadata__[0].rich_help_panel))


def _train(ctx: typer.Context, **settings) -> None:
    """Train a generator; writes config.json, checkpoint.pt, metrics.jsonl and samples/ into --out.

    Example: ganpack train --model cgan --epochs 3 --data-dir ../shared/data/mnist --out runs/demo
    """
    require_torch()
    from gan_pack.pytorch.checkpoint import resume_settings
    from gan_pack.pytorch.config import TrainConfig
    from gan_pack.pytorch.host import keep_freed_memory
    from gan_pack.pytorch.train import train as train_run

    keep_freed_memory()           # a CPU step reuses its freed activations instead of faulting in new pages

    resume = settings.pop("resume")
    settings = {k: v.value if isinstance(v, Enum) else v for k, v in settings.items()}
    if resume:
        given = {k for k in settings if ctx.get_parameter_source(k).name in ("COMMANDLINE", "ENVIRONMENT")}
        settings = resume_settings(settings["out"], settings, given)
    config = TrainConfig.from_dict(settings)
    if config.recipe.model == "sr":
        from gan_pack.pytorch.sr_train import GENERATOR_FILE, train_sr

        run_dir = train_sr(config, resume)
        typer.echo(f"done: {run_dir / GENERATOR_FILE} (export it with: ganpack export {run_dir} -o NAME.onnx)",
                   err=True)
        return
    try:
        trainer = train_run(config, resume=resume, monitors=[ConsoleMonitor(resume)])
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(Path(config.run.out))) from None
    if trainer.world.main:
        typer.echo(f"done: {trainer.epoch} epochs, {trainer.step} steps; samples in {trainer.run_dir}/samples/",
                   err=True)


def train_command():
    """`ganpack train`: _train with TrainConfig's settings and --resume as its options."""
    resume = inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option(help="Continue the run in --out from its last checkpoint.", rich_help_panel=START)])
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    params = config_parameters()
    at = max(i for i, p in enumerate(params) if p.annotation.__metadata__[0].rich_help_panel == START) + 1
    _train.__signature__ = inspect.Signature([context, *params[:at], resume, *params[at:]])  # type: ignore[attr-defined]
    return _train


def interrupted_message(run_dir: Path) -> str:
    from gan_pack.pytorch.checkpoint import CHECKPOINT_NAME

    if (run_dir / CHECKPOINT_NAME).is_file():
        return (f"the run in {run_dir} keeps its last checkpoint; continue it with "
                f"ganpack train --resume --out {run_dir}")
    return "stopped before the first checkpoint, so there is nothing to resume; run the same command again"


class ConsoleMonitor:
    """What `ganpack train` prints on stderr: a line at the start and per epoch; within an epoch, on a
    terminal a progress bar, elsewhere (a log file, CI) a line every PROGRESS_EVERY seconds."""

    def __init__(self, resumed: bool, every: float = PROGRESS_EVERY):
        self.resumed, self.bar, self.last, self.every = resumed, None, {}, every
        self.terminal, self.last_line = sys.stderr.isatty(), time.monotonic()

    def on_start(self, trainer) -> None:
        recipe = trainer.config.recipe
        where = f"from epoch {trainer.epoch} " if self.resumed else ""
        typer.echo(f"training {recipe.model} ({recipe.arch}) on {recipe.dataset} ({trainer.info.size} images, "
                   f"{trainer.device}) {where}-> {trainer.run_dir}", err=True)

    def on_epoch_start(self, trainer) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(f"epoch {trainer.epoch + 1}/{trainer.config.schedule.epochs}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[stats]}"),
                            transient=True, disable=not self.terminal)
        self.task = self.bar.add_task("train", total=len(trainer.batches), stats="")
        self.first_step, self.started = trainer.step, time.monotonic()
        self.bar.start()

    def on_record(self, trainer, record: dict) -> None:
        if record.get("eval"):
            return
        self.last = record
        stats = f"d {record['d_loss']:.3f} g {record['g_loss']:.3f} {record['images_per_s']:.0f} img/s"
        self.bar.update(self.task, completed=record["step"] - self.first_step, stats=stats)
        if not self.terminal and time.monotonic() - self.last_line >= self.every:
            typer.echo(f"  epoch {trainer.epoch + 1}/{trainer.config.schedule.epochs}  step "
                       f"{record['step'] - self.first_step}/{len(trainer.batches)}  {stats}", err=True)
            self.last_line = time.monotonic()

    def on_epoch_end(self, trainer) -> list[dict]:
        self.bar.stop()
        r = self.last
        # the epoch's own rate, its first steps' warm-up included: the log's last window would say more
        seconds = time.monotonic() - self.started
        rate = (trainer.step - self.first_step) * trainer.config.recipe.batch_size / max(seconds, 1e-9)
        typer.echo(f"epoch {trainer.epoch}/{trainer.config.schedule.epochs}  step {trainer.step}  "
                   f"d_loss {r.get('d_loss')}  g_loss {r.get('g_loss')}  D(x) {r.get('d_x')}  "
                   f"D(G(z)) {r.get('d_g_z')}  {rate:.0f} images/s over {seconds:.1f} s", err=True)
        self.last_line = time.monotonic()
        return []

    def on_end(self, trainer) -> None:
        pass


def train_classifier(
    data_dir: Annotated[str, typer.Option(help="Folder with the four IDX files; for --dataset folder, with train/ "
                                               "and test/, each holding one subfolder per class.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx classifier to write.")],
    dataset: Annotated[str, typer.Option(help="mnist, fashion-mnist or folder.")] = "mnist",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 12,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    image_size: Annotated[int, typer.Option(help="--dataset folder: the generator's image side.")] = 28,
    channels: Annotated[int, typer.Option(help="--dataset folder: the generator's channels, 1, 3 or 4 (RGBA, "
                                               "composited over --background inside the classifier).")] = 1,
    background: Annotated[str, typer.Option(help="What transparent images are seen over: white, black, grey or "
                                                 "#rrggbb.")] = "white",
    device: Annotated[Device, typer.Option(help="auto, cpu or cuda.")] = Device.auto,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Train the small CNN that `evaluate` measures in, and export it to ONNX.

    Examples: ganpack train-classifier --dataset mnist --data-dir ../shared/data/mnist
    -o runs/mnist-classifier.onnx; ganpack train-classifier --dataset folder --data-dir ../shared/data/emoji
    --image-size 64 --channels 4 -o runs/emoji-classifier.onnx
    """
    require_torch()
    from gan_pack.core.files import check_output_path
    from gan_pack.pytorch.classifier import ClassifierConfig, export_classifier
    from gan_pack.pytorch.classifier import train_classifier as fit
    from gan_pack.pytorch.host import keep_freed_memory

    keep_freed_memory()
    config = ClassifierConfig(dataset=dataset, data_dir=data_dir, epochs=epochs, batch_size=batch_size,
                              device=device.value, seed=seed, image_size=image_size, channels=channels,
                              background=background)
    check_output_path(output, ".onnx")
    model, acc = fit(config, log=lambda line: typer.echo(line, err=True))
    export_classifier(model, output, config, acc)
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e3:.0f} KB), test accuracy {100 * acc:.2f}%")

"""The Trainer, built whole by one factory, and the epoch loop.

`train(config)` is what `ganpack train` runs: build (or restore) a Trainer, then for each epoch
set the learning rates, run the steps, recalibrate the EMA generator, save the checkpoint and let
the monitors (grids, TensorBoard, evaluation, the caller's) see it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from gan_pack.core import runlog
from gan_pack.core.files import check_output_path, remove_orphans
from gan_pack.errors import CheckpointError, ConfigError
from gan_pack.pytorch.checkpoint import (
    BEST_CHECKPOINT_NAME,
    CHECKPOINT_NAME,
    check_resume_config,
    check_same_data,
    checkpoint_data,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from gan_pack.pytorch.config import Recipe, TrainConfig
from gan_pack.pytorch.data import Batches, load_dataset, make_batches, subclass_classes
from gan_pack.pytorch.data_facts import DatasetInfo
from gan_pack.pytorch.distributed import World, barrier, join, leave, mean_over_processes, resolve_device, wrap
from gan_pack.pytorch.ema import EMA, recalibrate_batchnorm
from gan_pack.pytorch.models import build_discriminator, build_generator
from gan_pack.pytorch.monitor import InTrainingEvaluation, Monitor, SampleGrids, TensorBoardLogger
from gan_pack.pytorch.step import EagerStep, GraphedStep, Networks, StepSettings, lr_for_graphs, make_step


@dataclass
class Trainer:
    """Everything a run holds in memory: settings, models and optimizers, data, counters."""

    config: TrainConfig
    info: DatasetInfo
    device: torch.device
    world: World
    run_dir: Path
    nets: Networks
    settings: StepSettings
    batches: Batches
    run_step: EagerStep | GraphedStep
    epoch: int = 0
    step: int = 0

    @property
    def generator(self) -> nn.Module:
        return self.nets.generator

    @property
    def discriminator(self) -> nn.Module:
        return self.nets.discriminator

    @property
    def ema(self) -> EMA | None:
        return self.nets.ema

    @property
    def sampling_generator(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.generator

    def new_step(self) -> EagerStep | GraphedStep:
        return make_step(self.nets, self.settings, self.batches, self.config.run.fast, self.world.size)


def check_process_batch(recipe: Recipe, world: World) -> None:
    """Under torchrun each process gets batch_size / N images: a --mbstd group must fit in that."""
    local_batch = recipe.batch_size // world.size
    if recipe.mbstd and local_batch % recipe.mbstd:
        raise ConfigError(f"each of the {world.size} processes gets {local_batch} images a step, not a "
                          f"multiple of --mbstd {recipe.mbstd}: a group would mix real and fake "
                          f"images; pick a --batch-size that is a multiple of {world.size * recipe.mbstd}")


def build_networks(recipe: Recipe, info: DatasetInfo, device: torch.device, fast: bool,
                   world: World = World(), channels_last: bool = False) -> Networks:
    """Models and optimizers for a recipe; seeds torch so a CPU run is reproducible.

    --fast uses fused Adam (capturable on one GPU, for the CUDA graph); --no-fast the default
    (foreach) Adam. The math is the same."""
    torch.manual_seed(recipe.seed)
    generator = build_generator(recipe, info.num_classes, info.image_shape, info.subclass_counts).to(device)
    # With --subclasses D's labels are the subclasses: a projection head for each.
    discriminator = build_discriminator(recipe, sum(info.subclass_counts) or info.num_classes,
                                        info.image_shape).to(device)
    if channels_last and device.type == "cuda" and recipe.arch != "mlp":
        generator = generator.to(memory_format=torch.channels_last)
        discriminator = discriminator.to(memory_format=torch.channels_last)
    betas = (recipe.beta1, recipe.beta2)
    fused = {"fused": True, "capturable": device.type == "cuda" and world.size == 1} if fast else {}
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=recipe.lr, betas=betas, **fused)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=recipe.discriminator_lr, betas=betas, **fused)
    for optimizer in (g_optimizer, d_optimizer):
        lr_for_graphs(optimizer)
    ema = EMA(generator, recipe.ema_decay) if recipe.ema else None
    nets = Networks(generator, discriminator, g_optimizer, d_optimizer, ema,
                    wrap(generator, device, world), wrap(discriminator, device, world))
    if world.rank:
        torch.manual_seed(recipe.seed + 7919 * world.rank)     # each process its own noise
    return nets


def build_trainer(config: TrainConfig, world: World = World()) -> Trainer:
    """A complete Trainer for a config: device, data, networks, the step. Writes nothing."""
    check_process_batch(config.recipe, world)
    device = resolve_device(config.run.device, world)
    images, labels, info = load_dataset(config.recipe, config.run.data_dir)
    balance = config.recipe.balance
    if balance and info.subclass_counts:                  # balance the classes, not the subclasses
        balance = subclass_classes(info.subclass_counts)[labels]
    batches = make_batches(images, labels, config.recipe.batch_size, device, config.run.fast,
                           config.recipe.seed, world.rank, world.size, balance)
    join(world, device)
    nets = build_networks(config.recipe, info, device, config.run.fast, world, config.run.channels_last)
    settings = StepSettings.of(config.recipe, info.num_classes, device)
    step = make_step(nets, settings, batches, config.run.fast, world.size)
    return Trainer(config, info, device, world, Path(config.run.out), nets, settings, batches, step)


def set_learning_rates(trainer: Trainer) -> None:
    """This epoch's learning rates (--lr-decay-from). The CUDA graph's optimizers hold theirs as
    tensors (lr_for_graphs), filled in place; a float rate is baked into a recorded graph, so a
    change of one drops the graph and the next steps record a new one."""
    recipe, factor = trainer.config.recipe, trainer.config.schedule.lr_factor(trainer.epoch)
    changed = False
    for optimizer, base in ((trainer.nets.g_optimizer, recipe.lr), (trainer.nets.d_optimizer, recipe.discriminator_lr)):
        for group in optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(base * factor)
                continue
            changed |= group["lr"] != base * factor
            group["lr"] = base * factor
    if changed and isinstance(trainer.run_step, GraphedStep) and trainer.run_step.graph is not None:
        trainer.run_step = trainer.new_step()


def run_epoch(trainer: Trainer, monitors: Sequence[Monitor] = ()) -> dict:
    """Train one epoch; host syncs only every log_every steps. Returns the last logged record."""
    log_every, record = trainer.config.run.log_every, {}
    sums, count = torch.zeros(4, device=trainer.device), 0
    trainer.generator.train()
    trainer.discriminator.train()
    started = time.perf_counter()
    for index, real, labels in trainer.batches.epoch(trainer.epoch):
        sums += trainer.run_step(index, real, labels)
        trainer.step += 1
        count += 1
        if count == log_every or trainer.step % len(trainer.batches) == 0:
            # tolist() waits for the device, so the interval's time includes its (async) work.
            means = mean_over_processes(sums / count, trainer.world).tolist()
            record = log_record(trainer, means, count, time.perf_counter() - started)
            if trainer.world.main:
                publish(trainer, [record], monitors)
            sums.zero_()
            count, started = 0, time.perf_counter()
    trainer.epoch += 1
    return record


def log_record(trainer: Trainer, means: list[float], steps: int, seconds: float) -> dict:
    d_loss, g_loss, d_real, d_fake = means
    return {"epoch": trainer.epoch + 1, "step": trainer.step, "d_loss": round(d_loss, 5),
            "g_loss": round(g_loss, 5), "d_x": round(d_real, 5), "d_g_z": round(d_fake, 5),
            "images_per_s": round(steps * trainer.config.recipe.batch_size / max(seconds, 1e-9), 1),
            "lr": round(float(trainer.nets.g_optimizer.param_groups[0]["lr"]), 10), "time": round(time.time(), 3)}


def publish(trainer: Trainer, records: list[dict], monitors: Sequence[Monitor]) -> None:
    """Write records to metrics.jsonl and show them to every monitor."""
    for record in records:
        runlog.append_metrics(trainer.run_dir, record)
        for monitor in monitors:
            monitor.on_record(trainer, record)


def finish_epoch_models(trainer: Trainer) -> None:
    """Recompute the EMA generator's BatchNorm statistics for its averaged weights."""
    if trainer.ema is not None:
        recalibrate_batchnorm(trainer.ema.model, trainer.config.recipe.noise_dim, trainer.info.num_classes,
                              trainer.device, seed=trainer.config.recipe.seed + trainer.epoch)


def prepare_run(config: TrainConfig, resume: bool, world: World = World()) -> Trainer:
    """Build (or restore) a Trainer and write its config.json; raise before writing on bad input.

    The caller holds the run folder's lock. A resumed run must find its data unchanged, and its
    metrics.jsonl is rewound to the checkpoint's step (the steps after it are trained again). A
    fresh run in a folder whose first checkpoint was never written starts a new log."""
    run_dir = Path(config.run.out)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(run_dir)
        check_resume_config(ckpt["config"], config)
        saved_data = checkpoint_data(ckpt, run_dir)
    elif (run_dir / CHECKPOINT_NAME).exists():
        raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it "
                              f"or choose another --out")
    trainer = build_trainer(config, world)
    if ckpt is not None:
        check_same_data(saved_data, trainer.info, config.run.data_dir)
        restore(trainer, ckpt, run_dir)
    if world.main:
        for name in (CHECKPOINT_NAME, BEST_CHECKPOINT_NAME):
            remove_orphans(run_dir / name)
        runlog.rewind_metrics(run_dir, trainer.step)
        runlog.write_config(run_dir, config.to_dict(), trainer.info.to_dict())
    return trainer


def standard_monitors(config: TrainConfig) -> list[Monitor]:
    """Grids always; the evaluation and TensorBoard when asked for. Built before the run folder is
    touched, so a missing classifier or tensorboard package fails first."""
    monitors: list[Monitor] = [SampleGrids()]
    if config.evaluation.eval_every:
        monitors.append(InTrainingEvaluation(config))
    if config.run.tensorboard:
        monitors.append(TensorBoardLogger())
    return monitors


def train(config: TrainConfig, resume: bool = False, monitors: Sequence[Monitor] = ()) -> Trainer:
    """Train to config.schedule.epochs total epochs, writing the run folder as it goes.

    Under torchrun every process trains and rank 0 alone writes (grids, checkpoints, logs,
    evaluations), holds the folder's lock and calls the monitors. Every check on the user's input
    happens before the run folder is touched; a fresh run that fails or is stopped before its first
    checkpoint removes the folder it created."""
    world = World.from_env()
    run_dir = check_output_path(config.run.out, folder=True)
    watching = [*standard_monitors(config), *monitors] if world.main else []
    created, lock = world.main and not run_dir.exists(), None
    try:
        lock = runlog.lock_run(run_dir) if world.main else None
        trainer = prepare_run(config, resume, world)
        train_epochs(trainer, watching)
    except BaseException:
        if lock is not None:
            lock.release()
        if created and not (run_dir / CHECKPOINT_NAME).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            lock.release()
        leave(world)
    return trainer


def train_epochs(trainer: Trainer, monitors: Sequence[Monitor]) -> None:
    for monitor in monitors:
        monitor.on_start(trainer)
    while trainer.epoch < trainer.config.schedule.epochs:
        set_learning_rates(trainer)
        for monitor in monitors:
            monitor.on_epoch_start(trainer)
        run_epoch(trainer, monitors)
        written = trainer.config.writes(trainer.epoch)
        if written:
            finish_epoch_models(trainer)
        if trainer.world.main:
            if written:
                save_checkpoint(trainer, trainer.run_dir)
            for monitor in monitors:
                publish(trainer, monitor.on_epoch_end(trainer), monitors)
        barrier(trainer.world)
    for monitor in monitors:
        monitor.on_end(trainer)

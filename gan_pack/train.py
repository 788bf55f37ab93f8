"""The training loop (D step, then G step), checkpoints and resume."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gan_pack.config import DatasetInfo, TrainConfig, dump_json
from gan_pack.data import Batches, load_dataset, make_batches
from gan_pack.distributed import World, barrier, join, leave, mean_over_processes, resolve_device, wrap
from gan_pack.errors import CheckpointError, ConfigError
from gan_pack.files import atomic_path, write_text_atomic
from gan_pack.images import save_grid
from gan_pack.models import EMA, build_discriminator, build_generator, recalibrate_batchnorm
from gan_pack.step import make_step

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
# Settings that may change when a run is resumed (where it runs, not what it trains).
# lr_decay_from too: a plateaued run is resumed with a decay tail.
RESUME_FREE = ("device", "data_dir", "out", "epochs", "log_every", "eval_every", "classifier", "eval_n", "tensorboard",
               "fast", "lr_decay_from")
GRID_COLUMNS = 10


@dataclass
class Trainer:
    """Everything a run holds in memory: models, optimizers, data, counters."""

    config: TrainConfig
    info: DatasetInfo
    device: torch.device
    generator: nn.Module
    discriminator: nn.Module
    ema: EMA | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    world: World = World()
    g_train: nn.Module | None = None      # what the step calls: the DDP wrapper when distributed
    d_train: nn.Module | None = None
    batches: Batches | None = None
    run_step: object = None              # EagerStep or GraphedStep (gan_pack.step)
    epoch: int = 0
    step: int = 0
    last_record: dict | None = None
    tensorboard: "TensorBoardLogger | None" = None

    @property
    def sampling_generator(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.generator


def build_trainer(config: TrainConfig, info: DatasetInfo, device: torch.device,
                  world: World = World()) -> Trainer:
    """Models and optimizers for a config; seeds torch so a CPU run is reproducible.

    --fast uses fused Adam (capturable on one GPU, for the CUDA graph); --no-fast the default
    (foreach) Adam. The math is the same."""
    local_batch = config.batch_size // world.size
    if config.mbstd and local_batch % config.mbstd:
        raise ConfigError(f"each of the {world.size} processes gets {local_batch} images a step, not a "
                          f"multiple of --mbstd {config.mbstd}: a group would mix real and fake "
                          f"images; pick a --batch-size that is a multiple of {world.size * config.mbstd}")
    torch.manual_seed(config.seed)
    generator = build_generator(config, info.num_classes, info.image_shape).to(device)
    discriminator = build_discriminator(config, info.num_classes, info.image_shape).to(device)
    betas = (config.beta1, config.beta2)
    fused = {"fused": True, "capturable": device.type == "cuda" and world.size == 1} if config.fast else {}
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas, **fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_lr, betas=betas, **fused)
    ema = EMA(generator, config.ema_decay) if config.ema else None
    t = Trainer(config, info, device, generator, discriminator, ema, opt_g, opt_d, world,
                wrap(generator, device, world), wrap(discriminator, device, world))
    if world.rank:
        torch.manual_seed(config.seed + 7919 * world.rank)     # each process its own noise
    return t


def fixed_inputs(t: Trainer) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same noise every epoch, so the grids show how one set of samples evolves."""
    rng = torch.Generator().manual_seed(t.config.seed + 1)
    k = t.info.num_classes
    count = k * GRID_COLUMNS if k else 64
    noise = torch.randn(count, t.config.noise_dim, generator=rng).to(t.device)
    labels = torch.arange(k).repeat_interleave(GRID_COLUMNS).to(t.device) if k else None
    return noise, labels


def finish_epoch_models(t: Trainer) -> None:
    """Recompute the EMA generator's BatchNorm statistics for its averaged weights."""
    if t.ema is not None:
        recalibrate_batchnorm(t.ema.model, t.config.noise_dim, t.info.num_classes, t.device,
                              seed=t.config.seed + t.epoch)


@torch.no_grad()
def save_samples(t: Trainer, run_dir: Path) -> Path:
    noise, labels = fixed_inputs(t)
    model = t.sampling_generator
    was_training = model.training
    model.eval()
    images = model(noise, labels).float().cpu().numpy()
    model.train(was_training)
    path = run_dir / "samples" / f"epoch_{t.epoch:03d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(path, images, nrow=GRID_COLUMNS if t.info.num_classes else 8)
    return path


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def checkpoint_dict(t: Trainer) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "config": t.config.to_dict(),
        "dataset": t.info.to_dict(),
        "generator": t.generator.state_dict(),
        "generator_ema": t.ema.model.state_dict() if t.ema is not None else None,
        "discriminator": t.discriminator.state_dict(),
        "opt_g": t.opt_g.state_dict(),
        "opt_d": t.opt_d.state_dict(),
        "epoch": t.epoch,
        "step": t.step,
        "rng": rng_state(t.device),
    }


def save_checkpoint(t: Trainer, run_dir: Path, name: str = CHECKPOINT_NAME) -> Path:
    path = run_dir / name
    with atomic_path(path) as tmp:
        torch.save(checkpoint_dict(t), tmp)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file or the one in a run folder, safely (weights_only=True)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: give a run folder (holding "
                              f"{CHECKPOINT_NAME}) or a checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a gan_pack checkpoint ({type(e).__name__}); "
                              f"give a run folder or the {CHECKPOINT_NAME} inside one") from e
    if not isinstance(ckpt, dict) or "format" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a gan_pack checkpoint; give a run folder or "
                              f"the {CHECKPOINT_NAME} inside one")
    if ckpt["format"] > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format']}, newer than this "
                              f"gan_pack reads ({CHECKPOINT_FORMAT}); upgrade gan_pack")
    return ckpt


def restore(t: Trainer, ckpt: dict) -> None:
    t.generator.load_state_dict(ckpt["generator"])
    t.discriminator.load_state_dict(ckpt["discriminator"])
    if t.ema is not None:
        t.ema.model.load_state_dict(ckpt["generator_ema"])
        t.ema.updates = int(ckpt["step"])
    for optimizer, key in ((t.opt_g, "opt_g"), (t.opt_d, "opt_d")):
        flags = {k: optimizer.param_groups[0][k] for k in ("fused", "capturable", "foreach")}
        optimizer.load_state_dict(ckpt[key])
        keep_optimizer_flags(optimizer, flags)
    t.epoch, t.step = int(ckpt["epoch"]), int(ckpt["step"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if t.device.type == "cuda" and "cuda" in ckpt["rng"]:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], t.device)
    if t.world.rank:                 # the saved state is rank 0's; the others draw their own noise
        torch.manual_seed(t.config.seed + 7919 * t.world.rank + t.step)


def keep_optimizer_flags(optimizer: torch.optim.Optimizer, flags: dict) -> None:
    """A checkpoint's optimizer state carries the implementation flags of the run that saved it
    (fused, capturable): keep this run's instead, so a checkpoint from 2 GPUs (no CUDA graph)
    resumes on one (graph), or a --fast one with --no-fast. Adam's step counters must sit on the
    device for fused/capturable and on the CPU otherwise."""
    on_device = bool(flags["fused"] or flags["capturable"])
    for group in optimizer.param_groups:
        group.update(flags)
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                state["step"] = state["step"].to(param.device if on_device else "cpu", torch.float32)


def set_learning_rates(t: Trainer) -> None:
    """This epoch's learning rates (--lr-decay-from). A recorded CUDA graph holds the rates it was
    recorded with, so a change drops the graph and the next steps record a new one."""
    cfg = t.config
    factor = cfg.lr_factor(t.epoch)
    changed = False
    for optimizer, base in ((t.opt_g, cfg.lr), (t.opt_d, cfg.discriminator_lr)):
        for group in optimizer.param_groups:
            changed |= group["lr"] != base * factor
            group["lr"] = base * factor
    if changed and getattr(t.run_step, "graph", None) is not None:
        t.run_step = make_step(t)


def log_metrics(run_dir: Path, record: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def run_epoch(t: Trainer, run_dir: Path, progress=None) -> dict:
    """Train one epoch; host syncs only every log_every steps. Returns the last logged record."""
    cfg, record = t.config, {}
    sums, count = torch.zeros(4, device=t.device), 0
    t.generator.train()
    t.discriminator.train()
    started = time.perf_counter()
    for index, real, labels in t.batches.epoch(t.epoch):
        sums += t.run_step(t, index, real, labels)
        t.step += 1
        count += 1
        if count == cfg.log_every or t.step % len(t.batches) == 0:
            # tolist() waits for the device, so the interval's time includes its (async) work.
            means = mean_over_processes(sums / count, t.world).tolist()
            record = _log_record(t, means, count, time.perf_counter() - started)
            if t.world.main:
                log_metrics(run_dir, record)
                if t.tensorboard is not None:
                    t.tensorboard.scalars(record, t)
                if progress is not None:
                    progress(record, count)
            sums.zero_()
            count, started = 0, time.perf_counter()
    t.epoch += 1
    return record


def _log_record(t: Trainer, means: list[float], steps: int, seconds: float) -> dict:
    d_loss, g_loss, d_real, d_fake = means
    return {"epoch": t.epoch + 1, "step": t.step, "d_loss": round(d_loss, 5),
            "g_loss": round(g_loss, 5), "d_x": round(d_real, 5), "d_g_z": round(d_fake, 5),
            "images_per_s": round(steps * t.config.batch_size / max(seconds, 1e-9), 1),
            "lr": t.opt_g.param_groups[0]["lr"],
            "time": round(time.time(), 3)}


def prepare_run(config: TrainConfig, resume: bool, world: World = World()) -> tuple[Trainer, Path]:
    """Build (or restore) a Trainer and its run folder; raise before writing anything on bad input."""
    run_dir = Path(config.out)
    ckpt = None
    if resume:
        ckpt = load_checkpoint(run_dir)
    elif (run_dir / CHECKPOINT_NAME).exists():
        raise CheckpointError(f"{run_dir} already holds a run; pass --resume to continue it "
                              f"or choose another --out")
    device = resolve_device(config.device, world)
    images, labels, info = load_dataset(config)
    batches = make_batches(images, labels, config.batch_size, device, config.fast, config.seed,
                           world.rank, world.size)
    join(world, device)
    t = build_trainer(config, info, device, world)
    t.batches = batches
    if ckpt is not None:
        check_resume_config(ckpt["config"], config)
        restore(t, ckpt)
    t.run_step = make_step(t)
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.json",
                          dump_json({**config.to_dict(), "dataset_info": info.to_dict()}))
    return t, run_dir


def check_resume_config(saved: dict, config: TrainConfig) -> None:
    given, default = config.to_dict(), TrainConfig().to_dict()   # a setting newer than the run: its default
    differ = [f"{k}: run has {saved.get(k, default[k])!r}, flags give {given[k]!r}"
              for k in given if k not in RESUME_FREE and saved.get(k, default[k]) != given[k]]
    if differ:
        raise CheckpointError("--resume with settings that differ from the run's ("
                              + "; ".join(differ) + "); drop those flags or start a new --out")


def tensorboard_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard "
                          "(it comes with the [train] extra)") from e
    return SummaryWriter


class TensorBoardLogger:
    """Scalars every log interval, evaluation figures, and the fixed-noise grid every epoch."""

    SCALARS = {"d_loss": "loss/d", "g_loss": "loss/g", "d_x": "D/real D(x)", "d_g_z": "D/fake D(G(z))",
               "images_per_s": "speed/images_per_s"}
    EVAL = {"fcd": "eval/fcd", "fcd_ratio": "eval/fcd_ratio_to_floor", "recall": "eval/recall",
            "precision": "eval/precision", "class_kl": "eval/class_kl",
            "conditional_accuracy": "eval/conditional_accuracy"}

    def __init__(self, writer):
        self.writer = writer

    def scalars(self, record: dict, t: Trainer) -> None:
        for key, tag in self.SCALARS.items():
            self.writer.add_scalar(tag, record[key], record["step"])
        self.writer.add_scalar("lr/generator", t.opt_g.param_groups[0]["lr"], record["step"])
        self.writer.add_scalar("lr/discriminator", t.opt_d.param_groups[0]["lr"], record["step"])

    def evaluation(self, record: dict) -> None:
        for key, tag in self.EVAL.items():
            if np.isfinite(record.get(key, float("nan"))):
                self.writer.add_scalar(tag, record[key], record["step"])

    def grid(self, path: Path, epoch: int) -> None:
        from PIL import Image

        image = np.asarray(Image.open(path).convert("RGB"))             # (H, W, 3) uint8
        self.writer.add_image("samples", image, epoch, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class InTrainingEvaluation:
    """Every eval_every epochs: sample the EMA generator, measure FCD etc. with the classifier,
    log an `eval` line to metrics.jsonl, and keep checkpoint-best.pt (lowest FCD)."""

    def __init__(self, config: TrainConfig):
        from gan_pack.evaluate import OnnxClassifier, RealReference, reference_metrics

        self.config = config
        self.classifier = OnnxClassifier(config.classifier)
        self.real = RealReference.load(self.classifier, config.data_dir, config.eval_n, config.seed)
        self.floor = reference_metrics(self.real)["fcd_floor_train_vs_test"]   # fixed for the run
        self.best = float("inf")

    def resume_from(self, run_dir: Path) -> None:
        """A resumed run keeps the best FCD its earlier evaluations logged, so its first new
        evaluation replaces checkpoint-best.pt only if it is better. (load_run skips a line cut
        short by a killed run.)"""
        from gan_pack.report import load_run

        self.best = min((r["fcd"] for r in load_run(run_dir).evals), default=float("inf"))

    @torch.no_grad()
    def __call__(self, t: Trainer, run_dir: Path) -> dict:
        from gan_pack.evaluate import quality_metrics

        images, labels = generate_numpy(t, self.config.eval_n)
        m = quality_metrics(images, labels, self.classifier, self.real)
        record = {"epoch": t.epoch, "step": t.step, "eval": True, "n": self.config.eval_n,
                  "fcd": float(f"{m['fcd']:.6g}"), "fcd_ratio": round(m["fcd"] / self.floor, 3),
                  "recall": round(m["recall"], 4), "precision": round(m["precision"], 4),
                  "class_kl": round(m["class_kl"], 5),
                  "conditional_accuracy": round(m.get("conditional_accuracy", float("nan")), 5),
                  "time": round(time.time(), 3)}
        log_metrics(run_dir, record)
        if t.tensorboard is not None:
            t.tensorboard.evaluation(record)
        if m["fcd"] < self.best:
            self.best = m["fcd"]
            save_checkpoint(t, run_dir, "checkpoint-best.pt")
        return record


@torch.no_grad()
def generate_numpy(t: Trainer, n: int, batch: int = 1000):
    """n images from the eval-mode sampling generator, labels cycling through the classes."""
    model, k = t.sampling_generator, t.info.num_classes
    was_training = model.training
    model.eval()
    rng = torch.Generator(device=t.device).manual_seed(t.config.seed + 7)
    labels = torch.arange(n, device=t.device) % k if k else None
    chunks = []
    for start in range(0, n, batch):
        noise = torch.randn(min(batch, n - start), t.config.noise_dim, device=t.device, generator=rng)
        chunk_labels = labels[start:start + len(noise)] if k else None
        chunks.append(model(noise, chunk_labels).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(chunks), (labels.cpu().numpy() if k else None)


def train(config: TrainConfig, resume: bool = False, on_epoch=None, progress_factory=None,
          on_start=None) -> Trainer:
    """Train to config.epochs total epochs, writing the run folder as it goes.

    Under torchrun every process trains and rank 0 alone writes (grids, checkpoints, logs,
    evaluations). Every check on the user's input happens before the run folder is touched."""
    world = World.from_env()
    evaluation = InTrainingEvaluation(config) if config.eval_every and world.main else None
    writer_class = tensorboard_writer_class() if config.tensorboard and world.main else None
    t, run_dir = prepare_run(config, resume, world)
    if evaluation is not None and resume:
        evaluation.resume_from(run_dir)
    try:
        _train_epochs(t, run_dir, evaluation, writer_class, on_epoch, progress_factory, on_start)
    finally:
        leave(world)
    return t


def _train_epochs(t, run_dir, evaluation, writer_class, on_epoch, progress_factory, on_start) -> None:
    config, main = t.config, t.world.main
    if writer_class is not None:
        t.tensorboard = TensorBoardLogger(writer_class(log_dir=str(run_dir)))
    if on_start and main:
        on_start(t)
    while t.epoch < config.epochs:
        set_learning_rates(t)
        progress = progress_factory(t) if progress_factory and main else None
        t.last_record = run_epoch(t, run_dir, progress.update if progress else None)
        finish_epoch_models(t)
        if main:
            grid = save_samples(t, run_dir)
            if t.tensorboard is not None:
                t.tensorboard.grid(grid, t.epoch)
            save_checkpoint(t, run_dir)
            if evaluation and (t.epoch % config.eval_every == 0 or t.epoch == config.epochs):
                evaluation(t, run_dir)
        if progress:
            progress.close()
        if on_epoch and main:
            on_epoch(t)
        barrier(t.world)
    if t.tensorboard is not None:
        t.tensorboard.close()

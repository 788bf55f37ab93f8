"""What watches a run: fixed-noise grids, TensorBoard, the in-training evaluation, and any monitor
a caller adds (the CLI's console output). All behind one small protocol, `Monitor`.

The training loop calls, on the main process only:
- `on_start(trainer)` once, before the first step;
- `on_epoch_start(trainer)` before each epoch;
- `on_record(trainer, record)` for every record written to metrics.jsonl (training and eval);
- `on_epoch_end(trainer)` after each epoch, and after its checkpoint when the epoch is written
  (`config.writes`, --save-every); it may return new records (an evaluation), which the loop
  writes to metrics.jsonl and passes to every `on_record`;
- `on_end(trainer)` once, when the last epoch is done.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from gan_pack.core import runlog
from gan_pack.core.images import make_grid, save_png
from gan_pack.errors import ConfigError
from gan_pack.pytorch.checkpoint import BEST_CHECKPOINT_NAME, save_checkpoint
from gan_pack.pytorch.config import TrainConfig

if TYPE_CHECKING:
    from gan_pack.pytorch.train import Trainer

GRID_COLUMNS = 10


class Monitor:
    """Every hook a no-op: a monitor overrides the ones it needs."""

    def on_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer) -> None:
        pass

    def on_record(self, trainer: Trainer, record: dict) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer) -> list[dict]:
        return []

    def on_end(self, trainer: Trainer) -> None:
        pass


@torch.no_grad()
def _sample(trainer: Trainer, noise: torch.Tensor, labels: torch.Tensor | None) -> np.ndarray:
    """Images (B, C, H, W) float32 from the eval-mode sampling generator (EMA when kept)."""
    model = trainer.sampling_generator
    was_training = model.training
    model.eval()
    images = model(noise, labels).float().cpu().numpy()
    model.train(was_training)
    return images


def fixed_grid(trainer: Trainer) -> np.ndarray:
    """The grid of the same noise every epoch (H', W', C) uint8: one row per class for a cGAN."""
    rng = torch.Generator().manual_seed(trainer.config.recipe.seed + 1)
    k = trainer.info.num_classes
    count = k * GRID_COLUMNS if k else 64
    noise = torch.randn(count, trainer.config.recipe.noise_dim, generator=rng).to(trainer.device)
    labels = torch.arange(k).repeat_interleave(GRID_COLUMNS).to(trainer.device) if k else None
    return make_grid(_sample(trainer, noise, labels), nrow=GRID_COLUMNS if k else 8)


def generate_numpy(trainer: Trainer, n: int, class_labels: np.ndarray | None, batch: int = 1000) -> np.ndarray:
    """n images from the eval-mode sampling generator; a cGAN's labels are class_labels (n of them)."""
    device = trainer.device
    rng = torch.Generator(device=device).manual_seed(trainer.config.recipe.seed + 7)
    labels = None if class_labels is None else torch.as_tensor(class_labels, device=device)
    chunks = []
    for start in range(0, n, batch):
        noise = torch.randn(min(batch, n - start), trainer.config.recipe.noise_dim, device=device, generator=rng)
        chunks.append(_sample(trainer, noise, None if labels is None else labels[start:start + len(noise)]))
    return np.concatenate(chunks)


class SampleGrids(Monitor):
    """samples/epoch_NNN.png in the run folder after every written epoch (--save-every)."""

    def on_epoch_end(self, trainer: Trainer) -> list[dict]:
        if trainer.config.writes(trainer.epoch):
            save_png(trainer.run_dir / "samples" / f"epoch_{trainer.epoch:03d}.png", fixed_grid(trainer))
        return []


class TensorBoardLogger(Monitor):
    """Scalars every log interval, evaluation figures, and the fixed-noise grid every written epoch."""

    SCALARS = {"d_loss": "loss/d", "g_loss": "loss/g", "d_x": "D/real D(x)", "d_g_z": "D/fake D(G(z))",
               "images_per_s": "speed/images_per_s"}
    EVAL = {"fcd": "eval/fcd", "fcd_ratio": "eval/fcd_ratio_to_floor", "recall": "eval/recall",
            "precision": "eval/precision", "class_kl": "eval/class_kl",
            "conditional_accuracy": "eval/conditional_accuracy"}

    def __init__(self):
        """Fails now if tensorboard is missing; the event file is opened when the run starts."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard "
                              "(it comes with the [train] extra)") from e
        self.writer_class, self.writer = SummaryWriter, None

    def on_start(self, trainer: Trainer) -> None:
        # purge_step: TensorBoard drops what earlier event files logged from this step on (the steps a
        # killed run logged after its last checkpoint, which this run trains again)
        self.writer = self.writer_class(log_dir=str(trainer.run_dir), purge_step=trainer.step)

    def on_record(self, trainer: Trainer, record: dict) -> None:
        step = record["step"]
        if record.get("eval"):
            for key, tag in self.EVAL.items():
                if np.isfinite(record.get(key, float("nan"))):
                    self.writer.add_scalar(tag, record[key], step)
            return
        for key, tag in self.SCALARS.items():
            self.writer.add_scalar(tag, record[key], step)
        self.writer.add_scalar("lr/generator", float(trainer.nets.g_optimizer.param_groups[0]["lr"]), step)
        self.writer.add_scalar("lr/discriminator", float(trainer.nets.d_optimizer.param_groups[0]["lr"]), step)

    def on_epoch_end(self, trainer: Trainer) -> list[dict]:
        if not trainer.config.writes(trainer.epoch):
            return []
        grid = fixed_grid(trainer)                                   # (H, W, C) uint8
        self.writer.add_image("samples", np.repeat(grid, 3 // grid.shape[2], axis=2), trainer.epoch,
                              dataformats="HWC")
        self.writer.flush()
        return []

    def on_end(self, trainer: Trainer) -> None:
        self.writer.close()


class InTrainingEvaluation(Monitor):
    """Every eval_every epochs (and after the last): sample the EMA generator, measure FCD etc. with
    the classifier, return an `eval` record, and keep checkpoint-best.pt (lowest FCD)."""

    def __init__(self, config: TrainConfig):
        from gan_pack.evaluate.classifier import OnnxClassifier, RealReference
        from gan_pack.evaluate.quality import reference_metrics

        self.config = config
        self.classifier = OnnxClassifier(config.evaluation.classifier)
        if config.recipe.dataset != "folder" and self.classifier.dataset != config.recipe.dataset:
            raise ConfigError(f"--classifier {config.evaluation.classifier} was trained on "
                              f"{self.classifier.dataset}, but the run trains on {config.recipe.dataset}; "
                              f"give a classifier of {config.recipe.dataset}")
        self.real = RealReference.load(self.classifier, config.run.data_dir, config.evaluation.eval_n,
                                       config.recipe.seed)
        self.floor = reference_metrics(self.real)["fcd_floor_train_vs_test"]   # fixed for the run
        self.best = float("inf")

    def on_start(self, trainer: Trainer) -> None:
        """A resumed run keeps the best FCD its earlier evaluations logged, so its first new
        evaluation replaces checkpoint-best.pt only if it is better."""
        if not trainer.step:
            return
        evals = runlog.read_metrics(trainer.run_dir).evals
        self.best = min((r["fcd"] for r in evals), default=float("inf"))

    def due(self, epoch: int) -> bool:
        return epoch % self.config.evaluation.eval_every == 0 or epoch == self.config.schedule.epochs

    def on_epoch_end(self, trainer: Trainer) -> list[dict]:
        return [self.evaluate(trainer)] if self.due(trainer.epoch) else []

    def evaluate(self, trainer: Trainer) -> dict:
        from gan_pack.evaluate.quality import quality_metrics

        n = self.config.evaluation.eval_n
        labels = self.real.generator_labels(n, trainer.info.num_classes, self.config.recipe.seed)
        images = generate_numpy(trainer, n, labels)
        m = quality_metrics(images, labels, self.classifier, self.real)
        record = {"epoch": trainer.epoch, "step": trainer.step, "eval": True, "n": n,
                  "fcd": float(f"{m['fcd']:.6g}"), "fcd_ratio": round(m["fcd"] / self.floor, 3),
                  "recall": round(m["recall"], 4), "precision": round(m["precision"], 4),
                  "class_kl": round(m["class_kl"], 5),
                  "conditional_accuracy": round(m.get("conditional_accuracy", float("nan")), 5),
                  "time": round(time.time(), 3)}
        if m["fcd"] < self.best:
            self.best = m["fcd"]
            save_checkpoint(trainer, trainer.run_dir, BEST_CHECKPOINT_NAME)
        return record

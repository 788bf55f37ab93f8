"""A small CNN trained on the real data, exported to ONNX for the torch-free evaluation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import gan_pack
from gan_pack.core.files import atomic_path
from gan_pack.core.idx import load_idx_split
from gan_pack.core.noise import SEED_MAX
from gan_pack.errors import ConfigError
from gan_pack.pytorch.config import DATASET_CLASS_NAMES, LIMITS
from gan_pack.pytorch.data import to_model_range

FEATURE_DIM = 128


@dataclass
class ClassifierConfig:
    dataset: str = "mnist"
    data_dir: str | None = None
    epochs: int = 12
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if self.dataset not in DATASET_CLASS_NAMES:
            problems.append(f"--dataset must be mnist or fashion-mnist, not {self.dataset!r}")
        if self.data_dir is None:
            problems.append("--data-dir is required (the folder with the four IDX files)")
        if self.epochs < 1:
            problems.append(f"--epochs must be at least 1, not {self.epochs}")
        if not 1 <= self.batch_size <= LIMITS["batch_size"]:
            problems.append(f"--batch-size must be in 1..{LIMITS['batch_size']}, not {self.batch_size}")
        if self.epochs > LIMITS["epochs"]:
            problems.append(f"--epochs must be at most {LIMITS['epochs']}, not {self.epochs}")
        if not 0 <= self.seed <= SEED_MAX:
            problems.append(f"--seed must be in 0..{SEED_MAX}, not {self.seed}")
        if problems:
            raise ConfigError("; ".join(problems))


class Classifier(nn.Module):
    """About LeNet size (~110k parameters): three conv stages, a 128-d feature layer, logits."""

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def stage(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        self.body = nn.Sequential(*stage(1, 16), *stage(16, 16), nn.MaxPool2d(2),      # 14x14
                                  *stage(16, 32), *stage(32, 32), nn.MaxPool2d(2),     # 7x7
                                  *stage(32, 64), nn.MaxPool2d(2), nn.Flatten(),       # 3x3
                                  nn.Linear(64 * 9, FEATURE_DIM), nn.ReLU(True))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images)                                   # (B, FEATURE_DIM)
        return self.head(self.dropout(features)), features            # (B, K), (B, F)


def augment(images: torch.Tensor, flip: bool) -> torch.Tensor:
    """Light augmentation: random shifts of up to 2 px, small rotations and scales, optional flips."""
    b = images.shape[0]
    angle = (torch.rand(b, device=images.device) - 0.5) * (2 * 10 * np.pi / 180)
    scale = 1.0 + (torch.rand(b, device=images.device) - 0.5) * 0.2
    shift = (torch.rand(b, 2, device=images.device) - 0.5) * (2 * 2 / 14)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    if flip:
        mirror = torch.rand(b, device=images.device) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(3), out)
    return out


def _to_float(images: np.ndarray, device) -> torch.Tensor:
    return to_model_range(torch.from_numpy(np.array(images)).to(device))


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 2000) -> float:
    model.eval()
    correct = sum((model(images[i:i + batch])[0].argmax(1) == labels[i:i + batch]).sum().item()
                  for i in range(0, len(images), batch))
    return correct / len(images)


def train_classifier(config: ClassifierConfig, log=print) -> tuple[nn.Module, float]:
    """Train on the training split; returns the model (eval mode) and its test accuracy."""
    from gan_pack.pytorch.distributed import resolve_device

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    train_x, train_y = load_idx_split(config.data_dir, config.dataset, "train")
    test_x, test_y = load_idx_split(config.data_dir, config.dataset, "test")
    images, labels = _to_float(train_x, device), torch.from_numpy(train_y).to(device)
    test_images, test_labels = _to_float(test_x, device), torch.from_numpy(test_y).to(device)
    model = Classifier(len(DATASET_CLASS_NAMES[config.dataset])).to(device)
    steps = config.epochs * (len(images) // config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps)
    for epoch in range(config.epochs):
        started = time.perf_counter()
        _classifier_epoch(model, opt, schedule, images, labels, config)
        acc = accuracy(model, test_images, test_labels)
        log(f"epoch {epoch + 1}/{config.epochs}  test accuracy {acc:.4f}  ({time.perf_counter() - started:.1f}s)")
    return model.eval(), acc


def _classifier_epoch(model, opt, schedule, images, labels, config) -> None:
    model.train()
    order = torch.randperm(len(images), device=images.device)
    flip = config.dataset == "fashion-mnist"
    for step in range(len(images) // config.batch_size):
        index = order[step * config.batch_size:(step + 1) * config.batch_size]
        logits, _ = model(augment(images[index], flip))
        loss = F.cross_entropy(logits, labels[index], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()


def export_classifier(model: nn.Module, output: str | Path, config: ClassifierConfig,
                      test_accuracy: float) -> None:
    """images (B, 1, 28, 28) in [-1, 1] -> logits (B, K), features (B, 128); batch is dynamic."""
    import onnx

    from gan_pack.contract.metadata import set_metadata
    from gan_pack.contract.names import CLASSIFIER_KIND
    from gan_pack.core.files import check_output_path
    from gan_pack.onnx_tools.graph import rename_batch_axis
    from gan_pack.pytorch.export import dynamo_export

    output = check_output_path(output, ".onnx")
    model = model.cpu().eval()
    with atomic_path(output) as tmp:
        dynamo_export(model, (torch.zeros(4, 1, 28, 28),), tmp, ["images"], ["logits", "features"], 18)
        onnx_model = onnx.load(str(tmp))
        rename_batch_axis(onnx_model)
        names = DATASET_CLASS_NAMES[config.dataset]
        set_metadata(onnx_model, {
            "gan_pack.version": gan_pack.__version__, "gan_pack.kind": CLASSIFIER_KIND,
            "dataset": config.dataset, "num_classes": str(len(names)), "class_names": json.dumps(names),
            "image_shape": json.dumps([1, 28, 28]), "input_range": json.dumps([-1, 1]),
            "feature_dim": str(FEATURE_DIM), "test_accuracy": f"{test_accuracy:.4f}",
            "epochs": str(config.epochs)})
        onnx.save(onnx_model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)

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
from gan_pack.core.folder import SPLITS, load_image_folder, split_folder
from gan_pack.core.idx import load_idx_split
from gan_pack.core.images import color_problems, parse_color
from gan_pack.core.noise import SEED_MAX
from gan_pack.errors import ConfigError
from gan_pack.pytorch.config import LIMITS
from gan_pack.pytorch.data import balancing_weights, to_model_range
from gan_pack.pytorch.data_facts import DATASET_CLASS_NAMES

FEATURE_DIM = 128


@dataclass
class ClassifierConfig:
    dataset: str = "mnist"              # mnist | fashion-mnist | folder (DATA_DIR/train, DATA_DIR/test)
    data_dir: str | None = None
    epochs: int = 12
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    device: str = "auto"
    image_size: int = 28                # folder: the generator's image side
    channels: int = 1                   # folder: the generator's channels (4: RGBA, composited inside)
    background: str = "white"           # what RGBA images are composited over, inside the graph

    def __post_init__(self) -> None:
        problems = []
        if self.dataset not in (*DATASET_CLASS_NAMES, "folder"):
            problems.append(f"--dataset must be mnist, fashion-mnist or folder, not {self.dataset!r}")
        elif self.dataset != "folder" and (self.image_size, self.channels) != (28, 1):
            problems.append(f"{self.dataset} is 28x28 grayscale: --image-size and --channels are for --dataset folder")
        if not 8 <= self.image_size <= 256 or self.channels not in (1, 3, 4):
            problems.append(f"--image-size must be in 8..256 and --channels 1, 3 or 4, not {self.image_size} and "
                            f"{self.channels}")
        problems += color_problems("--background", self.background)
        if self.data_dir is None:
            problems.append("--data-dir is required (the folder with the four IDX files, or with train/ and test/)")
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


def _stage(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]


class Composite(nn.Module):
    """RGBA in [-1, 1] -> RGB over a background colour: a classifier of transparent images reads the
    generator's output as it is, and sees them as they are shown."""

    def __init__(self, background: tuple[int, int, int]):
        super().__init__()
        self.register_buffer("background", torch.tensor(background, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        alpha = (images[:, 3:] + 1) / 2                                   # (B, 1, H, W) in [0, 1]
        return images[:, :3] * alpha + self.background * (1 - alpha)


class Classifier(nn.Module):
    """The 28 px one (about LeNet size, ~110k parameters): three conv stages, a 128-d feature layer,
    logits. Other sizes and channels (a folder data set): four stages of 32..128 channels down to
    4x4, RGBA composited over `background` first."""

    def __init__(self, num_classes: int = 10, channels: int = 1, image_size: int = 28,
                 background: tuple[int, int, int] = (255, 255, 255)):
        super().__init__()
        if (channels, image_size) == (1, 28):
            self.body = nn.Sequential(*_stage(1, 16), *_stage(16, 16), nn.MaxPool2d(2),      # 14x14
                                      *_stage(16, 32), *_stage(32, 32), nn.MaxPool2d(2),     # 7x7
                                      *_stage(32, 64), nn.MaxPool2d(2), nn.Flatten(),       # 3x3
                                      nn.Linear(64 * 9, FEATURE_DIM), nn.ReLU(True))
        else:
            front = [Composite(background)] if channels == 4 else []
            widths, layers, c_in = (32, 64, 128, 128), [], min(channels, 3)
            for width in widths:
                layers += [*_stage(c_in, width), *_stage(width, width), nn.MaxPool2d(2)]
                c_in = width
            side = image_size // 2 ** len(widths)
            self.body = nn.Sequential(*front, *layers, nn.Flatten(), nn.Linear(c_in * side * side, FEATURE_DIM),
                                      nn.ReLU(True))
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
    (train_x, train_y), (test_x, test_y), class_names = load_splits(config)
    if len(train_x) < config.batch_size:
        raise ConfigError(f"the training split has {len(train_x)} images, fewer than one batch of "
                          f"{config.batch_size}; lower --batch-size")
    images, labels = _to_float(train_x, device), torch.from_numpy(train_y).to(device)
    test_images, test_labels = _to_float(test_x, device), torch.from_numpy(test_y).to(device)
    model = Classifier(len(class_names), config.channels, config.image_size, parse_color(config.background))
    model.class_names = class_names
    model = model.to(device)
    steps = config.epochs * (len(images) // config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=steps)
    # a folder's classes may be far apart in size: each drawn equally, or the small ones go unlearnt
    weights = balancing_weights(labels.cpu()) if config.dataset == "folder" else None
    for epoch in range(config.epochs):
        started = time.perf_counter()
        _classifier_epoch(model, opt, schedule, images, labels, config, weights)
        acc = accuracy(model, test_images, test_labels)
        log(f"epoch {epoch + 1}/{config.epochs}  test accuracy {acc:.4f}  ({time.perf_counter() - started:.1f}s)")
    model.per_class_accuracy = per_class_accuracy(model, test_images, test_labels, len(class_names))
    return model.eval(), acc


def load_splits(config: ClassifierConfig):
    """((train images, labels), (test images, labels), class names) as uint8 (N, C, H, W)."""
    if config.dataset != "folder":
        return (load_idx_split(config.data_dir, config.dataset, "train"),
                load_idx_split(config.data_dir, config.dataset, "test"), DATASET_CLASS_NAMES[config.dataset])
    splits = [load_image_folder(split_folder(config.data_dir, split), config.image_size, config.channels,
                                config.background) for split in SPLITS]
    (train_x, train_y, names), (test_x, test_y, test_names) = splits
    if test_names != names:
        raise ConfigError(f"{config.data_dir}: train/ and test/ hold other classes ({', '.join(names[:4])}... "
                          f"against {', '.join(test_names[:4])}...); give both the same subfolders")
    return (train_x, train_y), (test_x, test_y), names


@torch.no_grad()
def per_class_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, k: int,
                       batch: int = 2000) -> list[float | None]:
    model.eval()
    predicted = torch.cat([model(images[i:i + batch])[0].argmax(1) for i in range(0, len(images), batch)])
    return [float((predicted[labels == c] == c).float().mean()) if (labels == c).any() else None for c in range(k)]


def _classifier_epoch(model, opt, schedule, images, labels, config, weights=None) -> None:
    model.train()
    order = torch.randperm(len(images)) if weights is None else torch.multinomial(weights, len(images), True)
    order = order.to(images.device)
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
    """images (B, C, H, W) in [-1, 1] -> logits (B, K), features (B, 128); batch is dynamic."""
    import onnx

    from gan_pack.contract.metadata import set_metadata
    from gan_pack.contract.names import CLASSIFIER_KIND
    from gan_pack.core.files import check_output_path
    from gan_pack.onnx_tools.graph import rename_batch_axis
    from gan_pack.pytorch.export import dynamo_export

    output = check_output_path(output, ".onnx")
    model = model.cpu().eval()
    shape = [config.channels, config.image_size, config.image_size]
    with atomic_path(output) as tmp:
        dynamo_export(model, (torch.zeros(4, *shape),), tmp, ["images"], ["logits", "features"], 18)
        onnx_model = onnx.load(str(tmp))
        rename_batch_axis(onnx_model)
        names = getattr(model, "class_names", None) or DATASET_CLASS_NAMES[config.dataset]
        metadata = {
            "gan_pack.version": gan_pack.__version__, "gan_pack.kind": CLASSIFIER_KIND,
            "dataset": config.dataset, "num_classes": str(len(names)), "class_names": json.dumps(names),
            "image_shape": json.dumps(shape), "input_range": json.dumps([-1, 1]),
            "feature_dim": str(FEATURE_DIM), "test_accuracy": f"{test_accuracy:.4f}",
            "epochs": str(config.epochs)}
        if getattr(model, "per_class_accuracy", None) is not None:
            metadata["per_class_test_accuracy"] = json.dumps(model.per_class_accuracy)
        if config.channels == 4:
            metadata["composited_over"] = config.background
        set_metadata(onnx_model, metadata)
        onnx.save(onnx_model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)

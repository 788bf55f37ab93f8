"""Dataclasses shared by every layer. No torch, no onnx."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from gan_pack.errors import ConfigError

ARCHS = ("mlp", "dcgan")
DATASETS = ("mnist", "fashion-mnist", "folder")
DEVICES = ("auto", "cpu", "cuda")
DCGAN_SIZES = (28, 32, 64)
LOSSES = ("bce", "bce-prob", "hinge")
AUGMENTS = ("translation", "cutout")

DATASET_CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


@dataclass
class TrainConfig:
    """Every setting of a training run. Saved as config.json and inside each checkpoint."""

    model: str = "gan"              # gan | cgan
    arch: str = "mlp"
    dataset: str = "mnist"
    data_dir: str | None = None
    image_size: int = 28
    channels: int = 1
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-4
    lr_d: float | None = None       # discriminator learning rate (None: same as lr)
    lr_decay_from: int | None = None  # from this epoch on, both learning rates fall linearly (None: constant)
    beta1: float = 0.5
    beta2: float = 0.999
    noise_dim: int = 100
    width: int = 64                 # dcgan base channel count
    d_width: int | None = None      # dcgan D base channel count (None: same as width)
    spectral_norm: bool = False     # spectral normalisation on D's layers
    late_label: bool = False        # dcgan cGAN: the label also enters D's last layer
    mbstd: int = 0                  # dcgan D: minibatch-variation plane over groups of this many images (0: off)
    r1: float = 0.0                 # R1 penalty weight: gamma/2 * |grad of D(real)|^2 (0: off)
    augment: str = ""               # D sees real and fake through these differentiable augmentations
    ema: bool = True
    ema_decay: float = 0.999
    device: str = "auto"
    seed: int = 0
    log_every: int = 100
    loss: str = "bce"               # bce (on logits) | bce-prob (tutorial) | hinge
    eval_every: int = 0             # epochs between in-training evaluations (0: never)
    classifier: str | None = None   # exported classifier used by the in-training evaluation
    eval_n: int = 5000
    tensorboard: bool = False       # also log to TensorBoard event files in the run folder
    fast: bool = True               # device-resident data, fused Adam, CUDA graph (same math as --no-fast)
    bf16: bool = False              # bf16 autocast for the forward passes
    out: str = "runs/run"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        p = []
        if self.model not in ("gan", "cgan"):
            p.append(f"--model must be gan or cgan, not {self.model!r}")
        if self.arch not in ARCHS:
            p.append(f"--arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        if self.dataset not in DATASETS:
            p.append(f"--dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        if self.device not in DEVICES:
            p.append(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.loss not in LOSSES:
            p.append(f"--loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.epochs < 1:
            p.append(f"--epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1:
            p.append(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.noise_dim < 1:
            p.append(f"--noise-dim must be at least 1, not {self.noise_dim}")
        if self.lr <= 0 or (self.lr_d is not None and self.lr_d <= 0):
            p.append("--lr and --lr-d must be positive")
        if self.lr_decay_from is not None and not 0 <= self.lr_decay_from < self.epochs:
            p.append(f"--lr-decay-from must be an epoch in [0, --epochs), not {self.lr_decay_from}; "
                     f"the decay runs from it to the last epoch")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            p.append("--beta1/--beta2 must be in [0, 1)")
        if not 0.0 < self.ema_decay < 1.0:
            p.append(f"--ema-decay must be in (0, 1), not {self.ema_decay}")
        if self.channels not in (1, 3):
            p.append(f"--channels must be 1 or 3, not {self.channels}")
        if self.log_every < 1:
            p.append(f"--log-every must be at least 1, not {self.log_every}")
        if self.eval_every < 0 or (self.eval_every and not self.classifier):
            p.append("--eval-every needs --classifier (an exported classifier) and a positive value")
        if self.eval_every and self.data_dir is None:
            p.append("--eval-every needs --data-dir (the real test set to compare with)")
        if self.eval_n < 2:
            p.append(f"--eval-n must be at least 2, not {self.eval_n}")
        if self.mbstd < 0 or (self.mbstd and self.arch != "dcgan"):
            p.append(f"--mbstd must be 0 (off) or a group size with --arch dcgan, not {self.mbstd}")
        elif self.mbstd and self.batch_size % self.mbstd:
            p.append(f"--batch-size ({self.batch_size}) must be a multiple of --mbstd ({self.mbstd}), "
                     f"so that no group mixes real and fake images")
        if self.r1 < 0:
            p.append(f"--r1 must be 0 (off) or positive, not {self.r1}")
        unknown = [a for a in self.augmentations if a not in AUGMENTS]
        if unknown:
            p.append(f"--augment takes a comma-separated list of {', '.join(AUGMENTS)}, "
                     f"not {', '.join(map(repr, unknown))}")
        if self.width < 8 or (self.d_width is not None and self.d_width < 8):
            p.append("--width and --d-width must be at least 8")
        if self.arch == "dcgan" and self.image_size not in DCGAN_SIZES:
            p.append(f"--arch dcgan builds {', '.join(map(str, DCGAN_SIZES))}-pixel images, "
                     f"not {self.image_size}; pick one of those --image-size values")
        if self.arch == "mlp" and not 4 <= self.image_size <= 128:
            p.append(f"--arch mlp builds 4..128-pixel images, not {self.image_size}")
        return p

    @property
    def augmentations(self) -> list[str]:
        return [a.strip() for a in self.augment.split(",") if a.strip()]

    @property
    def discriminator_lr(self) -> float:
        return self.lr_d if self.lr_d is not None else self.lr

    def lr_factor(self, epoch: int) -> float:
        """The learning rates' multiplier while training epoch `epoch` (0-based): 1 up to
        lr_decay_from, then falling in equal steps to 1/(n + 1) in the last epoch, n = the epochs
        after lr_decay_from. Never 0, so no epoch is wasted."""
        start = self.lr_decay_from
        if start is None or epoch < start:
            return 1.0
        decayed = self.epochs - start
        return 1.0 - (min(epoch, self.epochs - 1) - start + 1) / (decayed + 1)

    @property
    def conditional(self) -> bool:
        return self.model == "cgan"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}: made by a newer gan_pack?")
        return cls(**data)


@dataclass
class DatasetInfo:
    """Facts about the data a model was trained on; they travel into ONNX metadata."""

    name: str
    image_shape: tuple[int, int, int]        # (C, H, W)
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    size: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetInfo":
        return cls(name=data["name"], image_shape=tuple(data["image_shape"]),
                   num_classes=int(data["num_classes"]),
                   class_names=list(data.get("class_names", [])), size=int(data.get("size", 0)))


def dump_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)

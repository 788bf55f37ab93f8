"""The settings of a training run, each declared once: its default, its check, and the `ganpack train`
option it is (help, panel, choices), from which the CLI builds the command. No torch, so the CLI can
read it without loading torch.

A training run's settings are a `TrainConfig` of four groups:
- `Recipe`: what is trained (data, networks, loss, optimizer, seed). Fixed for the life of a run.
- `Schedule`: how long, and the learning-rate decay. May change on --resume.
- `RunOptions`: where and how it runs (device, folders, logging). May change on --resume.
- `Evaluation`: the in-training evaluation. May change on --resume.

On disk (config.json, checkpoints, ONNX metadata) a config is one flat dict: field names are unique
across the groups, so old runs and new ones read the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from gan_pack.contract.choices import Arch, Augment, Choice, Dataset, Device, Loss, Model
from gan_pack.contract.limits import EVAL_N_MAX, EVAL_N_MIN
from gan_pack.core.images import color_problems
from gan_pack.core.noise import SEED_MAX
from gan_pack.errors import ConfigError
from gan_pack.pytorch.field_types import type_problems

DCGAN_SIZES = (28, 32, 64)
DIVERSITY_SIDE = 16       # --diversity compares pairs average-pooled to this side (4 x 4 blocks at 64 px)
# Upper limits of the integer settings: beyond them a run cannot fit in memory or never ends.
LIMITS = {"batch_size": 65536, "noise_dim": 4096, "width": 1024, "d_width": 1024, "min_width": 1024, "refine_from": 64,
          "epochs": 100_000, "log_every": 10**9, "eval_n": EVAL_N_MAX, "mbstd": 64, "seed": SEED_MAX}
# The help panels of `ganpack train`, in the order --help shows them.
START, DATA, NETS, OPTIM, RUN, EVAL = ("Start here", "Data", "Networks and loss", "Optimizer and EMA",
                                       "Where it runs", "In-training evaluation")
PANELS = (START, DATA, NETS, OPTIM, RUN, EVAL)


def setting(default, help: str, panel: str, *, flags: tuple[str, ...] = (), choices: type[Choice] | None = None):
    """A field that is also a `ganpack train` option: its help, its panel, its extra flags and (for
    a choice) its Enum. The CLI builds the command from these, so each setting is declared once."""
    return field(default=default, metadata={"help": help, "panel": panel, "flags": flags, "choices": choices})


def _limits(group) -> list[str]:
    """Settings above their upper limit, and float settings that are NaN or infinite."""
    p = []
    for f in fields(group):
        value = getattr(group, f.name)
        flag = "--" + f.name.replace("_", "-")
        if f.name in LIMITS and isinstance(value, int) and value > LIMITS[f.name]:
            p.append(f"{flag} must be at most {LIMITS[f.name]}, not {value}")
        if isinstance(value, float) and not math.isfinite(value):
            p.append(f"{flag} must be a finite number, not {value}")
    return p


@dataclass
class Recipe:
    """What is trained: fixed for the life of a run (a resumed run must not change it)."""

    model: str = setting("gan", "gan, cgan (conditional on the class label), or sr (an upscaler: a compact "
                                "generator of --width features and --convs convolutions, L1 and adversarial loss, "
                                "low-resolution inputs made on the fly; --dataset folder).", START, choices=Model)
    arch: str = setting("mlp", "mlp (the classic tutorial pair), dcgan (convolutional) or fastgan (for small data: "
                               "gated convolutions, skip-layer excitation, the class in every norm; a residual "
                               "projection D).", NETS, choices=Arch)
    dataset: str = setting("mnist", "mnist, fashion-mnist, or folder (an image folder).", DATA, choices=Dataset)
    image_size: int = setting(28, "Image side in pixels (dcgan, fastgan: 28, 32 or 64).", DATA)
    channels: int = setting(1, "1 (grayscale), 3 (RGB) or 4 (RGBA: a folder of transparent PNGs).", DATA)
    background: str = setting("white", "--channels 1 or 3 from transparent images: the color they are "
                                       "composited over (white, black, grey or #rrggbb).", DATA)
    batch_size: int = setting(64, "Images per step.", OPTIM)
    lr: float = setting(2e-4, "Adam learning rate, both networks.", OPTIM)
    lr_d: float | None = setting(None, "Discriminator learning rate (default: --lr).", OPTIM)
    beta1: float = setting(0.5, "Adam beta1.", OPTIM)
    beta2: float = setting(0.999, "Adam beta2.", OPTIM)
    noise_dim: int = setting(100, "Dimension of the standard-normal noise.", NETS)
    width: int = setting(64, "dcgan, fastgan: G's base channel count.", NETS)
    d_width: int | None = setting(None, "dcgan, fastgan: D's base channel count (default: --width).", NETS)
    min_width: int = setting(0, "dcgan G: no layer narrower than this many channels (0: off; G's channels halve "
                                "at each doubling of the side, down to --width at full size).", NETS)
    refine_from: int = setting(0, "dcgan G: one more 3x3 convolution after each upsampling to this side in "
                                  "pixels or larger (0: off; e.g. 16 at 64 px: three more layers).", NETS)
    spectral_norm: bool = setting(False, "Spectral normalisation in D.", NETS)
    late_label: bool = setting(False, "dcgan cGAN: feed the label to D's last layer too.", NETS)
    projection: bool = setting(False, "dcgan cGAN: a projection discriminator (the label picks a class-specific "
                                      "head) instead of label planes beside the image.", NETS)
    subclasses: bool = setting(False, "dcgan cGAN on a folder: also condition on each image's subclass, the part "
                                      "of its file name after the first '-' (google-1f383.png and "
                                      "twitter-1f383.png are one; so are an emoji's skin tones). G learns a "
                                      "vector per subclass and D (--projection) a head per subclass; a sample's "
                                      "class picks one of its subclasses from the noise, so the model still "
                                      "takes class labels.", NETS)
    subclass_styles: bool = setting(False, "--subclasses: a subclass per style too: the part of a file name "
                                           "before its first '-' (google-, twitter-) is kept, so each style of "
                                           "an emoji has its own vector and head.", NETS)
    subclass_mix: float = setting(0.0, "--subclasses: each fake's subclass vector moves towards another of its "
                                       "class's by a weight uniform in 0..this (at most 1; 0: off), and D's head "
                                       "alike, so the points between emoji are trained too.", NETS)
    label_planes: bool = setting(False, "fastgan cGAN: the label enters D beside the image too, as learnt planes "
                                        "(the dcgan way), besides D's projection head.", NETS)
    mbstd: int = setting(0, "dcgan, fastgan D: a minibatch-variation plane over groups of this many images (0: off; "
                            "--batch-size must be a multiple).", NETS)
    r1: float = setting(0.0, "R1 penalty weight gamma: D's loss gains gamma/2 |grad D(real)|^2 (0: off).", NETS)
    diversity: float = setting(0.0, "G's loss gains, for pairs of samples with one label and two noises, max(0, "
                                    f"this - their mean absolute difference at {DIVERSITY_SIDE} x {DIVERSITY_SIDE}):"
                                    " the noise must change the image by up to this much, pixels in -1..1 (0: "
                                    "off; the two styles of one emoji differ by 0.37).", NETS)
    balance: bool = setting(False, "cGAN: draw every class equally often (each epoch: as many images as the "
                                   "data set, drawn with replacement, 1/class-size each).", DATA)
    augment: str = setting("", "D sees real and fake through these augmentations, comma-separated: "
                               f"{', '.join(Augment.values())} (default: none).", NETS)
    ema: bool = setting(True, "Keep an EMA of G's weights for samples and export.", OPTIM)
    ema_decay: float = setting(0.999, "EMA decay per step.", OPTIM)
    loss: str = setting("bce", "bce (on logits), bce-prob (the tutorial's), or hinge.", NETS, choices=Loss)
    seed: int = setting(0, "Seed: the same seed gives the same CPU run.", OPTIM)
    bf16: bool = setting(False, "bf16 autocast for the forward passes (GPUs with bf16).", RUN)
    scale: int = setting(4, "sr: how many times larger the output is (2, 3 or 4); --image-size is the "
                            "high-resolution side.", NETS)
    convs: int = setting(16, "sr: convolutions in the compact generator's body.", NETS)
    adv_weight: float = setting(0.005, "sr: weight of the adversarial loss beside L1 (0: L1 only); it starts "
                                       "after the first quarter of the epochs.", NETS)

    def problems(self) -> list[str]:
        p = (Model.problem("--model", self.model) + Arch.problem("--arch", self.arch)
             + Dataset.problem("--dataset", self.dataset) + Loss.problem("--loss", self.loss))
        if self.batch_size < 1:
            p.append(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.noise_dim < 1:
            p.append(f"--noise-dim must be at least 1, not {self.noise_dim}")
        if not self.lr > 0 or (self.lr_d is not None and not self.lr_d > 0):
            p.append("--lr and --lr-d must be positive")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            p.append("--beta1/--beta2 must be in [0, 1)")
        if not 0.0 < self.ema_decay < 1.0:
            p.append(f"--ema-decay must be in (0, 1), not {self.ema_decay}")
        if self.channels not in (1, 3, 4):
            p.append(f"--channels must be 1, 3 or 4, not {self.channels}")
        elif self.channels == 4 and self.dataset != "folder":
            p.append(f"--channels 4 (RGBA) needs --dataset folder of images with transparency; {self.dataset} is "
                     f"grayscale")
        p += color_problems("--background", self.background)
        if self.mbstd < 0 or (self.mbstd and self.arch == "mlp"):
            p.append(f"--mbstd must be 0 (off) or a group size with --arch dcgan or fastgan, not {self.mbstd}")
        elif self.mbstd and self.batch_size % self.mbstd:
            p.append(f"--batch-size ({self.batch_size}) must be a multiple of --mbstd ({self.mbstd}), "
                     f"so that no group mixes real and fake images")
        if self.late_label and self.arch != "dcgan":
            p.append("--late-label is a dcgan cGAN discriminator option; a fastgan D projects the label")
        if self.projection and (self.arch != "dcgan" or self.model != "cgan" or self.late_label):
            p.append("--projection is a dcgan cGAN discriminator, without --late-label (a fastgan cGAN's D "
                     "always projects); use --arch dcgan --model cgan")
        if self.subclasses and not (self.arch == "dcgan" and self.model == "cgan" and self.dataset == "folder"
                                    and self.projection):
            p.append("--subclasses needs --arch dcgan --model cgan --dataset folder --projection (D keeps a "
                     "head per subclass)")
        if self.subclass_styles and not self.subclasses:
            p.append("--subclass-styles refines --subclasses; add --subclasses")
        if not 0 <= self.subclass_mix <= 1 or (self.subclass_mix and not self.subclasses):
            p.append(f"--subclass-mix must be 0 (off) or a weight up to 1, with --subclasses, not {self.subclass_mix}")
        if self.label_planes and (self.arch != "fastgan" or self.model != "cgan"):
            p.append("--label-planes is a fastgan cGAN discriminator option (a dcgan cGAN's D has label planes "
                     "unless --projection); use --arch fastgan --model cgan")
        if self.balance and self.model != "cgan":
            p.append("--balance draws the classes equally: it needs --model cgan")
        if not self.r1 >= 0:
            p.append(f"--r1 must be 0 (off) or positive, not {self.r1}")
        if not 0 <= self.diversity <= 2 or (self.diversity and self.batch_size < 2):
            p.append(f"--diversity must be 0 (off) or a pixel difference up to 2, with --batch-size 2 or more, "
                     f"not {self.diversity}")
        if self.seed < 0:
            p.append(f"--seed must be in 0..{SEED_MAX}, not {self.seed}")
        unknown = [a for a in self.augmentations if a not in Augment.values()]
        if unknown:
            p.append(f"--augment takes a comma-separated list of {', '.join(Augment.values())}, "
                     f"not {', '.join(map(repr, unknown))}")
        if self.width < 8 or (self.d_width is not None and self.d_width < 8):
            p.append("--width and --d-width must be at least 8")
        if self.min_width < 0 or (self.min_width and self.arch != "dcgan"):
            p.append(f"--min-width must be 0 (off) or a channel count with --arch dcgan, not {self.min_width}")
        if self.refine_from < 0 or (self.refine_from and self.arch != "dcgan"):
            p.append(f"--refine-from must be 0 (off) or a side in pixels with --arch dcgan, not {self.refine_from}")
        if self.model == "sr":
            return p + self._sr_problems() + _limits(self)
        if self.arch in ("dcgan", "fastgan") and self.image_size not in DCGAN_SIZES:
            p.append(f"--arch {self.arch} builds {', '.join(map(str, DCGAN_SIZES))}-pixel images, "
                     f"not {self.image_size}; pick one of those --image-size values")
        if self.arch == "mlp" and not 4 <= self.image_size <= 128:
            p.append(f"--arch mlp builds 4..128-pixel images, not {self.image_size}")
        return p + _limits(self)

    def _sr_problems(self) -> list[str]:
        p = []
        if self.dataset != "folder":
            p.append("--model sr trains on --dataset folder (a folder of images, RGBA included)")
        if self.scale not in (2, 3, 4):
            p.append(f"--scale must be 2, 3 or 4, not {self.scale}")
        elif self.image_size % self.scale or not 8 * self.scale <= self.image_size <= 512:
            p.append(f"--image-size (the high-resolution side) must be a multiple of --scale in "
                     f"{8 * self.scale}..512, not {self.image_size}")
        if not 1 <= self.convs <= 64:
            p.append(f"--convs must be in 1..64, not {self.convs}")
        if not 0 <= self.adv_weight <= 1:
            p.append(f"--adv-weight must be in 0..1, not {self.adv_weight}")
        if self.diversity:
            p.append("--diversity asks a generator's noise to matter; an upscaler (--model sr) has none")
        return p

    @property
    def conditional(self) -> bool:
        return self.model == "cgan"

    @property
    def augmentations(self) -> list[str]:
        return [a.strip() for a in self.augment.split(",") if a.strip()]

    @property
    def discriminator_lr(self) -> float:
        return self.lr_d if self.lr_d is not None else self.lr


@dataclass
class Schedule:
    """How long a run trains and how its learning rates move."""

    epochs: int = setting(10, "Total epochs (a resumed run continues up to this).", START)
    lr_decay_from: int | None = setting(None, "From this epoch on, both learning rates fall linearly to 1/(n+1) of "
                                              "theirs in the last epoch (n = epochs left); may be set when resuming "
                                              "(default: constant).", OPTIM)

    def problems(self) -> list[str]:
        p = []
        if self.epochs < 1:
            p.append(f"--epochs must be at least 1, not {self.epochs}")
        if self.lr_decay_from is not None and not 0 <= self.lr_decay_from < self.epochs:
            p.append(f"--lr-decay-from must be an epoch in [0, --epochs), not {self.lr_decay_from}; "
                     f"the decay runs from it to the last epoch")
        return p + _limits(self)

    def lr_factor(self, epoch: int) -> float:
        """The learning rates' multiplier while training epoch `epoch` (0-based): 1 up to
        lr_decay_from, then falling in equal steps to 1/(n + 1) in the last epoch, n = the epochs
        after lr_decay_from. Never 0, so no epoch is wasted."""
        start = self.lr_decay_from
        if start is None or epoch < start:
            return 1.0
        decayed = self.epochs - start
        return 1.0 - (min(epoch, self.epochs - 1) - start + 1) / (decayed + 1)


@dataclass
class RunOptions:
    """Where and how a run executes: none of it changes what is learned."""

    device: str = setting("auto", "auto, cpu or cuda.", RUN, choices=Device)
    data_dir: str | None = setting(None, "Folder with the IDX files (offline) or the images.", START)
    out: str = setting("runs/run", "Run folder to write.", START, flags=("--out", "-o"))
    log_every: int = setting(100, "Steps between lines of metrics.jsonl.", RUN)
    save_every: int = setting(1, "Write checkpoint.pt and the sample grid every N epochs (and at each evaluation "
                                 "and the last); a stopped run resumes from the last one written. On a fast GPU "
                                 "and small data, writing every epoch can take longer than the epoch.", RUN)
    tensorboard: bool = setting(False, "Also log to TensorBoard (tensorboard --logdir runs/).", RUN)
    channels_last: bool = setting(True, "On a GPU, hold the convolutional networks and their images channels-last "
                                        "(NHWC), which tensor cores run fastest. Same math.", RUN)
    fast: bool = setting(True, "Data on the device, fused Adam, and on one GPU the whole step as a CUDA graph; "
                               "--no-fast: DataLoader, eager steps. Same math.", RUN)

    def problems(self) -> list[str]:
        p = Device.problem("--device", self.device)
        if self.log_every < 1:
            p.append(f"--log-every must be at least 1, not {self.log_every}")
        if self.save_every < 1:
            p.append(f"--save-every must be at least 1 (epochs), not {self.save_every}")
        return p + _limits(self)


@dataclass
class Evaluation:
    """The in-training evaluation that picks checkpoint-best.pt."""

    eval_every: int = setting(0, "Evaluate the EMA generator every K epochs (0: never).", EVAL)
    classifier: str | None = setting(None, "Exported classifier for --eval-every.", EVAL)
    eval_n: int = setting(5000, "Images per in-training evaluation.", EVAL)

    def problems(self) -> list[str]:
        p = []
        if self.eval_every < 0 or (self.eval_every and not self.classifier):
            p.append("--eval-every needs --classifier (an exported classifier) and a positive value")
        if self.eval_n < EVAL_N_MIN:
            p.append(f"--eval-n must be at least {EVAL_N_MIN}, not {self.eval_n}")
        return p + _limits(self)


GROUPS = {"recipe": Recipe, "schedule": Schedule, "run": RunOptions, "evaluation": Evaluation}
RESUMABLE_GROUPS = ("schedule", "run", "evaluation")   # what --resume may change


@dataclass
class TrainConfig:
    """Every setting of a training run. Saved flat as config.json and inside each checkpoint."""

    recipe: Recipe = field(default_factory=Recipe)
    schedule: Schedule = field(default_factory=Schedule)
    run: RunOptions = field(default_factory=RunOptions)
    evaluation: Evaluation = field(default_factory=Evaluation)

    def __post_init__(self) -> None:
        problems = [p for name in GROUPS for p in getattr(self, name).problems()]
        if self.evaluation.eval_every and self.run.data_dir is None:
            problems.append("--eval-every needs --data-dir (the real test set to compare with)")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def conditional(self) -> bool:
        return self.recipe.conditional

    def writes(self, epoch: int) -> bool:
        """Whether the end of epoch `epoch` (1-based) is written: checkpoint, grid, evaluation."""
        every = self.evaluation.eval_every
        return (epoch % self.run.save_every == 0 or epoch == self.schedule.epochs
                or bool(every and epoch % every == 0))

    def to_dict(self) -> dict:
        """The flat form: {setting: value} over all groups."""
        return {k: v for name in GROUPS for k, v in asdict(getattr(self, name)).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """From the flat form; missing settings take their defaults (a run older than the setting)."""
        unknown = sorted(set(data) - set(setting_names()))
        if unknown:
            raise ConfigError(f"unknown settings {unknown}: made by a newer gan_pack?")
        wrong = [p for group in GROUPS.values() for p in type_problems(group, data)]
        if wrong:
            raise ConfigError("; ".join(wrong))
        groups = {name: group(**{f.name: data[f.name] for f in fields(group) if f.name in data})
                  for name, group in GROUPS.items()}
        return cls(**groups)


def setting_names(groups=tuple(GROUPS)) -> list[str]:
    return [f.name for name in groups for f in fields(GROUPS[name])]

"""Any PyTorch generator, made to speak the ONNX contract, and the traps it is checked for.

`ContractAdapter` wraps a module whatever its own signature: 4-D noise (`noise_shape`), one-hot
labels, a [0, 1] output, a flat `(B, C*H*W)` output. The exported graph always takes `noise`
(B, noise_dim) float32 [+ `labels` (B,) int64] and gives `images` (B, C, H, W) in [-1, 1].

`check_generator` runs the module before export and refuses, with the cause, what would export
to a wrong or useless graph: random numbers drawn in forward, a batch size fixed in forward,
BatchNorm on batch statistics or never trained, outputs off the declared range or shape, images
that ignore the noise.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_pack.contract.limits import MAX_CLASSES, MAX_NOISE_DIM
from gan_pack.contract.parity import parity_inputs
from gan_pack.errors import ConfigError, ModelError

LABEL_INPUTS = ("index", "onehot")
OUTPUT_RANGES = {(-1.0, 1.0): "-1,1", (0.0, 1.0): "0,1"}
RANGE_SLACK = 1e-3          # fp32 Tanh/Sigmoid may overshoot their bound by an ulp


@dataclass
class ImportSpec:
    """How a module's own inputs and outputs map to the contract, and what it generates."""

    noise_dim: int
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    dataset: str = "unknown"
    image_shape: tuple[int, int, int] | None = None   # None: from a 4-D output, or a square flat one
    noise_shape: tuple[int, ...] | None = None        # the module's noise per sample, e.g. (100, 1, 1)
    label_input: str = "index"                        # index: (B,) int64 | onehot: (B, num_classes) float
    output_range: tuple[float, float] = (-1.0, 1.0)
    output_range_given: bool = True                   # False: -1,1 assumed, so a [0, 1] output is a trap
    source: str = "a PyTorch module"                  # what was imported (metadata: imported_from)
    arch: str = "imported"
    noise_mode: str | None = None                     # NVlabs-style forward(..., noise_mode=): none | const

    def __post_init__(self) -> None:
        p = []
        if not 1 <= self.noise_dim <= MAX_NOISE_DIM:
            p.append(f"--noise-dim must be in 1..{MAX_NOISE_DIM}, not {self.noise_dim}")
        if not 0 <= self.num_classes <= MAX_CLASSES:
            p.append(f"--num-classes must be in 0..{MAX_CLASSES}, not {self.num_classes}")
        if self.class_names and len(self.class_names) != self.num_classes:
            p.append(f"--class-names gives {len(self.class_names)} names for {self.num_classes} classes")
        if self.noise_shape is not None and math.prod(self.noise_shape) != self.noise_dim:
            p.append(f"--noise-shape {','.join(map(str, self.noise_shape))} holds {math.prod(self.noise_shape)} "
                     f"values, not --noise-dim {self.noise_dim}")
        if self.label_input not in LABEL_INPUTS:
            p.append(f"--label-input must be index or onehot, not {self.label_input!r}")
        elif self.label_input == "onehot" and not self.num_classes:
            p.append("--label-input onehot needs --num-classes")
        if tuple(self.output_range) not in OUTPUT_RANGES:
            p.append(f"--output-range must be -1,1 or 0,1, not {self.output_range}")
        if self.image_shape is not None and (len(self.image_shape) != 3 or self.image_shape[0] not in (1, 3, 4)
                                             or min(self.image_shape) < 1):
            p.append(f"--image-shape must be C,H,W with C 1, 3 or 4 (RGBA), not {self.image_shape}")
        if p:
            raise ConfigError("; ".join(p))


def style_keywords(module: nn.Module, spec: ImportSpec) -> tuple[dict, bool]:
    """The keyword arguments of NVlabs' calling convention that the module's forward takes
    (G(z, c, truncation_psi=1, noise_mode='random', fused_modconv=True)): the noise mode asked for
    (none by default: no random numbers in the graph), fused_modconv=False (constant weights instead of
    a grouped convolution of per-sample weights); and whether it takes truncation_psi (then psi
    becomes an input of the graph)."""
    names = inspect.signature(module.forward).parameters
    keywords: dict = {}
    if "noise_mode" in names:
        keywords["noise_mode"] = spec.noise_mode or "none"
    elif spec.noise_mode is not None:
        raise ConfigError(f"--noise-mode {spec.noise_mode}: {type(module).__name__}.forward takes no noise_mode")
    if "fused_modconv" in names:
        keywords["fused_modconv"] = False
    return keywords, "truncation_psi" in names


class ContractAdapter(nn.Module):
    """noise (B, noise_dim) [+ labels (B,)] [+ psi (B,)] -> images (B, C, H, W) in [-1, 1], around any
    module (psi: for a forward that takes NVlabs' truncation_psi)."""

    def __init__(self, module: nn.Module, spec: ImportSpec, image_shape: tuple[int, int, int] | None):
        super().__init__()
        self.module, self.image_shape = module, tuple(image_shape or ())
        self.noise_shape = tuple(spec.noise_shape) if spec.noise_shape else None
        self.num_classes, self.onehot = spec.num_classes, spec.label_input == "onehot"
        self.zero_one = tuple(spec.output_range) == (0.0, 1.0)
        self.keywords, self.psi = style_keywords(module, spec)
        # a StyleGAN-family synthesis ends without a Tanh: its images are clamped, as NVlabs' gen_images does
        self.clamp = bool(self.keywords) or self.psi

    def inputs(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> tuple:
        """What the module's own forward takes for the contract's (noise, labels)."""
        z = noise if self.noise_shape is None else noise.reshape(noise.shape[0], *self.noise_shape)
        if not self.num_classes:
            return (z,)
        return z, F.one_hot(labels, self.num_classes).to(z.dtype) if self.onehot else labels

    def forward(self, noise: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        labels = rest[0] if self.num_classes else None
        psi = rest[-1] if self.psi and len(rest) > bool(self.num_classes) else None
        truncation = {} if psi is None else {"truncation_psi": psi.reshape(-1, 1)}
        out = self.module(*self.inputs(noise, labels), **self.keywords, **truncation)
        out = out.reshape(out.shape[0], *self.image_shape)                    # (B, C, H, W)
        out = out * 2 - 1 if self.zero_one else out
        return out.clamp(-1.0, 1.0) if self.clamp else out


# ---------------------------------------------------------------- running the module

def _inputs(spec: ImportSpec, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    noise, labels = parity_inputs(spec.noise_dim, spec.num_classes, batch)
    return torch.from_numpy(noise), None if labels is None else torch.from_numpy(labels)


@torch.no_grad()
def _run(module: nn.Module, spec: ImportSpec, batch: int, worked: list[int]) -> torch.Tensor:
    """The raw module's output at one batch size, its errors explained (`worked`: the batch sizes
    that ran before)."""
    adapter = ContractAdapter(module, spec, image_shape=None)
    args = adapter.inputs(*_inputs(spec, batch))                  # no output reshape here
    try:
        out = module(*args, **adapter.keywords)
    except Exception as e:  # the user's forward may raise anything
        raise ModelError(_explain_failure(e, spec, batch, worked, tuple(args[0].shape))) from e
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"forward returns a {type(out).__name__}, not a tensor of images")
    return out.float()


def _explain_failure(e: Exception, spec: ImportSpec, batch: int, worked: list[int], noise_shape: tuple) -> str:
    text = " ".join(str(e).split())[:240]
    if "more than 1 value per channel when training" in text:
        return ("BatchNorm runs in train mode inside forward (a batch of 1 fails): the module or its code calls "
                ".train(); export the eval-mode module")
    if worked:
        return (f"forward works at batch {worked[0]} but fails at batch {batch} ({type(e).__name__}: {text}): the "
                f"batch size seems fixed in forward (e.g. view({worked[0]}, ...)); use view(x.size(0), ...) or "
                f"reshape(-1, ...)")
    labels = f" and labels ({batch},) {spec.label_input}" if spec.num_classes else ""
    return (f"forward fails on noise {noise_shape}{labels} ({type(e).__name__}: {text}); check --noise-dim, "
            f"--noise-shape, --num-classes and --label-input against the module's forward")


def infer_image_shape(out: torch.Tensor, spec: ImportSpec) -> tuple[int, int, int]:
    """(C, H, W) from a probe output: declared (and checked), 4-D, or a square flat one."""
    per_image = tuple(out.shape[1:])
    values = math.prod(per_image)
    if spec.image_shape is not None:
        if values != math.prod(spec.image_shape):
            raise ModelError(f"the module returns {tuple(out.shape)} per batch, {values} values an image, but "
                             f"--image-shape {','.join(map(str, spec.image_shape))} has {math.prod(spec.image_shape)}")
        return tuple(spec.image_shape)
    if len(per_image) == 3 and per_image[0] in (1, 3, 4):
        return per_image
    for channels in (1, 3):
        side = math.isqrt(values // channels)
        if values % channels == 0 and side * side * channels == values:
            return channels, side, side
    raise ModelError(f"cannot tell the image shape of an output of {tuple(out.shape)}; give --image-shape C,H,W")


# ---------------------------------------------------------------- the traps

def untrained_batchnorm(module: nn.Module) -> list[str]:
    """BatchNorm layers whose running statistics are still their initial values (mean 0, variance 1)."""
    names = []
    for name, layer in module.named_modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats \
                and layer.running_mean is not None and not layer.running_mean.abs().any() \
                and bool((layer.running_var == 1).all()):
            names.append(name)
    return names


@torch.no_grad()
def check_generator(adapter: ContractAdapter, spec: ImportSpec) -> None:
    """Run the eval-mode adapter the ways export and the runtime will, and refuse the traps."""
    untrained = untrained_batchnorm(adapter.module)
    if untrained:
        raise ModelError(f"BatchNorm {untrained[0]!r} still has its initial statistics (mean 0, variance 1): the "
                         f"weights were saved before any training step, or without their buffers; save the trained "
                         f"generator's state_dict()")
    noise, labels = _inputs(spec, 7)
    first, second = adapter(noise, labels), adapter(noise, labels)
    if not torch.equal(first, second):
        apart = float((first - second).abs().max())
        raise ModelError(f"forward draws random numbers: the same noise gave images {apart:.3g} apart (torch.randn "
                         f"inside forward, or dropout active); take all randomness from the noise input")
    for row in (0, 6):
        alone = adapter(noise[row:row + 1], None if labels is None else labels[row:row + 1])
        if float((alone - first[row:row + 1]).abs().max()) > 1e-4:
            raise ModelError("an image depends on the others in its batch: BatchNorm uses batch statistics (train "
                             "mode set inside forward, or track_running_stats=False); export the eval-mode module")
    low, high = float(first.min()), float(first.max())
    if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
        declared = OUTPUT_RANGES[tuple(spec.output_range)]
        raise ModelError(f"outputs reach [{low:.3g}, {high:.3g}] (mapped to the contract), outside the declared "
                         f"--output-range {declared}: give --output-range 0,1 for a Sigmoid, -1,1 for a Tanh")
    if float(first.std(dim=0).max()) < 1e-6:
        raise ModelError("every noise gives the same image: the output does not depend on the noise input")
    if not spec.output_range_given and low >= 0 and tuple(spec.output_range) == (-1.0, 1.0):
        raise ModelError(f"outputs stay in [{low:.3g}, {high:.3g}], a Sigmoid's [0, 1], which read as -1..1 would "
                         f"make every background mid-grey: give --output-range 0,1 for a Sigmoid, or --output-range "
                         f"-1,1 if these are Tanh outputs")
    if not np.isfinite(first.numpy()).all():
        raise ModelError("forward returns NaN or infinite values")


def probe(module: nn.Module, spec: ImportSpec) -> tuple[int, int, int]:
    """The image shape, after running the raw module at the batch sizes export will need."""
    shape, worked = None, []
    for batch in (64, 2, 1, 7):         # 64 first: the batch size a fixed view() most often holds
        out = _run(module, spec, batch, worked)
        if out.shape[0] != batch:
            raise ModelError(f"forward returns {out.shape[0]} images for a batch of {batch}: the batch size seems "
                             f"fixed in forward; use view(x.size(0), ...) or reshape(-1, ...)")
        shape = shape or infer_image_shape(out, spec)
        worked.append(batch)
    return shape

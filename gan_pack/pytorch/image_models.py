"""Image-to-image models (upscalers, restorers) people download, recognised and rebuilt by spandrel.

spandrel (MIT) tells about 40 architectures apart by a state dict's keys and shapes and builds them
from its own code, so nothing in the file runs: the file itself is read by torch's weights-only loader
or safetensors (families.open_source). Here the descriptor spandrel returns becomes an `ImageModelSpec`
(scale, channels, size rules, tiling) and a module whose forward is spandrel's own call, clamped to
[0, 1] as spandrel's is. Architectures whose graphs cannot be exported, or whose export does not match,
are refused by name before anything is traced (`REFUSED`, measured by benchmarks/spandrel_archs.py).
spandrel_extra_arches (non-commercial architectures) is never imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gan_pack.contract.spec import ImageModelSpec
from gan_pack.errors import CheckpointError, ConfigError

SPANDREL_VERSION = "0.4.2"
# Architectures whose export is refused, and why (the operator or construct); measured, see docs/families.md.
WINDOW_DRIFT = ("its shifted-window attention exports, but the graph differs from PyTorch by up to {} at sizes it "
                "was not traced at (over the 1e-4 bound)")
SIZE_BAKED = ("torch.export cannot trace its {}, and the TorchScript export keeps the traced size in its reshapes "
              "(other sizes fail)")
REFUSED: dict[str, str] = {
    "HAT": WINDOW_DRIFT.format("1.0e-3"),
    "SwinIR": WINDOW_DRIFT.format("7.7e-4"),
    "DRCT": WINDOW_DRIFT.format("8.8e-4"),
    "Swin2SR": "its log-spaced continuous position bias exports, but the graph differs from PyTorch by 3.9e-2",
    "Uformer": "its locally-enhanced window attention exports, but the graph differs from PyTorch by 1.1e-2",
    "GRL": "torch itself crashes (a segmentation fault) while either exporter traces its stripe attention",
    "SCUNet": SIZE_BAKED.format("Swin-conv window attention"),
    "DCTLSA": SIZE_BAKED.format("DCT-domain attention"),
    "RGT": SIZE_BAKED.format("rectangle-window attention").replace("(other sizes fail)", "(LayerNormalization of an "
                                                                                            "empty tensor elsewhere)"),
    "DAT": SIZE_BAKED.format("spatial-window attention").replace("(other sizes fail)", "(LayerNormalization of an "
                                                                                          "empty tensor elsewhere)"),
    "CRAFT": SIZE_BAKED.format("cross-window attention").replace("(other sizes fail)", "(LayerNormalization of an "
                                                                                          "empty tensor elsewhere)"),
    "IPT": SIZE_BAKED.format("patch transformer"),
    "SeemoRe": SIZE_BAKED.format("mixture-of-experts routing (top-k)"),
    "FFTformer": "its frequency-domain attention uses torch.fft.rfft2 (aten::fft_rfft2), which has no ONNX export",
    "SAFMNBCIE": "its adaptive pooling has an output size that depends on the input, which ONNX export does not take",
    "HVICIDNet": "its HVI colour transform assigns through indices: the dynamo graph does not convert and the "
                 "TorchScript graph's ScatterND fails in onnxruntime",
    "ATD": "its adaptive token dictionary sorts tokens (torch.sort): the dynamo graph does not convert and the "
           "TorchScript exporter does not take Sort with an out parameter",
    "AuraSR": "its adaptive convolutions pick their kernels per image (runtime weights): the dynamo graph does not "
              "convert and TorchScript cannot export a convolution whose kernel shape is unknown",
    "DRUNet": "spandrel's forward takes one image at a time (its noise-level plane is made for batch 1), so batch 2 "
              "cannot be proven, and torch.export cannot trace it",
}
# Where spandrel's rules are looser than what the export can take: FBCNN pads to a multiple of 8 with sizes
# computed in numpy from the traced input (constants in any graph), so the runtime pads to 8 instead.
MULTIPLE_OF = {"FBCNN": 8}
# Face restorers that take one size only (spandrel pads smaller images up to it; larger ones break them).
FIXED_SIZE = {"GFPGAN": 512}
# spandrel's call, where it draws random noise inside the forward: the stored noise instead (deterministic).
CALLS: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "GFPGAN": lambda model, image: model(image, return_rgb=False, randomize_noise=False)[0],
}


def read_safetensors(path: Path, fix: str) -> dict:
    """A .safetensors file: tensors and nothing else, by its format; its size checked first."""
    from gan_pack.core.checkpoint_file import MAX_CHECKPOINT_BYTES

    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ConfigError("reading .safetensors needs the safetensors package: pip install 'gan-pack[images]'") \
            from None
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror})") from None
    if not path.is_file() or size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path} is not a regular file of at most {MAX_CHECKPOINT_BYTES:,} bytes; {fix}")
    try:
        return load_file(str(path))
    except Exception as e:      # safetensors' own errors for a damaged header or data
        raise CheckpointError(f"{path} is not a readable .safetensors file ({' '.join(str(e).split())[:120]}); "
                              f"{fix}") from None


def _shared_weight_modulated_conv(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """A StyleGAN2 modulated convolution (GFPGAN's decoder) without per-sample weights: the input
    scaled by the style, one shared convolution, the output scaled by the demodulation coefficients.
    The same sums as the grouped convolution with runtime weights, which ONNX cannot export."""
    import torch.nn.functional as F

    b, c = x.shape[:2]
    s = self.modulation(style)                                       # (b, c_in)
    weight = self.weight[0]                                          # (c_out, c_in, k, k)
    if self.sample_mode == "upsample":
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    elif self.sample_mode == "downsample":
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    out = F.conv2d(x * s.view(b, c, 1, 1), weight, padding=self.padding)
    if self.demodulate:
        demod = torch.rsqrt((s * s) @ weight.pow(2).sum([2, 3]).t() + self.eps)     # (b, c_out)
        out = out * demod.view(b, self.out_channels, 1, 1)
    return out


def _rewrite_modulated_convs(model: nn.Module) -> None:
    import types

    for module in model.modules():
        if type(module).__name__ == "ModulatedConv2d" and hasattr(module, "modulation"):
            module.forward = types.MethodType(_shared_weight_modulated_conv, module)


# What export changes in a module before tracing it (the reference is always spandrel's own forward).
REWRITES: dict[str, Callable[[nn.Module], None]] = {"GFPGAN": _rewrite_modulated_convs}


def require_spandrel():
    try:
        import spandrel
    except ImportError:
        raise ConfigError("image models (upscalers, restorers) are loaded by spandrel: pip install "
                          f"'gan-pack[images]' (spandrel=={SPANDREL_VERSION})") from None
    return spandrel


def state_dict_of(content: Any) -> dict[str, torch.Tensor] | None:
    """The state dict inside a loaded file (bare, or under params_ema, params, state_dict, ... as spandrel
    unwraps it), or None."""
    if not isinstance(content, dict) or not content:
        return None
    spandrel = require_spandrel()
    try:
        state = spandrel.canonicalize_state_dict(dict(content))
    except Exception:           # spandrel's unwrapping of a dict it did not expect
        return None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    return state


def detect_architecture(content: Any) -> tuple[str | None, str]:
    """(spandrel's architecture id, "") when spandrel recognises the state dict, else (None, why not).
    Reads keys and shapes only."""
    state = state_dict_of(content)
    if state is None:
        return None, "not a state dict of tensors"
    spandrel = require_spandrel()
    for entry in spandrel.MAIN_REGISTRY:
        try:
            if not entry.detect(state):
                continue
        except Exception:       # a detector that trips over an unexpected shape says no
            continue
        try:                    # spandrel's key checks are loose: the weights must load into the model too
            spandrel.ModelLoader("cpu").load_from_state_dict(state)
        except Exception:
            return None, f"its keys look like {entry.architecture.name}'s but its weights do not load into one"
        return entry.architecture.id, ""
    return None, "no architecture spandrel knows has its keys and shapes"


def load_descriptor(content: Any, where: str):
    """spandrel's ImageModelDescriptor for the state dict, in eval mode on the CPU in fp32."""
    spandrel = require_spandrel()
    state = state_dict_of(content)
    if state is None:
        raise CheckpointError(f"{where} holds no state dict of tensors; give an upscaler's .pth or .safetensors")
    try:
        descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise CheckpointError(f"{where} is no architecture spandrel {SPANDREL_VERSION} knows") from None
    except Exception as e:      # keys of a known architecture with shapes its code cannot take
        raise CheckpointError(f"{where} looks like a spandrel architecture but does not load "
                              f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise CheckpointError(f"{where} is {descriptor.architecture.name}, which takes an image and a mask "
                              f"(inpainting): gan_pack exports image-to-image models only")
    why = REFUSED.get(descriptor.architecture.id)
    if why:
        raise CheckpointError(f"{where} is {descriptor.architecture.name}, which gan_pack does not export: {why}")
    return descriptor.eval().float()


def spec_of_descriptor(descriptor) -> ImageModelSpec:
    rules = descriptor.size_requirements
    arch = descriptor.architecture.id
    return ImageModelSpec(arch=arch, in_channels=int(descriptor.input_channels),
                          out_channels=int(descriptor.output_channels), scale=int(descriptor.scale),
                          multiple_of=max(int(rules.multiple_of), MULTIPLE_OF.get(arch, 1)),
                          minimum=max(1, int(rules.minimum)),
                          square=bool(rules.square), fixed=FIXED_SIZE.get(arch),
                          tiling=descriptor.tiling.name.lower())


class SpandrelForward(nn.Module):
    """spandrel's forward for one architecture, clamped to [0, 1]; with half, in fp16 inside and float32
    at its edges. Its input already meets the size rules (the runtime pads)."""

    def __init__(self, descriptor, half: bool = False):
        super().__init__()
        self.model = descriptor.model.half() if half else descriptor.model
        self.call = CALLS.get(descriptor.architecture.id, descriptor._call_fn)
        self.half = half

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.half:
            image = image.half()
        return self.call(self.model, image).float().clamp(0.0, 1.0)


@dataclass
class ImageExportable:
    """An image model ready to write: the module, what it takes and gives, and where it came from."""

    descriptor: Any
    spec: ImageModelSpec
    family: str
    source: str
    tags: list[str]
    dataset: str = "unknown"

    def module(self, half: bool = False, rewrite: bool = False) -> nn.Module:
        """spandrel's forward (the reference); with rewrite, as export traces it (REWRITES), on a copy."""
        import copy

        arch = self.descriptor.architecture.id
        rewrite = rewrite and arch in REWRITES
        descriptor = copy.deepcopy(self.descriptor) if half or rewrite else self.descriptor
        if rewrite:
            REWRITES[arch](descriptor.model)
        return SpandrelForward(descriptor, half).eval()


def exportable_spandrel(content: Any, where: str, family: str = "spandrel",
                        dataset: str = "unknown") -> ImageExportable:
    descriptor = load_descriptor(content, where)
    spec = spec_of_descriptor(descriptor)
    if spec.in_channels == 4:
        spec = ImageModelSpec(**{**spec.__dict__, "alpha": True})
    return ImageExportable(descriptor, spec, family, descriptor.architecture.name, list(descriptor.tags), dataset)

"""StyleGAN2 generators, exported: the graph every runtime likes, made from the network's own weights.

`StyleGAN2Graph` computes what the lineage's `Generator` computes for one latent, written the way an
ONNX runtime wants it:
- modulated convolution with constant weights: the input channels scaled by the style, one
  convolution with the shared weight, the outputs scaled by the demodulation coefficients
  rsqrt(style^2 @ sum_k(weight^2) + 1e-8), instead of a grouped convolution of per-sample weights
  (same math, any batch);
- the FIR up/down-sampling filters as ordinary (depthwise and transposed) convolutions;
- noise made explicit: none (zeros, NVlabs' noise_mode='none') or const (buffers in the model);
- truncation in w space around the average latent, psi an input of the graph (absent: 1).

(A class-conditional generator in NVlabs' convention goes through `export --module` instead: the
adapter passes its noise_mode, fused_modconv and truncation_psi.)

`StyleGAN2Parts` is what the graph is built from; `parts_of_stylegan2_torch` reads it off a
`stylegan2_torch.Generator` (PyPI `stylegan2-torch`), and `exportable_stylegan2_torch` loads such a
generator from a checkpoint and returns it ready for `write_generator`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import gan_pack
from gan_pack.contract.metadata import generator_metadata
from gan_pack.errors import CheckpointError, ConfigError
from gan_pack.pytorch.checkpoint import load_untrusted
from gan_pack.pytorch.export import Exportable
from gan_pack.pytorch.importer import build, load_strict
from gan_pack.pytorch.stylegan2_init import MEAN_LATENT_SAMPLES, parse_stylegan2_init
from gan_pack.pytorch.stylegan2_ops import stylegan2_torch_generator

NOISE_MODES = ("none", "const")
MEAN_LATENT_KEYS = ("mean_latent", "latent_avg", "w_avg")
STYLEGAN_PARITY_BATCHES = (1, 7, 64)


# ---------------------------------------------------------------- the graph

def fir_kernel(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """A 2-D FIR kernel as depthwise convolution weights (channels, 1, kh, kw), flipped as the
    lineage's upfirdn2d applies it."""
    return torch.flip(kernel, [0, 1]).reshape(1, 1, *kernel.shape).repeat(channels, 1, 1, 1).contiguous()


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """upfirdn2d(x, kernel, pad=pad) at the same rate: a depthwise convolution."""
    if pad[0] != pad[1]:
        x, pad = F.pad(x, [pad[0], pad[1]] * 2), (0, 0)
    return F.conv2d(x, kernel, padding=pad[0], groups=x.shape[1])


class ScaledLinear(nn.Module):
    """An equalized-learning-rate linear layer with its gains folded in: x @ weight.T + bias, then
    leaky ReLU times sqrt(2) (lrelu=True), as the lineage's EqualLinear / fused_leaky_relu and NVlabs'
    FullyConnectedLayer compute; no gain is multiplied in the graph."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, lrelu: bool = False):
        super().__init__()
        self.lrelu = lrelu
        self.register_buffer("weight", weight.detach().float().clone())        # (out, in)
        self.register_buffer("bias", bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight, self.bias)
        return F.leaky_relu(x, 0.2) * math.sqrt(2) if self.lrelu else x


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


def equal_linear(layer: nn.Module, lrelu: bool) -> ScaledLinear:
    """A stylegan2-torch EqualLinear (or EqualLeakyReLU) as a ScaledLinear."""
    return ScaledLinear(layer.weight * layer.scale, layer.bias * layer.lr_mult, lrelu)


class ModulatedConv(nn.Module):
    """One modulated convolution of a block (or of a ToRGB layer, demodulate=False), optionally
    upsampling by 2 with the block's blur filter; then noise, bias, activation (activate=True) times
    `gain`, and clamping to +-clamp*gain (NVlabs' conv_clamp)."""

    def __init__(self, weight: torch.Tensor, affine: nn.Module, *, demodulate: bool, up: bool = False,
                 blur: tuple[torch.Tensor, tuple[int, int]] | None = None, bias: torch.Tensor | None = None,
                 activate: bool = True, noise: torch.Tensor | None = None, gain: float = 1.0,
                 clamp: float | None = None):
        super().__init__()
        out_channels, in_channels, k, _ = weight.shape                      # already scaled
        self.affine, self.demodulate, self.up, self.activate = affine, demodulate, up, activate
        self.gain, self.clamp = gain, clamp                               # NVlabs' bias_act gain and conv_clamp
        self.padding = k // 2
        # a transposed convolution takes (in, out, k, k)
        self.register_buffer("weight", weight.transpose(0, 1).contiguous() if up else weight.contiguous())
        self.register_buffer("weight_power", weight.pow(2).sum([2, 3]).t().contiguous())   # (in, out)
        self.blur_pad = blur[1] if blur else (0, 0)
        self.register_buffer("blur", fir_kernel(blur[0], out_channels) if blur else None)
        self.register_buffer("bias", bias)
        self.register_buffer("noise", noise)                                # (1, 1, H, W), weight included

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)                                              # (B, in)
        x = x * style[:, :, None, None]
        if self.up:
            x = F.conv_transpose2d(x, self.weight, stride=2)                # (B, out, 2H+1, 2W+1)
            x = blur(x, self.blur, self.blur_pad)
        else:
            x = F.conv2d(x, self.weight, padding=self.padding)
        if self.demodulate:
            x = x * torch.rsqrt(style.pow(2) @ self.weight_power + 1e-8)[:, :, None, None]
        if self.noise is not None:
            x = x + self.noise
        if self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1)
        x = F.leaky_relu(x, 0.2) * (math.sqrt(2) * self.gain) if self.activate else x
        return x if self.clamp is None else x.clamp(-self.clamp * self.gain, self.clamp * self.gain)


class Upsample(nn.Module):
    """The skip image upsampled by 2 with the FIR filter (upfirdn2d up=2, pad (p0, p1)): a transposed
    depthwise convolution, of which upfirdn2d keeps [k-1-p0 : 2n+p1]."""

    def __init__(self, kernel: torch.Tensor, pad: tuple[int, int], channels: int):
        super().__init__()
        k = kernel.shape[0]
        self.crop = (k - 1 - pad[0], k - 2 - pad[1])                           # from the start, from the end
        if min(self.crop) < 0:
            raise ConfigError(f"an upsampling filter of {k} taps with padding {pad} is not supported")
        self.register_buffer("kernel", kernel.reshape(1, 1, k, k).repeat(channels, 1, 1, 1).contiguous())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        first, last = self.crop
        if first == last:
            return F.conv_transpose2d(image, self.kernel, stride=2, padding=first, groups=image.shape[1])
        y = F.conv_transpose2d(image, self.kernel, stride=2, groups=image.shape[1])   # (B, C, 2H+k-2, 2W+k-2)
        return y[:, :, first:y.shape[2] - last, first:y.shape[3] - last]


@dataclass
class StyleGAN2Parts:
    """What a StyleGAN2 synthesis is made of, read off some implementation."""

    mapping: nn.Module                       # z (B, latent) -> w (B, latent)
    constant: torch.Tensor                   # (1, C, 4, 4)
    blocks: list[ModulatedConv]              # in order: conv, then (up conv, conv) per resolution
    to_rgbs: list[ModulatedConv]             # one per resolution
    upsamples: list[Upsample]                # one per resolution after the first
    w_avg: torch.Tensor                      # (latent,)


class StyleGAN2Graph(nn.Module):
    """noise (B, latent) [+ psi (B,) or (1,)] -> images (B, C, H, W) in [-1, 1]."""

    def __init__(self, parts: StyleGAN2Parts):
        super().__init__()
        self.mapping = parts.mapping
        self.register_buffer("constant", parts.constant.detach().clone())
        self.register_buffer("w_avg", parts.w_avg.detach().reshape(1, -1).clone())
        self.blocks, self.to_rgbs = nn.ModuleList(parts.blocks), nn.ModuleList(parts.to_rgbs)
        self.upsamples = nn.ModuleList(parts.upsamples)
        self.image_channels = int(parts.to_rgbs[0].weight.shape[0])         # what ToRGB makes: 1, 3 or 4

    def forward(self, noise: torch.Tensor, psi: torch.Tensor | None = None) -> torch.Tensor:
        w = self.mapping(noise)                                                # (B, latent)
        if psi is not None:
            w = self.w_avg + psi.reshape(-1, 1) * (w - self.w_avg)
        x = self.constant.expand(noise.shape[0], -1, -1, -1)
        x = self.blocks[0](x, w)
        image = self.to_rgbs[0](x, w)
        for i in range(1, len(self.to_rgbs)):
            x = self.blocks[2 * i](self.blocks[2 * i - 1](x, w), w)
            image = self.upsamples[i - 1](image) + self.to_rgbs[i](x, w)
        return image.clamp(-1.0, 1.0)


# ---------------------------------------------------------------- stylegan2-torch (PyPI)

class OwnForward(nn.Module):
    """A stylegan2_torch.Generator's own forward behind the contract (noise [+ psi] -> images in
    [-1, 1]), with the given per-block noise: what its export is proven against."""

    def __init__(self, generator: nn.Module, noises: list[torch.Tensor], w_avg: torch.Tensor):
        super().__init__()
        self.generator, self.noises, self.w_avg = generator, noises, w_avg.reshape(1, -1)

    def forward(self, noise: torch.Tensor, psi: torch.Tensor | None = None) -> torch.Tensor:
        trunc = None if psi is None else (psi.reshape(-1, 1), self.w_avg)
        return self.generator([noise], noises=self.noises, trunc_option=trunc).clamp(-1.0, 1.0)


def noise_resolutions(blocks: int) -> list[int]:
    """The side of the noise each block adds: conv 0 at 4, then (up conv, conv) at 8, 16, ..."""
    return [4 * 2 ** ((j + 1) // 2) for j in range(blocks)]


def parts_of_stylegan2_torch(g: nn.Module, noises: list[torch.Tensor] | None, w_avg: torch.Tensor) -> StyleGAN2Parts:
    """The parts of a `stylegan2_torch.Generator` (its convs, up_convs and to_rgbs, interleaved as
    its forward runs them); `noises` per block (None: noise_mode none)."""
    order = [g.convs[0]] + [b for i in range(1, len(g.convs)) for b in (g.up_convs[i - 1], g.convs[i])]
    blocks = []
    for j, block in enumerate(order):
        up = hasattr(block, "blur")
        noise = None if noises is None else (block.add_noise.weight * noises[j]).detach().clone()
        blocks.append(ModulatedConv((block.scale * block.weight[0]).detach(), equal_linear(block.affine, False),
                                    demodulate=True, up=up,
                                    blur=(block.blur.kernel, block.blur.pad) if up else None,
                                    bias=block.leaky_relu.bias.detach().clone(), noise=noise))
    to_rgbs = [ModulatedConv((rgb.scale * rgb.weight[0]).detach(), equal_linear(rgb.affine, False), demodulate=False,
                             bias=rgb.bias.detach().reshape(-1).clone(), activate=False) for rgb in g.to_rgbs]
    upsamples = [Upsample(rgb.upsample.kernel, rgb.upsample.pad, rgb.weight.shape[1]) for rgb in g.to_rgbs[1:]]
    mapping = nn.Sequential(PixelNorm(), *[equal_linear(layer, True) for layer in list(g.mapping)[1:]])
    return StyleGAN2Parts(mapping, g.input.input.detach(), blocks, to_rgbs, upsamples, w_avg.reshape(-1))


def load_stylegan2_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(the generator's state dict, extras): a bare state dict, or a dict holding `g_ema` (as the
    lineage's train.py saves it: with `g`, `d`, optimizer states and its argparse `args`) and
    optionally a mean latent and noise buffers. Loaded with weights_only: no code runs."""
    ckpt = load_untrusted(path, "give the generator's weights: torch.save({'g_ema': g_ema.state_dict()}, 'G.pt')",
                          (argparse.Namespace,))
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a state dict")
    state = ckpt.get("g_ema", ckpt)
    tensors = isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())
    if not tensors or not any(str(k).startswith("mapping.") for k in state):
        keys = ", ".join(map(str, list(ckpt)[:6]))
        raise CheckpointError(f"{path} is not a StyleGAN2 generator's state dict, nor a checkpoint holding one as "
                              f"g_ema (its keys: {keys}); save torch.save({{'g_ema': g_ema.state_dict()}}, 'G.pt')")
    extras: dict = {"weights": "g_ema" if state is not ckpt else "state dict"}
    state = dict(state)
    for key in MEAN_LATENT_KEYS:
        if isinstance(ckpt.get(key), torch.Tensor):
            extras["mean_latent"] = ckpt[key].float()
            break
    stored = sorted((int(m.group(1)), k) for k in state if (m := re.fullmatch(r"noises\.noise_(\d+)", str(k))))
    if stored:                                          # rosinality's lineage keeps them in the generator
        extras["noises"] = [state.pop(k) for _, k in stored]
    elif isinstance(ckpt.get("noises"), (list, tuple)):
        extras["noises"] = list(ckpt["noises"])
    finite = [extras.get("mean_latent")] + list(extras.get("noises", []))
    if any(isinstance(t, torch.Tensor) and not bool(torch.isfinite(t.float()).all()) for t in finite):
        raise CheckpointError(f"{path}: its mean latent or noise buffers hold NaN or infinite values")
    return state, extras


def mean_latent(mapping: nn.Module, latent_dim: int, seed: int) -> torch.Tensor:
    """The average w of MEAN_LATENT_SAMPLES standard normal z, drawn from `seed`."""
    z = torch.randn(MEAN_LATENT_SAMPLES, latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return mapping(z).mean(0)


def const_noises(path: Path, extras: dict, blocks: int, seed: int | None) -> list[torch.Tensor]:
    """The fixed noise of each block: the checkpoint's, or drawn from --seed."""
    sides = noise_resolutions(blocks)
    if "noises" in extras:
        noises = extras["noises"]
        shapes = [tuple(n.shape[-2:]) if isinstance(n, torch.Tensor) else None for n in noises]
        if shapes != [(s, s) for s in sides]:
            raise CheckpointError(f"{path} holds {len(noises)} noise buffers of sides {shapes[:3]}...; this "
                                  f"generator needs {blocks}, of sides {', '.join(map(str, sides))}")
        return [n.float().reshape(1, 1, s, s) for n, s in zip(noises, sides)]
    if seed is None:
        raise ConfigError(f"--noise-mode const: {path} holds no noise buffers (and "
                          f"{'a' if 'mean_latent' in extras else 'no'} mean latent); give --seed N to draw them, "
                          f"or --noise-mode none")
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 1, s, s, generator=generator) for s in sides]


def exportable_stylegan2_torch(weights: str | Path, init: dict, noise_mode: str = "none", seed: int | None = None,
                               dataset: str = "unknown") -> Exportable:
    """A `stylegan2_torch.Generator(**init)` checkpoint, loaded with the stand-in ops and rewritten
    as a StyleGAN2Graph: noise (B, latent_dim) [+ psi] -> images (B, 1, R, R)."""
    if noise_mode not in NOISE_MODES:
        raise ConfigError(f"--noise-mode must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}")
    path = Path(weights)
    init = parse_stylegan2_init(init)
    state, extras = load_stylegan2_checkpoint(path)
    generator = build(stylegan2_torch_generator(), init)
    load_strict(generator, state, path)
    generator = generator.float().eval()
    blocks = 2 * len(generator.convs) - 1
    noises = const_noises(path, extras, blocks, seed) if noise_mode == "const" else None
    if "mean_latent" in extras:
        w_avg, w_avg_source = extras["mean_latent"].reshape(-1), "checkpoint"
        if w_avg.numel() != generator.latent_dim:
            raise CheckpointError(f"{path}: its mean latent has {w_avg.numel()} values, not latent_dim "
                                  f"{generator.latent_dim}")
    else:
        w_avg = mean_latent(generator.mapping, generator.latent_dim, seed or 0)
        w_avg_source = f"mean of {MEAN_LATENT_SAMPLES} mapped samples, seed {seed or 0}"
    graph = StyleGAN2Graph(parts_of_stylegan2_torch(generator, noises, w_avg)).eval()
    zeros = [torch.zeros(1, 1, side, side) for side in noise_resolutions(blocks)]
    reference = OwnForward(generator, zeros if noises is None else noises, w_avg).eval()
    side = init.get("resolution", 0)
    metadata = stylegan2_metadata(init, generator.latent_dim, noise_mode, extras["weights"], w_avg_source, dataset,
                                  image_shape=(graph.image_channels, side, side))
    return Exportable(graph, generator.latent_dim, 0, metadata, psi=True, reference=reference,
                      reference_name="stylegan2_torch.Generator.forward (stand-in ops), fp32")


def stylegan2_metadata(init: dict, latent_dim: int, noise_mode: str, weights: str, w_avg_source: str,
                       dataset: str, imported_from: str = "stylegan2-torch", arch: str = "stylegan2",
                       *, image_shape: tuple[int, int, int], num_classes: int = 0) -> dict[str, str]:
    """The metadata of an imported StyleGAN: a generator's, with how its noise and mean latent were made.
    image_shape is what the rebuilt network makes (its ToRGB layers' channels), never assumed."""
    config = {"model": "cgan" if num_classes else "gan", "arch": arch, "noise_dim": latent_dim,
              "imported_from": imported_from, "init": init, "noise_mode": noise_mode}
    info = {"name": dataset, "num_classes": num_classes, "image_shape": list(image_shape),
            "class_names": [str(c) for c in range(num_classes)]}
    metadata = generator_metadata(config, info, 0, 0, weights, "fp32", 0, gan_pack.__version__)
    del metadata["epochs"], metadata["steps"]                # unknown for a network trained elsewhere
    metadata.update({"imported_from": imported_from, "noise_mode": noise_mode, "psi_input": "true",
                     "mean_latent": w_avg_source, "train_config": json.dumps(config, sort_keys=True, default=str)})
    return metadata

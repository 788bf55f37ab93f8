"""NVlabs StyleGAN3 generators (--cfg stylegan3-t and stylegan3-r), rebuilt from the records of their
network pickle by code of ours, in standard ONNX ops.

The records say everything the graph needs: the Fourier-feature input's size, sampling rate, bandwidth,
frequencies, phases and user transform; each layer's kernel, up- and down-sampling factors, padding,
clamp, and its FIR filters (stored as buffers, so nothing is designed again). The graph computes what
NVlabs' forward computes with its reference ops:

- the input: the affine of w gives a rotation and translation, applied to the frequencies and phases;
  sin(2 pi (grid . freqs + phases)), damped out of band, then a channel mix (Sin and MatMul);
- each layer: a modulated convolution (the weight pre-normalized, input scaled by style and by the
  layer's stored input gain, output by the demodulation coefficients), then `filtered_lrelu` as
  bias, an upsampling ConvTranspose with the up filter (two 1-D passes), LeakyRelu, Clip, and a
  strided convolution with the down filter (two 1-D passes, or one 2-D radial filter for -R);
- the output scaled by output_scale, clamped to [-1, 1]; psi truncates w around the stored w_avg.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_pack.errors import CheckpointError
from gan_pack.pytorch.network_pickle import PersistentObject
from gan_pack.pytorch.nvlabs_stylegan2 import (
    MAX_CHANNELS,
    Dense,
    Mapping,
    _child,
    _int,
    _number,
    check_tensors,
    mapping_shapes,
    stylegan2_sizes,
)

MAX_TAPS = 64
MAX_SIDE = 4096 + 256


def _crop_pad(x: torch.Tensor, dim: int, lo: int, hi: int) -> torch.Tensor:
    """Pad (positive) or crop (negative) `x` along `dim` by lo before and hi after."""
    if lo < 0 or hi < 0:
        x = x.narrow(dim, max(-lo, 0), x.shape[dim] - max(-lo, 0) - max(-hi, 0))
    if lo > 0 or hi > 0:
        pads = [0, 0, 0, 0]
        pads[(3 - dim) * 2: (3 - dim) * 2 + 2] = [max(lo, 0), max(hi, 0)]
        x = F.pad(x, pads)
    return x


class FirUp(nn.Module):
    """upfirdn2d(x, f, up, padding, gain=up**2) for a separable 1-D filter (or none): per axis, a
    depthwise ConvTranspose with stride up, then the pad/crop that makes it the zero-insert-pad-filter."""

    def __init__(self, f: torch.Tensor | None, up: int, padding: list[int], channels: int):
        super().__init__()
        self.up, self.padding = up, padding                                       # x0, x1, y0, y1
        self.taps = 1 if f is None else f.shape[0]
        kernel = torch.ones(1) if f is None else f.float() * up                   # gain up**2 over two passes
        self.register_buffer("kernel_x", kernel.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1).contiguous())
        self.register_buffer("kernel_y", kernel.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1).contiguous())

    def _axis(self, x: torch.Tensor, dim: int, kernel: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        n = x.shape[dim]
        if self.up > 1 or self.taps > 1:
            stride = (1, self.up) if dim == 3 else (self.up, 1)
            x = F.conv_transpose2d(x, kernel, stride=stride, groups=x.shape[1])  # (n-1)*up + taps
        start = self.taps - 1 - lo                                               # the first output's index in x
        length = n * self.up + lo + hi - self.taps + 1
        return _crop_pad(x, dim, -start, start + length - x.shape[dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, x1, y0, y1 = self.padding
        return self._axis(self._axis(x, 3, self.kernel_x, x0, x1), 2, self.kernel_y, y0, y1)


class FirDown(nn.Module):
    """upfirdn2d(x, f, down=down): the filter (1-D separable, or 2-D radial) as strided depthwise convolutions."""

    def __init__(self, f: torch.Tensor | None, down: int, channels: int):
        super().__init__()
        self.down = down
        f = None if f is None else torch.flip(f.float(), list(range(f.dim())))   # upfirdn2d convolves
        self.separable = f is not None and f.dim() == 1
        shapes = [(1, 1, 1, -1), (1, 1, -1, 1)] if self.separable else [(1, 1, *f.shape)] if f is not None else []
        for name, shape in zip(("kernel_a", "kernel_b"), shapes):
            self.register_buffer(name, f.reshape(shape).repeat(channels, 1, 1, 1).contiguous())
        self.filtered = f is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.filtered:
            return x[:, :, ::self.down, ::self.down] if self.down > 1 else x
        if self.separable:
            x = F.conv2d(x, self.kernel_a, stride=(1, self.down), groups=x.shape[1])
            return F.conv2d(x, self.kernel_b, stride=(self.down, 1), groups=x.shape[1])
        return F.conv2d(x, self.kernel_a, stride=self.down, groups=x.shape[1])


def _filter(tensors: dict, key: str, radial_ok: bool) -> torch.Tensor | None:
    f = tensors.get(key)
    if f is None:
        return None
    if f.dim() not in ((1, 2) if radial_ok else (1,)) or not 1 <= f.shape[0] <= MAX_TAPS \
            or (f.dim() == 2 and f.shape[0] != f.shape[1]):
        raise CheckpointError(f"{key} has shape {tuple(f.shape)}, not a FIR filter of at most {MAX_TAPS} taps")
    return f.float()


class Layer(nn.Module):
    """One SynthesisLayer: modulated convolution, then filtered_lrelu."""

    def __init__(self, record: PersistentObject, where: str, tensors: dict):
        super().__init__()
        self.torgb = bool(record.attribute("is_torgb"))
        up, down = _int(record, "up_factor", 1, 4, where), _int(record, "down_factor", 1, 4, where)
        padding = record.attribute("padding")
        if not (isinstance(padding, list) and len(padding) == 4 and all(isinstance(p, int) and abs(p) <= MAX_SIDE
                                                                        for p in padding)):
            raise CheckpointError(f"{where}.padding is {str(padding)[:40]}, not four whole numbers")
        self.affine = Dense(_child(record, "affine", where), f"{where}.affine", tensors)
        weight = tensors[f"{where}.weight"].float()                               # (out, in, k, k)
        if weight.shape[-1] % 2 == 0 or weight.shape[-1] > 7:
            raise CheckpointError(f"{where}.weight has a {weight.shape[-1]}x{weight.shape[-1]} kernel, not odd up to 7")
        self.padding = weight.shape[-1] - 1
        self.style_gain = 1 / math.sqrt(weight[0].numel()) if self.torgb else 1.0
        if not self.torgb:
            weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("weight_power", weight.square().sum([2, 3]).t().contiguous())   # (in, out)
        self.register_buffer("bias", tensors[f"{where}.bias"].float().reshape(1, -1, 1, 1))
        self.register_buffer("input_gain", tensors[f"{where}.magnitude_ema"].float().rsqrt().reshape(1, 1))
        channels = weight.shape[0]
        self.up = FirUp(_filter(tensors, f"{where}.up_filter", False), up, padding, channels)
        self.down = FirDown(_filter(tensors, f"{where}.down_filter", True), down, channels)
        self.clamp = _number(record, "conv_clamp", where, optional=True)
        self.gain, self.slope = (1.0, 1.0) if self.torgb else (math.sqrt(2), 0.2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.style_gain                                  # (B, in)
        x = F.conv2d(x * (styles * self.input_gain)[:, :, None, None], self.weight, padding=self.padding)
        if not self.torgb:
            x = x * torch.rsqrt(styles.square() @ self.weight_power + 1e-8)[:, :, None, None]
        x = self.up(x + self.bias)
        if not self.torgb:
            x = F.leaky_relu(x, self.slope) * self.gain
        if self.clamp is not None:
            x = x.clamp(-self.clamp, self.clamp)
        return self.down(x)


class FourierInput(nn.Module):
    """SynthesisInput: w -> (B, C, H, W) Fourier features under the rotation and translation w says."""

    def __init__(self, record: PersistentObject, tensors: dict):
        super().__init__()
        where = "synthesis.input"
        self.affine = Dense(_child(record, "affine", where), f"{where}.affine", tensors)
        size = np.asarray(record.attribute("size"))
        if size.shape != (2,) or not all(1 <= int(s) <= MAX_SIDE for s in size):
            raise CheckpointError(f"{where}.size is {str(record.attribute('size'))[:40]}, not [width, height]")
        self.width, self.height = int(size[0]), int(size[1])
        rate, self.bandwidth = _number(record, "sampling_rate", where), _number(record, "bandwidth", where)
        if not rate > 2 * self.bandwidth:
            raise CheckpointError(f"{where}: sampling_rate {rate} is not above twice the bandwidth {self.bandwidth}")
        self.half_rate = rate / 2
        theta = torch.tensor([[0.5 * self.width / rate, 0, 0], [0, 0.5 * self.height / rate, 0]])
        grid = F.affine_grid(theta[None], [1, 1, self.height, self.width], align_corners=False)
        self.register_buffer("grid", grid.reshape(1, -1, 2))                       # (1, H*W, 2)
        self.register_buffer("transform", tensors[f"{where}.transform"].float())
        self.register_buffer("freqs", tensors[f"{where}.freqs"].float())           # (C, 2)
        self.register_buffer("phases", tensors[f"{where}.phases"].float())         # (C,)
        weight = tensors[f"{where}.weight"].float()
        self.register_buffer("mix", (weight / math.sqrt(weight.shape[0])).t().contiguous())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        t = self.affine(w)                                                          # (B, 4): cos, sin, tx, ty
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        c, s, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        rotate_translate = torch.stack([torch.stack([c, -s, -c * tx + s * ty], 1),
                                        torch.stack([s, c, -s * tx - c * ty], 1),
                                        torch.stack([zero, zero, one], 1)], 1)     # (B, 3, 3)
        m = rotate_translate @ self.transform
        phases = self.phases + (self.freqs @ m[:, :2, 2:]).squeeze(2)              # (B, C)
        freqs = self.freqs @ m[:, :2, :2]                                           # (B, C, 2)
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.half_rate - self.bandwidth)).clamp(0, 1)
        x = self.grid @ freqs.transpose(1, 2)                                       # (B, H*W, C)
        x = torch.sin((x + phases[:, None, :]) * (math.pi * 2)) * amplitudes[:, None, :]
        x = x @ self.mix
        return x.reshape(w.shape[0], self.height, self.width, -1).permute(0, 3, 1, 2)


class NVlabsStyleGAN3(nn.Module):
    """noise (B, z_dim) [+ labels (B,)] [+ psi] -> images (B, C, R, R) in [-1, 1]."""

    def __init__(self, mapping: Mapping, features: FourierInput, layers: list[Layer], w_avg: torch.Tensor,
                 output_scale: float):
        super().__init__()
        self.mapping, self.input, self.layers = mapping, features, nn.ModuleList(layers)
        self.register_buffer("w_avg", w_avg.float().reshape(1, -1))
        self.output_scale = output_scale

    def forward(self, noise: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        labels = rest[0] if self.mapping.num_classes else None
        psi = rest[-1] if len(rest) > (1 if self.mapping.num_classes else 0) else None
        w = self.mapping(noise, labels)
        if psi is not None:
            w = self.w_avg + psi.reshape(-1, 1) * (w - self.w_avg)
        x = self.input(w)
        for layer in self.layers:
            x = layer(x, w)
        return (x * self.output_scale).clamp(-1.0, 1.0)


def layer_names(synthesis: PersistentObject) -> list[str]:
    names = synthesis.attribute("layer_names")
    if not (isinstance(names, list) and 1 <= len(names) <= 64 and all(
            isinstance(n, str) and isinstance(synthesis.modules.get(n), PersistentObject) for n in names)):
        raise CheckpointError("synthesis.layer_names does not name its layers")
    return names


def expected_shapes3(g: PersistentObject, sizes: dict, tensors: dict) -> dict[str, tuple | None]:
    synthesis = _child(g, "synthesis", "G")
    shapes = mapping_shapes(g, sizes, tensors)
    channels = tuple(tensors.get("synthesis.input.weight", torch.zeros(0, 0)).shape)[0]
    if not 1 <= channels <= MAX_CHANNELS:
        raise CheckpointError(f"synthesis.input.weight is missing or has {channels} channels, not 1..{MAX_CHANNELS}")
    w = sizes["w_dim"]
    shapes.update({"synthesis.input.weight": (channels, channels), "synthesis.input.affine.weight": (4, w),
                   "synthesis.input.affine.bias": (4,), "synthesis.input.transform": (3, 3),
                   "synthesis.input.freqs": (channels, 2), "synthesis.input.phases": (channels,)})
    for name in layer_names(synthesis):
        at = f"synthesis.{name}"
        weight = tuple(tensors.get(f"{at}.weight", torch.zeros(0, 0, 1, 1)).shape)
        out = weight[0] if len(weight) == 4 else 0
        if not 1 <= out <= MAX_CHANNELS:
            raise CheckpointError(f"{at}.weight is missing or has {out} outputs, not 1..{MAX_CHANNELS}")
        shapes.update({f"{at}.weight": (out, channels, weight[2], weight[3]), f"{at}.bias": (out,),
                       f"{at}.affine.weight": (channels, w), f"{at}.affine.bias": (channels,),
                       f"{at}.magnitude_ema": ()})
        for key in ("up_filter", "down_filter"):
            if f"{at}.{key}" in tensors:
                shapes[f"{at}.{key}"] = None
        channels = out
    return shapes


def rebuild_stylegan3(g: PersistentObject, source: str) -> tuple[NVlabsStyleGAN3, dict]:
    """The clean-room network of a StyleGAN3 generator record, and its sizes."""
    sizes = stylegan2_sizes(g)
    tensors = g.tensors()
    check_tensors(expected_shapes3(g, sizes, tensors), tensors, source)
    synthesis = _child(g, "synthesis", "G")
    mapping = Mapping(_child(g, "mapping", "G"), tensors, sizes["c_dim"])
    layers = [Layer(synthesis.modules[name], f"synthesis.{name}", tensors) for name in layer_names(synthesis)]
    net = NVlabsStyleGAN3(mapping, FourierInput(synthesis.modules["input"], tensors), layers,
                          tensors["mapping.w_avg"], _number(synthesis, "output_scale", "synthesis")).eval()
    side, want = sizes["img_resolution"], (sizes["img_channels"], sizes["img_resolution"], sizes["img_resolution"])
    with torch.no_grad():                                    # the records' sizes and paddings must meet
        got = tuple(net.input(torch.zeros(1, sizes["w_dim"])).shape[1:])
        x = net.input(net.w_avg)
        for layer in net.layers:
            x = layer(x, net.w_avg)
    if tuple(x.shape[1:]) != want:
        raise CheckpointError(f"{source}: its layers make images of shape {tuple(x.shape[1:])} from an input of "
                              f"{got}, not {want}; the records do not describe a {side} px generator")
    return net, {**sizes, "layers": len(layers)}

"""A clean-room StyleGAN3 generator laid out as NVlabs' network pickles record it (module, attribute and
tensor names), small and with a naive forward of its own: the Fourier input built with explicit 3x3
matrices, per-sample weights in a grouped convolution, and filtered_lrelu as bias, zero-insertion
upsampling with padding and a flipped filter, leaky ReLU with gain and clamp, filter then subsample.
Filters are windowed sincs made with numpy (any low-pass filter serves a parity test); radial=True
gives 2-D down filters, as --cfg stylegan3-r has. Written from the format's description."""

from __future__ import annotations

import numpy as np
import nvlabs_format as nf
import torch
import torch.nn.functional as F
from torch import nn


def lowpass(taps: int, cutoff: float, fs: float) -> torch.Tensor | None:
    if taps == 1:
        return None
    t = (np.arange(taps) - (taps - 1) / 2) / fs
    f = np.sinc(2 * cutoff * t) * np.kaiser(taps, 6.0)
    return torch.tensor(f / f.sum(), dtype=torch.float32)


def upfirdn(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    """Zero insertion, pad (negative: crop) x0, x1, y0, y1, true convolution with f (1-D: per axis), subsample."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [max(pad[0], 0), max(pad[1], 0), max(pad[2], 0), max(pad[3], 0)])
    x = x[:, :, max(-pad[2], 0): x.shape[2] - max(-pad[3], 0), max(-pad[0], 0): x.shape[3] - max(-pad[1], 0)]
    if f is not None:
        f = (f * gain ** (f.dim() / 2)).flip(list(range(f.dim())))
        if f.dim() == 2:
            x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
        else:
            x = F.conv2d(x, f.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
            x = F.conv2d(x, f.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


class SynthesisInput(nn.Module):
    def __init__(self, w_dim, channels, size, sampling_rate, bandwidth):
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size = np.broadcast_to(np.asarray(size), [2])
        self.sampling_rate, self.bandwidth = np.float64(sampling_rate), np.float64(bandwidth)
        freqs = torch.randn(channels, 2)
        freqs = freqs / freqs.norm(dim=1, keepdim=True) * bandwidth * torch.rand(channels, 1)
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = nf.FullyConnectedLayer(w_dim, 4, bias_init=0)
        with torch.no_grad():
            self.affine.weight.mul_(0.3)
            self.affine.bias.copy_(torch.tensor([1.0, 0.2, 0.1, -0.1]))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def forward(self, w):
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        batch = w.shape[0]
        rotation = torch.eye(3).repeat(batch, 1, 1)
        rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        translation = torch.eye(3).repeat(batch, 1, 1)
        translation[:, 0, 2], translation[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rotation @ translation @ self.transform
        phases = self.phases[None] + (self.freqs[None] @ m[:, :2, 2:])[..., 0]
        freqs = self.freqs[None] @ m[:, :2, :2]
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        width, height = int(self.size[0]), int(self.size[1])
        out = torch.zeros(batch, self.channels, height, width)
        for row in range(height):                        # pixel centres in the grid's own units
            for col in range(width):
                gx = (2 * col + 1 - width) / width * (0.5 * width / self.sampling_rate)
                gy = (2 * row + 1 - height) / height * (0.5 * height / self.sampling_rate)
                arg = freqs[:, :, 0] * gx + freqs[:, :, 1] * gy + phases
                out[:, :, row, col] = torch.sin(arg * (np.pi * 2)) * amplitudes
        return torch.einsum("bchw,dc->bdhw", out, self.weight / np.sqrt(self.channels))


class SynthesisLayer(nn.Module):
    def __init__(self, w_dim, is_torgb, in_channels, out_channels, in_size, out_size, up, down, cutoff, fs,
                 radial=False, conv_clamp=256):
        super().__init__()
        self.is_torgb, self.in_channels, self.out_channels = is_torgb, in_channels, out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.conv_kernel = 1 if is_torgb else 3
        self.conv_clamp, self.up_factor, self.down_factor = conv_clamp, up, down
        self.up_taps = 6 * up if up > 1 and not is_torgb else 1
        self.down_taps = 6 * down if down > 1 and not is_torgb else 1
        self.down_radial = radial and not is_torgb
        self.affine = nf.FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, self.conv_kernel, self.conv_kernel))
        self.bias = nn.Parameter(torch.randn(out_channels) * 0.1)
        self.register_buffer("magnitude_ema", torch.tensor(1.7))
        self.register_buffer("up_filter", lowpass(self.up_taps, cutoff, fs))
        down = lowpass(self.down_taps, cutoff, fs)
        self.register_buffer("down_filter", torch.outer(down, down) if down is not None and radial else down)
        total = (self.out_size - 1) * self.down_factor + 1 - (self.in_size + self.conv_kernel - 1) * self.up_factor \
            + self.up_taps + self.down_taps - 2
        lo = (total + self.up_factor) // 2
        hi = total - lo
        self.padding = [int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1])]

    def forward(self, x, w):
        styles = self.affine(w)
        weight = self.weight
        if self.is_torgb:
            styles = styles / np.sqrt(self.in_channels * self.conv_kernel ** 2)
        else:
            weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
        wts = weight[None] * styles[:, None, :, None, None]
        if not self.is_torgb:
            wts = wts * (wts.square().sum([2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
        wts = wts * self.magnitude_ema.rsqrt()
        b, k = x.shape[0], self.conv_kernel
        x = F.conv2d(x.reshape(1, -1, *x.shape[2:]), wts.reshape(-1, self.in_channels, k, k), padding=k - 1, groups=b)
        x = x.reshape(b, -1, *x.shape[2:]) + self.bias[None, :, None, None]
        x = upfirdn(x, self.up_filter, up=self.up_factor, pad=self.padding, gain=self.up_factor ** 2)
        if not self.is_torgb:
            x = F.leaky_relu(x, 0.2) * np.sqrt(2)
        x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return upfirdn(x, self.down_filter, down=self.down_factor)


class SynthesisNetwork(nn.Module):
    """16 px: an input of 20 px at rate 16, two layers filtered at twice the rate, a ToRGB."""

    def __init__(self, w_dim, img_resolution=16, img_channels=3, radial=False):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.output_scale = 0.8
        self.input = SynthesisInput(w_dim, 16, 20, 16, 2)
        specs = [(False, 16, 16, 20, 20, 2, 2, 3.0), (False, 16, 8, 20, 16, 2, 2, 5.0),
                 (True, 8, img_channels, 16, 16, 1, 1, 8.0)]
        self.layer_names = []
        for i, (torgb, cin, cout, sin, sout, up, down, cutoff) in enumerate(specs):
            name = f"L{i}_{sout}_{cout}"
            setattr(self, name, SynthesisLayer(w_dim, torgb, cin, cout, sin, sout, up, down, cutoff, 32, radial))
            self.layer_names.append(name)

    def forward(self, w):
        x = self.input(w)
        for name in self.layer_names:
            x = getattr(self, name)(x, w)
        return x * self.output_scale


class Generator(nn.Module):
    def __init__(self, z_dim=32, c_dim=0, w_dim=32, radial=False):
        super().__init__()
        self._init_args, self._init_kwargs = (), dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=16,
                                                      img_channels=3)
        self.z_dim, self.c_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, c_dim, w_dim, 16, 3
        self.synthesis = SynthesisNetwork(w_dim, radial=radial)
        self.mapping = nf.MappingNetwork(z_dim, c_dim, w_dim, 0)

    @torch.no_grad()
    def forward(self, z, c, truncation_psi=1.0, noise_mode="const"):
        return self.synthesis(self.mapping(z, c, truncation_psi))


nf.NETWORK_CLASSES += (SynthesisInput, SynthesisLayer, SynthesisNetwork, Generator)


def small_generator(seed=0, c_dim=0, radial=False) -> Generator:
    torch.manual_seed(seed)
    return Generator(c_dim=c_dim, radial=radial).eval()

"""A clean-room StyleGAN2 generator in NVlabs' style (stylegan2-ada-pytorch's calling convention,
written from its description, not its code): a mapping network that embeds class labels `c`
(one-hot, as StyleGAN2-ADA's) beside the normalized z and tracks `w_avg`; a synthesis network of
modulated convolutions with noise inputs (`noise_mode` random / const / none); truncation around
w_avg (`truncation_psi`); `fused_modconv` choosing a grouped convolution of per-sample weights (as
NVlabs runs it in inference) or the same math with constant weights. User code for the tests: it is
imported by path, as `ganpack export --module` imports a user's file."""

import math

import torch
import torch.nn.functional as F
from torch import nn


def normalize_2nd_moment(x, eps=1e-8):
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_layers):
        super().__init__()
        self.embed = nn.Linear(c_dim, w_dim) if c_dim else None
        widths = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * num_layers
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c, truncation_psi=1):
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            x = torch.cat([x, normalize_2nd_moment(self.embed(c))], dim=1)
        for fc in self.fcs:
            x = F.leaky_relu(fc(x), 0.2) * math.sqrt(2)
        return self.w_avg + truncation_psi * (x - self.w_avg)         # psi: a number or (B, 1)


def modulated_conv2d(x, weight, styles, demodulate, fused_modconv):
    batch, (out_channels, in_channels, k, _) = x.shape[0], weight.shape
    if fused_modconv:                              # per-sample weights, one grouped convolution
        w = weight[None] * styles[:, None, :, None, None]                      # (B, O, I, k, k)
        if demodulate:
            w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
        x = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, in_channels, k, k), padding=k // 2, groups=batch)
        return x.reshape(batch, out_channels, *x.shape[2:])
    x = F.conv2d(x * styles[:, :, None, None], weight, padding=k // 2)
    if demodulate:
        x = x * (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()[:, :, None, None]
    return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, up=False):
        super().__init__()
        self.affine = nn.Linear(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3) / math.sqrt(in_channels * 9))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.tensor(0.1))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.up = up

    def forward(self, x, w, noise_mode, fused_modconv):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = modulated_conv2d(x, self.weight, self.affine(w), True, fused_modconv)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * math.sqrt(2)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels, img_channels, w_dim):
        super().__init__()
        self.affine = nn.Linear(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)
        self.weight = nn.Parameter(0.2 * torch.randn(img_channels, in_channels, 1, 1) / math.sqrt(in_channels))
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x, w, fused_modconv):
        return modulated_conv2d(x, self.weight, self.affine(w), False, fused_modconv) + self.bias[None, :, None, None]


class Generator(nn.Module):
    """G(z, c) -> images (B, img_channels, R, R), roughly in [-1, 1]."""

    def __init__(self, z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3, channels=32, mapping_layers=2):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, mapping_layers)
        self.const = nn.Parameter(torch.randn(channels, 4, 4))
        sides = [2 ** k for k in range(2, int(math.log2(img_resolution)) + 1)]
        self.convs = nn.ModuleList([SynthesisLayer(channels, channels, w_dim, 4)])
        for side in sides[1:]:
            self.convs.extend([SynthesisLayer(channels, channels, w_dim, side, up=True),
                               SynthesisLayer(channels, channels, w_dim, side)])
        self.torgbs = nn.ModuleList(ToRGBLayer(channels, img_channels, w_dim) for _ in sides)

    def forward(self, z, c=None, truncation_psi=1, noise_mode="random", fused_modconv=True):
        w = self.mapping(z, c, truncation_psi)
        x = self.const[None].expand(z.shape[0], -1, -1, -1)
        x = self.convs[0](x, w, noise_mode, fused_modconv)
        img = self.torgbs[0](x, w, fused_modconv)
        for i in range(1, len(self.torgbs)):
            x = self.convs[2 * i - 1](x, w, noise_mode, fused_modconv)
            x = self.convs[2 * i](x, w, noise_mode, fused_modconv)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + \
                self.torgbs[i](x, w, fused_modconv)
        return img

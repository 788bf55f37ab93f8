"""`--arch fastgan`: a FastGAN-style generator (Liu et al. 2021) and a residual projection
discriminator, for small data sets.

The generator starts from a small square (7 px for 28 px images, 4 px for 32 and 64 px) and doubles
it: nearest upsampling, 3x3 convolutions, BatchNorm and gated linear units (GLU), with every other
block doubled. Skip-layer excitation (SLE) lets the coarse maps gate the channels of the fine ones,
so the image's layout reaches the last layers in one step. The class enters every norm: each
BatchNorm's gain and bias are picked by the label (conditional BatchNorm), so a label steers every
scale, not only the first layer as in the DCGAN preset. Every op is a plain convolution, gather,
pool or elementwise op: the export needs no rewrite, and onnxruntime folds each BatchNorm into the
convolution before it when it loads the file.

The discriminator has no BatchNorm (real and fake share one call): strided residual blocks, with
optional spectral norm, a minibatch-variation plane, and a projection head for the class; with
label_planes the class also enters beside the image, as learnt planes (the DCGAN preset's way), so
D's first layer can tell a wrong-class image from its pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_pack.pytorch.models import DCGAN_UPSAMPLES as UPSAMPLES  # image side -> doublings, as the DCGAN's
from gan_pack.pytorch.models import Conditioned, MinibatchStd, beside_image

# Channels at each side, coarse to fine, in multiples of --width: 64 px, width 32: 256 at 4 px,
# then 128, 128, 64, and 32 at 64 px. Few channels where the maps are large keeps G small and fast.
CHANNELS = {28: (4, 2, 1), 32: (8, 4, 2, 1), 64: (8, 4, 4, 2, 1)}


def generator_channels(width: int, image_size: int) -> list[int]:
    return [width * m for m in CHANNELS[image_size]]


def excitations(maps: int) -> list[tuple[int, int]]:
    """(coarse, fine) map indices that skip-layer excitation joins: the first two maps gate the
    last two (64 px: 4 -> 32 and 8 -> 64), where they are at least two doublings apart; with only
    three maps (28 px: 7, 14, 28) the first gates the last."""
    pairs = [(s, t) for s, t in zip((0, 1), (maps - 2, maps - 1)) if t - s >= 2]
    return pairs or [(0, maps - 1)]


class ClassNorm(nn.Module):
    """BatchNorm with no affine of its own, then a gain and a bias picked by the label (one pair
    when unconditional). Starts as plain BatchNorm: gains 1, biases 0."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(max(num_classes, 1), channels)
        self.bias = nn.Embedding(max(num_classes, 1), channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(x)                                                  # (B, C, H, W)
        if labels is None:
            return x * self.gain.weight[0][:, None, None] + self.bias.weight[0][:, None, None]
        return x * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class GatedConv(nn.Module):
    """3x3 convolution to twice the channels, class norm, GLU: half the channels gate the other half."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 2 * c_out, 3, 1, 1, bias=False)
        self.norm = ClassNorm(2 * c_out, num_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return F.glu(self.norm(self.conv(x), labels), dim=1)             # (B, c_out, H, W)


class UpBlock(nn.Module):
    """Double the side (nearest), then one gated convolution, or two when `double`."""

    def __init__(self, c_in: int, c_out: int, num_classes: int, double: bool):
        super().__init__()
        self.convs = nn.ModuleList([GatedConv(c_in, c_out, num_classes)]
                                   + ([GatedConv(c_out, c_out, num_classes)] if double else []))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        for conv in self.convs:
            x = conv(x, labels)
        return x


class Excitation(nn.Module):
    """Skip-layer excitation: a coarse map, pooled to 4x4 and reduced to one weight per channel of
    a fine map, gates that map's channels."""

    def __init__(self, c_coarse: int, c_fine: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(c_coarse, c_fine, 4, 1, 0, bias=False),
                                  nn.SiLU(), nn.Conv2d(c_fine, c_fine, 1, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return fine * self.gate(coarse)                                   # (B, c_fine, H, W)


class FastGANGenerator(nn.Module):
    """noise (B, noise_dim) [+ labels (B,)] -> images (B, C, H, W) in [-1, 1]."""

    def __init__(self, noise_dim: int, num_classes: int, image_shape: tuple[int, int, int], width: int = 32):
        super().__init__()
        channels, size = image_shape[0], image_shape[1]
        self.num_classes = num_classes
        feats = generator_channels(width, size)
        self.base, self.feats0 = size // 2 ** (len(feats) - 1), feats[0]
        self.project = nn.Linear(noise_dim, 2 * feats[0] * self.base ** 2, bias=False)
        self.project_norm = ClassNorm(2 * feats[0], num_classes)
        self.ups = nn.ModuleList(UpBlock(c_in, c_out, num_classes, double=i % 2 == 0)
                                 for i, (c_in, c_out) in enumerate(zip(feats, feats[1:])))
        self.pairs = excitations(len(feats))
        self.excite = nn.ModuleDict({str(fine): Excitation(feats[coarse], feats[fine]) for coarse, fine in self.pairs})
        self.to_image = nn.Conv2d(feats[-1], channels, 3, 1, 1)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and labels is None:
            raise ValueError("a conditional model needs labels")
        labels = labels if self.num_classes else None
        x = self.project(noise).unflatten(1, (2 * self.feats0, self.base, self.base))
        maps = [F.glu(self.project_norm(x, labels), dim=1)]              # (B, feats0, base, base)
        coarse_of = {fine: coarse for coarse, fine in self.pairs}
        for index, up in enumerate(self.ups, start=1):
            x = up(maps[-1], labels)                                     # (B, feats[index], 2h, 2w)
            if index in coarse_of:
                x = self.excite[str(index)](maps[coarse_of[index]], x)
            maps.append(x)
        return torch.tanh(self.to_image(maps[-1]))                       # (B, C, H, W)


class DownBlock(nn.Module):
    """Halve the side two ways and average them: a strided 4x4 then a 3x3 convolution, and a 2x2
    average pool then a 1x1 convolution (FastGAN's DownBlockComp, without its BatchNorm)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1), nn.LeakyReLU(0.2))
        self.skip = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(c_in, c_out, 1, 1, 0), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) / 2


class FastGANDiscriminator(Conditioned):
    """images (B, C, H, W) [+ labels (B,)] -> logits (B,). The image is halved to the generator's
    starting side: a strided convolution, then DownBlocks; the head reads the last map (with a
    minibatch-variation plane when mbstd > 0), and with classes a projection adds the dot product
    of those features with the label's vector. With label_planes, num_classes learnt planes picked
    by the label are set beside the image too, as in the DCGAN's D (Conditioned: num_classes is
    the planes' count, 0 without them)."""

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], width: int = 64, mbstd: int = 0,
                 label_planes: bool = False):
        super().__init__(num_classes if label_planes else 0)
        channels, size = image_shape[0], image_shape[1]
        ups = UPSAMPLES[size]
        feats = [min(width * 2 ** i, 16 * width) for i in range(ups)]   # 64 px, w = 64: [64, 128, 256, 512]
        self.from_image = nn.Sequential(nn.Conv2d(channels + self.num_classes, feats[0], 4, 2, 1), nn.LeakyReLU(0.2))
        self.blocks = nn.Sequential(*(DownBlock(c_in, c_out) for c_in, c_out in zip(feats, feats[1:])))
        base = size // 2 ** ups
        self.mbstd = MinibatchStd(mbstd) if mbstd else None
        c_head = feats[-1] + (1 if mbstd else 0)
        self.head_conv = nn.Sequential(nn.Conv2d(c_head, feats[-1], 3, 1, 1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(feats[-1] * base * base, 1)
        self.class_head = nn.Embedding(num_classes, feats[-1] * base * base) if num_classes else None
        if self.class_head is not None:
            nn.init.normal_(self.class_head.weight, 0.0, 0.02)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.class_head is not None and labels is None:
            raise ValueError("a conditional model needs labels")
        embedding = self.embed(labels)
        if embedding is not None:
            images = beside_image(images, embedding)                     # (B, C + classes, H, W)
        x = self.blocks(self.from_image(images))                        # (B, F, base, base)
        if self.mbstd is not None:
            x = self.mbstd(x)
        features = self.head_conv(x).flatten(1)                         # (B, F * base^2)
        logits = self.head(features).squeeze(1)
        if self.class_head is not None:
            logits = logits + (self.class_head(labels) * features).sum(1)
        return logits

"""Differentiable augmentations for what D sees (DiffAugment, Zhao et al. 2020).

D reads real and fake images through the same random transforms, in its own step and in G's, so
G is never asked to draw them: the generated images keep the data's look while D cannot lean on
exact pixel positions. Every op is a gather or a mask, so gradients reach G and a CUDA graph can
record it (the random draws happen on the device).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

BACKGROUND = -1.0          # images are in [-1, 1]; MNIST-like data sets have a black background


def translate(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio of its side in x and y, filling with the background."""
    n, _, h, w = images.shape
    sy, sx = max(1, round(h * ratio)), max(1, round(w * ratio))
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=images.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=images.device)
    padded = F.pad(images, (sx, sx, sy, sy), value=BACKGROUND)     # (n, c, h + 2sy, w + 2sx)
    rows = torch.arange(h, device=images.device)[None, :, None] + sy - dy      # (n, h, 1)
    cols = torch.arange(w, device=images.device)[None, None, :] + sx - dx      # (n, 1, w)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (n, c, h, w)


def cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Blank one square of ratio x the side, at a random place in each image, to the background."""
    n, _, h, w = images.shape
    ch, cw = max(1, round(h * ratio)), max(1, round(w * ratio))
    top = torch.randint(0, h - ch + 1, (n, 1, 1), device=images.device)
    left = torch.randint(0, w - cw + 1, (n, 1, 1), device=images.device)
    rows = torch.arange(h, device=images.device)[None, :, None]
    cols = torch.arange(w, device=images.device)[None, None, :]
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)   # (n, h, w)
    return torch.where(inside[:, None], torch.full_like(images, BACKGROUND), images)


def color(images: torch.Tensor) -> torch.Tensor:
    """DiffAugment's colour transforms, as its authors apply them to images in [-1, 1], on the colour
    channels only (alpha, a 4th channel, is kept): brightness +-0.5, saturation x0..2, contrast
    x0.5..1.5, each drawn per image. Gray images (one channel) skip the saturation."""
    n, channels = images.shape[:2]
    rgb, alpha = (images[:, :3], images[:, 3:]) if channels == 4 else (images, images[:, :0])
    draw = partial(torch.rand, n, 1, 1, 1, device=images.device, dtype=images.dtype)
    rgb = rgb + (draw() - 0.5)
    if rgb.shape[1] == 3:
        mean = rgb.mean(dim=1, keepdim=True)
        rgb = (rgb - mean) * (draw() * 2.0) + mean
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    rgb = (rgb - mean) * (draw() + 0.5) + mean
    return torch.cat([rgb, alpha], dim=1)


AUGMENTATIONS = {"color": color, "translation": translate, "cutout": cutout}


def augment(images: torch.Tensor, names: list[str]) -> torch.Tensor:
    for name in names:
        images = AUGMENTATIONS[name](images)
    return images

"""Seeded images that look like photographs and drawings to a model: smooth shading, hard-edged
shapes, fine texture. What image-model exports are proven on, int8 is calibrated on and variants
are judged on (PSNR), where uniform noise would hide what fp16 overflow or int8 rounding does to
real pictures. numpy only."""

from __future__ import annotations

import numpy as np


def _smooth(rng: np.random.Generator, channels: int, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency colour: a coarse random grid, bilinearly enlarged."""
    grid = rng.random((channels, cells + 1, cells + 1), dtype=np.float32)
    ys, xs = np.linspace(0, cells, height, dtype=np.float32), np.linspace(0, cells, width, dtype=np.float32)
    y0, x0 = np.minimum(ys.astype(int), cells - 1), np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[:, y0][:, :, x0] * (1 - fx) + grid[:, y0][:, :, x0 + 1] * fx
    bottom = grid[:, y0 + 1][:, :, x0] * (1 - fx) + grid[:, y0 + 1][:, :, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def picture_like(batch: int, channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(batch, channels, height, width) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = np.empty((batch, channels, height, width), np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(batch):
        image = _smooth(rng, channels, height, width, 3) * 0.7 + 0.15
        for _ in range(4):                                   # hard-edged discs and boxes
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            r = rng.integers(max(2, min(height, width) // 10), max(3, min(height, width) // 3))
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) if rng.random() < 0.5 else \
                ((abs(yy - cy) < r) & (abs(xx - cx) < r // 2 + 1))
            image[:, mask] = rng.random((channels, 1), dtype=np.float32)
        image += rng.normal(0, 0.02, image.shape).astype(np.float32)          # sensor-like grain
        out[i] = np.clip(image, 0.0, 1.0)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 (or [0, 255] float) arrays (100 where they are equal)."""
    import math

    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)

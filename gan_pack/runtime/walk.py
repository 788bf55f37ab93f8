"""Latent walks: spherical interpolation (slerp) in the noise space, a strip between two points
(`latent_walk`), and a loop through several random points (slerp between consecutive points, then
back to the first), one panel per class for a cGAN, as an animated GIF."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gan_pack.core.images import flatten, make_grid
from gan_pack.errors import ModelError
from gan_pack.runtime.generator import OnnxGenerator

MAX_POINTS, MAX_FRAMES, MAX_FPS = 64, 1000, 60
MAX_STEPS = 1000


def slerp_at(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
    """The point(s) a fraction t (a number or an array of them) of the way from a to b along the
    great circle; float64 math, float32 out."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = np.asarray(t, dtype=np.float64)[..., None]
    if omega < 1e-6:
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation from a to b (each (noise_dim,)) in `steps` points, ends included."""
    return slerp_at(a, b, np.linspace(0.0, 1.0, steps))


def latent_walk(generator: OnnxGenerator, steps: int, label: int | None, seed: int | None,
                truncation: float | None = None):
    """(noise, labels, rows) of a slerp walk between two noise vectors of `seed`: one row in class
    `label`, or one row per class of a cGAN (the same walk in each), or one row for a GAN."""
    k = generator.info.num_classes
    if label is not None and k == 0:
        raise ModelError("this model is unconditional (num_classes 0): drop --label")
    if not 2 <= steps <= MAX_STEPS:
        raise ModelError(f"--steps must be in 2..{MAX_STEPS}, not {steps}")
    ends = generator.noise(2, seed, truncation=truncation)
    walk = slerp(ends[0], ends[1], steps)                        # (steps, noise_dim)
    rows = [label] if label is not None else (list(range(k)) if k else [None])
    noise = np.concatenate([walk] * len(rows))
    labels = None if k == 0 else generator.resolve_labels(len(noise), np.repeat(np.asarray(rows), steps))
    return noise, labels, len(rows)


def loop_noise(generator: OnnxGenerator, points: int, frames: int, seed: int,
               truncation: float | None = None) -> np.ndarray:
    """(frames, noise_dim): the loop through images 0 .. points-1 of `seed`, frames spread evenly."""
    if not 2 <= points <= MAX_POINTS:
        raise ModelError(f"--points must be in 2..{MAX_POINTS}, not {points}")
    if not points <= frames <= MAX_FRAMES:
        raise ModelError(f"--frames must be in {points} (--points)..{MAX_FRAMES}, not {frames}")
    ends = generator.noise(points, seed, truncation=truncation)
    walk = []
    for frame in range(frames):
        position = frame * points / frames
        i = int(position)
        walk.append(slerp_at(ends[i], ends[(i + 1) % points], position - i))
    return np.stack(walk)


def walk_frames(generator: OnnxGenerator, noise: np.ndarray, label: int | None = None) -> list[np.ndarray]:
    """One (H', W', C) uint8 grid a frame: a panel per class of a cGAN (or only `label`), one of a GAN."""
    k = generator.info.num_classes
    if label is not None and not k:
        raise ModelError("this model is unconditional (num_classes 0): drop --label")
    classes = [label] if label is not None else list(range(k))
    frames = []
    for z in noise:
        if k:
            images = generator.generate_in_batches(np.repeat(z[None], len(classes), 0), generator.resolve_labels(
                len(classes), np.asarray(classes)))
        else:
            images = generator.generate(z[None])
        frames.append(make_grid(images, nrow=len(classes) if k else 1))
    return frames


def gif_bytes(frames: list[np.ndarray], fps: int, scale: int = 2) -> bytes:
    """A looping GIF of the frames, each pixel scale x scale; RGBA frames over a checkerboard."""
    from PIL import Image

    if not 1 <= fps <= MAX_FPS:
        raise ModelError(f"--fps must be in 1..{MAX_FPS}, not {fps}")
    pictures = []
    for frame in frames:
        # GIF has no partial transparency: RGBA frames are drawn over a checkerboard
        frame = flatten(frame.repeat(scale, axis=0).repeat(scale, axis=1))
        pictures.append(Image.fromarray(frame[:, :, 0] if frame.shape[2] == 1 else frame))
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=round(1000 / fps),
                     loop=0, optimize=False)
    return buffer.getvalue()


def save_gif(path: str | Path, frames: list[np.ndarray], fps: int) -> None:
    from gan_pack.core.files import write_bytes_atomic

    write_bytes_atomic(path, gif_bytes(frames, fps))

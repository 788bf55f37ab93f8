"""Animated latent walks: a loop through several random points of the noise space (slerp between
consecutive points, then back to the first), one panel per class for a cGAN, as an animated GIF."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gan_pack.errors import ModelError
from gan_pack.images import make_grid
from gan_pack.runtime import OnnxGenerator, slerp_at

MAX_POINTS, MAX_FRAMES, MAX_FPS = 64, 1000, 60


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
            images = generator.generate(np.repeat(z[None], len(classes), 0), generator.resolve_labels(
                len(classes), np.asarray(classes)))
        else:
            images = generator.generate(z[None])
        frames.append(make_grid(images, nrow=len(classes) if k else 1))
    return frames


def gif_bytes(frames: list[np.ndarray], fps: int, scale: int = 2) -> bytes:
    """A looping GIF of the frames, each pixel scale x scale."""
    from PIL import Image

    if not 1 <= fps <= MAX_FPS:
        raise ModelError(f"--fps must be in 1..{MAX_FPS}, not {fps}")
    pictures = []
    for frame in frames:
        pixels = frame[:, :, 0] if frame.shape[2] == 1 else frame
        picture = Image.fromarray(pixels)
        pictures.append(picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST))
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=round(1000 / fps),
                     loop=0, optimize=False)
    return buffer.getvalue()


def save_gif(path: str | Path, frames: list[np.ndarray], fps: int) -> None:
    from gan_pack.files import write_bytes_atomic

    write_bytes_atomic(path, gif_bytes(frames, fps))

"""Arrays in [-1, 1] to uint8 images, grids, PNG and NPY files. numpy + pillow only."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from gan_pack.core.files import atomic_path, remove_orphans, write_bytes_atomic


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8 in [0, 255]."""
    scaled = np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5 + 0.5, 0, 255)
    return scaled.astype(np.uint8).transpose(0, 2, 3, 1)


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (H', W', C) uint8 grid, `nrow` images a row."""
    tiles = to_uint8(images)                                   # (N, H, W, C)
    n, h, w, c = tiles.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = tiles[i]
    return grid


CAPTION_HEIGHT = 12


def captioned_grid(images: np.ndarray, captions: list[str], nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Like make_grid, with a line of text under each image (e.g. its seed)."""
    from PIL import Image, ImageDraw

    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows, cell_w = math.ceil(n / nrow), max(w, 6 * max(map(len, captions)) + 2)
    grid = np.zeros((rows * (h + CAPTION_HEIGHT + padding) + padding, nrow * (cell_w + padding) + padding, c),
                    np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + CAPTION_HEIGHT + padding), padding + col * (cell_w + padding)
        grid[y:y + h, x:x + w] = tiles[i]
        if c == 4:                      # an opaque band under the image: white text on transparency would not show
            grid[y + h:y + h + CAPTION_HEIGHT, x:x + cell_w, 3] = 255
    picture = Image.fromarray(grid[:, :, 0] if c == 1 else grid)
    draw = ImageDraw.Draw(picture)
    for i, caption in enumerate(captions):
        r, col = divmod(i, nrow)
        draw.text((padding + col * (cell_w + padding), padding + r * (h + CAPTION_HEIGHT + padding) + h),
                  caption, fill=255 if c == 1 else (255,) * c)
    pixels = np.asarray(picture)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, C) uint8 with C in {1, 3, 4} -> PNG file bytes (grey, RGB, or RGBA keeping the alpha)."""
    from PIL import Image

    pixels = image[:, :, 0] if image.shape[2] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


CHECKER_SQUARE = 4                              # pixels a side of the checkerboard behind transparency
NAMED_COLORS = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "gray": (128, 128, 128)}


def parse_color(text: str) -> tuple[int, int, int]:
    """white, black, grey, or #rrggbb, as an (r, g, b) of 0..255; ValueError otherwise."""
    value = text.strip().lower()
    if value in NAMED_COLORS:
        return NAMED_COLORS[value]
    if len(value) == 7 and value[0] == "#":
        try:
            return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a color: give white, black, grey or #rrggbb")


def color_problems(flag: str, text: str) -> list[str]:
    """[] for a color parse_color reads, else the one problem, for a config's list of them."""
    try:
        parse_color(text)
        return []
    except ValueError as e:
        return [f"{flag}: {e}"]


def checkerboard(height: int, width: int, square: int = CHECKER_SQUARE) -> np.ndarray:
    """(H, W, 3) uint8 light and mid grey squares: what image editors show behind transparency."""
    rows, cols = np.arange(height)[:, None] // square, np.arange(width)[None, :] // square
    light = ((rows + cols) % 2 == 0)[:, :, None]
    return np.where(light, np.uint8(204), np.uint8(153)).repeat(3, axis=2)


def flatten(image: np.ndarray, background: str | tuple[int, int, int] = "checker") -> np.ndarray:
    """(H, W, 4) uint8 RGBA composited over a color or the checkerboard -> (H, W, 3); other images
    as they are."""
    if image.shape[-1] != 4:
        return image
    if isinstance(background, str) and background == "checker":
        under = checkerboard(*image.shape[:2]).astype(np.float32)
    else:
        color = parse_color(background) if isinstance(background, str) else background
        under = np.broadcast_to(np.array(color, np.float32), (*image.shape[:2], 3))
    alpha = image[:, :, 3:].astype(np.float32) / 255.0
    return (image[:, :, :3] * alpha + under * (1.0 - alpha) + 0.5).astype(np.uint8)


def save_png(path: str | os.PathLike, image: np.ndarray, clean: bool = True) -> None:
    write_bytes_atomic(path, png_bytes(image), clean)


def save_grid(path: str | os.PathLike, images: np.ndarray, nrow: int | None = None) -> None:
    save_png(path, make_grid(images, nrow))


def save_npy(path: str | os.PathLike, array: np.ndarray, clean: bool = True) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes_atomic(path, buffer.getvalue(), clean)


def save_npy_batches(path: str | os.PathLike, shape: tuple[int, ...], batches) -> None:
    """One float32 .npy of `shape`, written batch by batch as `batches` yields them: the whole
    array is never in memory. The file appears only once every batch is in."""
    expected = int(np.prod(shape, dtype=np.int64))
    written = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": tuple(int(x) for x in shape)}
        np.lib.format.write_array_header_1_0(f, header)
        for batch in batches:
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            f.write(batch.data)
            written += batch.size
        if written != expected:
            raise ValueError(f"{written} values written for an array of {expected}")


SHARD_SIZE = 1000      # files per subfolder of --out-dir


def save_each(folder: str | os.PathLike, images: np.ndarray, start: int, fmt: str = "png",
              sharded: bool = False) -> list[Path]:
    """Write images start, start+1, ... as one file each (000123.png, ...) in folder; sharded, in
    subfolders of SHARD_SIZE files (0000/000123.png, 0001/001000.png, ...)."""
    folder = Path(folder)
    paths = []
    for offset, image in enumerate(images):
        index = start + offset
        path = folder / (f"{index // SHARD_SIZE:04d}" if sharded else "") / f"{index:06d}.{fmt}"
        if index == start or index % SHARD_SIZE == 0:          # a new batch or subfolder
            remove_orphans(path.parent, anywhere=True)
        if fmt == "npy":
            save_npy(path, image, clean=False)
        else:
            save_png(path, to_uint8(image[None])[0], clean=False)
        paths.append(path)
    return paths

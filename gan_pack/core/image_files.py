"""Image files in and out for image models: PNG, JPEG and WebP read with a pixel cap checked before
anything is decoded, and PNG written row band by row band, so an 8192x8192 result never sits in memory
whole. numpy + pillow + zlib only."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from gan_pack.core.files import atomic_path
from gan_pack.errors import GanPackError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_INPUT_PIXELS = 1 << 26               # 64 Mpx (8192x8192) in
MAX_OUTPUT_PIXELS = 1 << 30              # 1 Gpx out (a 4x upscale of 16384x16384)
PNG_COLOR = {1: 0, 3: 2, 4: 6}           # gray, RGB, RGBA


class ImageFileError(GanPackError):
    """An input image that cannot be read: not an image, truncated, or too large."""


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header, without decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except UnidentifiedImageError:
        raise ImageFileError(f"{path} is not an image Pillow can read; give a PNG, JPEG or WebP") from None
    except (OSError, ValueError) as e:
        raise ImageFileError(f"{path} cannot be read ({e}); give a PNG, JPEG or WebP") from None


def read_image(source, where: str = "", max_pixels: int = MAX_INPUT_PIXELS) -> np.ndarray:
    """(H, W, C) uint8 with C = 1 (gray), 3 (RGB) or 4 (RGBA, straight alpha), from a path or bytes.
    Refuses an image over `max_pixels` before decoding it, and a truncated one."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    where = where or str(source)
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageFileError(f"{where} is {width}x{height}, over the {max_pixels:,} pixels an input "
                                         f"may have; cut it into parts or shrink it first")
                image.load()
                mode = image.mode
                has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info)
                gray = mode in ("1", "L", "I", "I;16", "F", "LA") and not has_alpha
                target = "RGBA" if has_alpha else "L" if gray else "RGB"
                array = np.asarray(image.convert(target))
    except ImageFileError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageFileError(f"{where} is not an image Pillow can read within its limits; give a PNG, JPEG or "
                             f"WebP") from None
    except (OSError, ValueError, SyntaxError) as e:       # truncated or damaged data
        raise ImageFileError(f"{where} is damaged or truncated ({' '.join(str(e).split())[:100]}); give the "
                             f"whole file") from None
    return array[:, :, None] if array.ndim == 2 else array


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_stream(bands: Iterator[np.ndarray], height: int, width: int, channels: int) -> Iterator[bytes]:
    """A PNG file's bytes from uint8 bands of rows (h, width, channels) that together make `height` rows."""
    yield b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, PNG_COLOR[channels],
                                                             0, 0, 0))
    compressor, rows = zlib.compressobj(6), 0
    for band in bands:
        band = np.ascontiguousarray(band, np.uint8).reshape(band.shape[0], width * channels)
        rows += band.shape[0]
        filtered = np.empty((band.shape[0], width * channels + 1), np.uint8)
        filtered[:, 0] = 1                                             # PNG filter Sub: left neighbour
        filtered[:, 1 + channels:] = band[:, channels:] - band[:, :-channels]
        filtered[:, 1:1 + channels] = band[:, :channels]
        data = compressor.compress(filtered.tobytes())
        if data:
            yield _chunk(b"IDAT", data)
    if rows != height:
        raise ValueError(f"PNG stream got {rows} rows for a {height}-row image")
    yield _chunk(b"IDAT", compressor.flush()) + _chunk(b"IEND", b"")


def write_png_bands(path: str | os.PathLike, bands: Iterator[np.ndarray], height: int, width: int,
                    channels: int) -> None:
    """Write the PNG atomically: nothing is left at `path` if a band fails."""
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        for data in png_stream(bands, height, width, channels):
            f.write(data)

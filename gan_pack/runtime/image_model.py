"""An exported image-to-image model (an upscaler, a restorer) run by onnxruntime, on images of any
size: cut into overlapping tiles whose seams are blended (linear weights across each overlap), padded
to the model's size rules and cropped back, and given back as bands of finished rows, so a large
output is written while only one band of tiles is held in float32. numpy + onnxruntime only.

Channels: an RGB model given RGBA runs the colour and then the alpha (as gray RGB) and joins them; a
gray image given to an RGB model is spread to RGB; an RGBA model given RGB gets an opaque alpha, which
is dropped again.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from gan_pack.contract.image_model import ImageModelInfo
from gan_pack.contract.names import IMAGE, IMAGES
from gan_pack.errors import ConfigError, ModelError

DEFAULT_BUDGET = 256 << 20               # activation bytes a tile may take, for the default tile size
BAND_BUDGET = 128 << 20                  # float32 bytes of the row of tiles being blended (default tile)
FINISH_ROWS = 256                        # output rows made 8-bit at a time
DEFAULT_OVERLAP = 8                      # input pixels shared by neighbouring tiles
MAX_TILE = 1024                          # the default tile's largest side
MAX_GIVEN_TILE = 4096                    # --tile's
FALLBACK_TILE = 256                      # where the model's activation size is not known


@dataclass(frozen=True)
class Tiling:
    tile: int                             # input pixels per side (0: the whole image at once)
    overlap: int
    chosen: bool = False                  # the default (not --tile): narrowed further for wide images


def axis_tiles(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) of each tile along one axis: `tile` long, neighbours sharing `overlap`, the last
    ending at `length`."""
    if tile <= 0 or length <= tile:
        return [(0, length)]
    step = tile - overlap
    starts = list(range(0, length - tile, step)) + [length - tile]
    return [(s, s + tile) for s in starts]


def ramp(spans: list[tuple[int, int]], index: int, scale: int) -> np.ndarray:
    """One tile's blending weight along an axis, in output pixels: rising across the overlap with the
    tile before, falling across the overlap with the tile after; the weights of overlapping tiles sum to 1."""
    start, end = spans[index]
    weight = np.ones((end - start) * scale, np.float32)
    if index > 0 and spans[index - 1][1] > start:
        n = (spans[index - 1][1] - start) * scale
        weight[:n] = (np.arange(n, dtype=np.float32) + 0.5) / n
    if index + 1 < len(spans) and spans[index + 1][0] < end:
        n = (end - spans[index + 1][0]) * scale
        weight[-n:] = np.minimum(weight[-n:], (np.arange(n, 0, -1, dtype=np.float32) - 0.5) / n)
    return weight


def pad_to(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """(B, C, h, w) padded at the bottom and right to (height, width): mirrored where the image is large
    enough, its edge repeated where it is not."""
    h, w = x.shape[2:]
    if (height, width) == (h, w):
        return x
    pad = ((0, 0), (0, 0), (0, height - h), (0, width - w))
    return np.pad(x, pad, mode="reflect") if height - h < h and width - w < w else np.pad(x, pad, mode="edge")


class ImageModel:
    """`apply(image)`: an (H, W, C) uint8 image in, the model's (H*scale, W*scale, C) uint8 image out."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 variant: str | None = None):
        from gan_pack.runtime.onnxscan import model_metadata
        from gan_pack.runtime.session import open_planned, plan_run

        self.source, self.variant = path, variant
        plan = plan_run(path, device, variant)
        self.info = ImageModelInfo.from_metadata(model_metadata(plan.path), plan.path)
        self.spec = self.info.spec
        self.session, self.plan = open_planned(path, plan, threads, variant)
        self.path = self.plan.path
        self.variant = self.plan.variant
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [IMAGE] or len(inputs[0].shape) != 4 or IMAGES not in [o.name for o in outputs]:
            raise ModelError(f"{self.path} does not take `{IMAGE}` (B, C, H, W) and give `{IMAGES}` as its image "
                             f"spec says; re-export it")

    @property
    def scale(self) -> int:
        return self.spec.scale

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The graph on (B, C, H, W) float32 in [0, 1] that already meets the size rules."""
        return self.session.run([IMAGES], {IMAGE: np.ascontiguousarray(batch, np.float32)})[0]

    @property
    def min_tile(self) -> int:
        """The smallest tile side the size rules take."""
        return self.spec.padded(self.spec.minimum, self.spec.minimum)[0]

    def default_tile(self, budget: int = DEFAULT_BUDGET) -> int:
        per_pixel = self.spec.bytes_per_pixel
        side = int(math.sqrt(budget / per_pixel)) if per_pixel else FALLBACK_TILE
        m = self.spec.multiple_of
        return max(min(side, MAX_TILE) // m * m, self.min_tile, 16)

    def tiling(self, tile: int | None = None, overlap: int | None = None, budget: int = DEFAULT_BUDGET) -> Tiling:
        """The tiles to cut an image into: --tile and --tile-overlap checked against the model's rules."""
        spec = self.spec
        if spec.fixed or spec.tiling == "internal":
            if tile:
                why = f"it takes {spec.size_rule()}" if spec.fixed else "it tiles internally"
                raise ConfigError(f"{spec.arch} is not cut into tiles ({why}); drop --tile")
            return Tiling(0, 0)
        chosen = tile is None
        if tile is not None and tile > 0:
            low = self.min_tile
            if tile > MAX_GIVEN_TILE:
                raise ConfigError(f"--tile {tile} is over {MAX_GIVEN_TILE}; give a smaller tile, or --tile 0 for the "
                                  f"whole image at once")
            if tile < low or tile % spec.multiple_of:
                raise ConfigError(f"--tile {tile} is too small or uneven for {spec.arch} ({spec.size_rule()}); use "
                                  f"--tile {max(low, -(-tile // spec.multiple_of) * spec.multiple_of)} or more")
        else:
            tile = self.default_tile(budget) if tile is None else 0
        if overlap is None:                                 # the default: 8, or a quarter of a small tile
            overlap = min(DEFAULT_OVERLAP, tile // 4)
        if tile and not 0 <= overlap < tile // 2:
            raise ConfigError(f"--tile-overlap {overlap} must be in 0..{tile // 2 - 1} for --tile {tile}")
        return Tiling(tile, overlap if tile else 0, chosen and tile > 0)

    def _channels(self, image: np.ndarray) -> tuple[list[np.ndarray], int]:
        """The passes to run (each (H, W, in_channels) uint8) and how many channels come out."""
        c, want = image.shape[2], self.spec.in_channels
        if c == want:
            return [image], self.spec.out_channels
        if want == 1:
            gray = image[:, :, :3].mean(axis=2, keepdims=True).round().astype(np.uint8) if c >= 3 else image[:, :, :1]
            return [gray], 1
        if want == 3 and c == 1:
            return [np.repeat(image, 3, axis=2)], 3
        if want == 3 and c == 4:
            return [image[:, :, :3], np.repeat(image[:, :, 3:], 3, axis=2)], 4
        if want == 4:
            opaque = np.concatenate([np.repeat(image, 3, axis=2) if c == 1 else image[:, :, :3],
                                     np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
            return [opaque], 3
        raise ConfigError(f"{self.spec.arch} takes {want} channels; an image of {c} cannot be given to it")

    def _tile(self, tile: np.ndarray) -> np.ndarray:
        """One (h, w, C) uint8 tile -> (h*s, w*s, C') float32 in [0, 1], padded to the rules and cropped back."""
        h, w = tile.shape[:2]
        ph, pw = self.spec.padded(h, w)
        x = pad_to(tile.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, ph, pw)
        s = self.scale
        return self.run(x)[0, :, :h * s, :w * s].transpose(1, 2, 0)

    def bands(self, image: np.ndarray, tiling: Tiling | None = None) -> Iterator[np.ndarray]:
        """The output's rows, band by band, as uint8 (h, W*scale, C')."""
        tiling = tiling or self.tiling()
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ConfigError("an image is (H, W, C) uint8 with 1, 3 or 4 channels")
        height, width = image.shape[:2]
        if self.spec.fixed and max(height, width) > self.spec.fixed:
            raise ConfigError(f"{self.spec.arch} takes images of at most {self.spec.fixed}x{self.spec.fixed} (it is "
                              f"a restorer of aligned faces); crop or shrink the image first")
        passes, _ = self._channels(image)
        drop_alpha = self.spec.in_channels == 4 and image.shape[2] != 4
        s = self.scale
        depth = self.spec.out_channels * len(passes) + 1               # accumulated channels and the weight
        tile = tiling.tile
        if tiling.chosen:                                              # a row of tiles within BAND_BUDGET
            m = self.spec.multiple_of
            fits = max(int(BAND_BUDGET // (width * s * s * depth * 4)), 4 * tiling.overlap)
            tile = max(min(tile, -(-fits // m) * m), self.min_tile)
        rows, cols = axis_tiles(height, tile, tiling.overlap), axis_tiles(width, tile, tiling.overlap)
        col_weights = [ramp(cols, j, s) for j in range(len(cols))]
        done = 0                                                         # output rows already given
        carry: np.ndarray | None = None                                  # accumulated rows still open, with weights
        for i, (y0, y1) in enumerate(rows):
            need = y1 * s - done
            acc = np.zeros((need, width * s, depth), np.float32)
            if carry is not None:
                acc[:len(carry)] = carry
            wy = ramp(rows, i, s)
            for j, (x0, x1) in enumerate(cols):
                weight = wy[:, None] * col_weights[j][None, :]
                region = acc[y0 * s - done:y1 * s - done, x0 * s:x1 * s]
                outs = [self._tile(p[y0:y1, x0:x1]) for p in passes]
                region[:, :, :-1] += np.concatenate(outs, axis=2) * weight[:, :, None]
                region[:, :, -1] += weight
            final = (rows[i + 1][0] * s if i + 1 < len(rows) else height * s) - done
            for start in range(0, final, FINISH_ROWS):
                yield self._finish(acc[start:min(final, start + FINISH_ROWS)], len(passes), drop_alpha)
            carry, done = acc[final:].copy(), done + final
            del acc, region

    @staticmethod
    def _finish(acc: np.ndarray, passes: int, drop_alpha: bool) -> np.ndarray:
        values = acc[:, :, :-1] / np.maximum(acc[:, :, -1:], 1e-12)
        if passes == 2:                                         # colour, then alpha run as gray RGB
            values = np.concatenate([values[:, :, :3], values[:, :, 3:].mean(axis=2, keepdims=True)], axis=2)
        out = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out[:, :, :3] if drop_alpha else out

    def output_channels(self, image: np.ndarray) -> int:
        """The channels of the image `apply` gives for `image`."""
        return self._channels(image[:1, :1])[1]

    def apply(self, image: np.ndarray, tile: int | None = None, overlap: int | None = None) -> np.ndarray:
        """The whole output image at once (see bands for large ones)."""
        bands = list(self.bands(image, self.tiling(tile, overlap)))
        return np.concatenate(bands, axis=0)


def expand_inputs(inputs: list[str]) -> list:
    """Files, folders (their images, sorted) and globs of PNG/JPEG/WebP, in order, each once."""
    import glob
    from pathlib import Path

    from gan_pack.core.image_files import IMAGE_SUFFIXES

    found: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.exists():
            found.append(path)
        elif glob.has_magic(text):
            found += sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise ConfigError(f"{text} does not exist; give image files, folders or globs")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ConfigError(f"no PNG, JPEG or WebP images in {' '.join(inputs)}")
    return unique


def output_paths(sources: list, output) -> list:
    """OUT.png for one input; OUT/NAME.png for each of several (two inputs of one name: refused)."""
    from pathlib import Path

    from gan_pack.core.files import check_output_path

    output = Path(output)
    if len(sources) == 1 and output.suffix.lower() == ".png":
        return [check_output_path(output, ".png")]
    if output.suffix:
        raise ConfigError(f"-o {output}: give a folder for several images (or a .png for one)")
    targets = [output / f"{Path(s).stem}.png" for s in sources]
    clashes = sorted({t.name for t in targets if targets.count(t) > 1})
    if clashes:
        raise ConfigError(f"several inputs would be written to {output / clashes[0]}; give them from separate runs")
    return [check_output_path(t, ".png") for t in targets]


def apply_files(model: ImageModel, sources: list, targets: list, tiling: Tiling, progress=None) -> None:
    """Each source through the model into its target PNG, written band by band. Every input's header is
    checked before the first is run; if any input fails, the outputs of this call are removed."""
    from gan_pack.core.image_files import MAX_OUTPUT_PIXELS, image_size, read_image, write_png_bands

    s = model.scale
    for source in sources:
        width, height = image_size(source)
        if width * height * s * s > MAX_OUTPUT_PIXELS:
            raise ConfigError(f"{source} is {width}x{height}: {s}x larger is over the {MAX_OUTPUT_PIXELS:,} pixels "
                              f"an output may have; cut it into parts first")
    written = []
    made = [folder for folder in {t.parent for t in targets} if not folder.exists()]
    try:
        for source, target in zip(sources, targets):
            image = read_image(source)
            channels = model.output_channels(image)
            write_png_bands(target, model.bands(image, tiling), image.shape[0] * s, image.shape[1] * s, channels)
            written.append(target)
            if progress is not None:
                progress(source)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise

"""Image folders as data sets: one subfolder per class, read into one uint8 array. numpy + pillow.

A folder with `train/` and `test/` subfolders (each with its class subfolders) is a split data set:
training reads `train/`, evaluation measures against `test/` with `train/` as the floor.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np

from gan_pack.core.idx import BUILTIN_DATASETS
from gan_pack.core.images import flatten
from gan_pack.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "test")


MAX_IMAGE_PIXELS = 4096 * 4096         # per image, read from its header before it is decoded


def load_image_folder(root: str | Path, side: int, channels: int, background: str = "white",
                      warn=lambda message: print(message, file=sys.stderr)) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, C, side, side), labels int64 (N,), class names) of an image folder: its
    subfolders are the classes (sorted by name), or it is one class itself.

    Every file is someone else's: only regular files are opened (links, FIFOs and devices are skipped
    and counted, never opened), an image's size is read from its header and refused over
    MAX_IMAGE_PIXELS before it is decoded, 16-bit images are scaled to 8 bits, and a class folder
    without images or with a name that is not printable is refused."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images")
    subfolders = class_folders(root)
    groups = [(p.name, p) for p in subfolders] or [(root.name, root)]
    images, labels, class_names, skipped = [], [], [], 0
    for label, (name, folder) in enumerate(groups):
        if subfolders and not (name.isprintable() and len(name) <= MAX_CLASS_NAME):
            raise DataError(f"the class folder {name[:80]!r} in {root} has a name that is not printable text of at "
                            f"most {MAX_CLASS_NAME} characters; rename it (it becomes the class's name)")
        files, others = image_files(folder)
        skipped += others
        if not files:
            raise DataError(f"the class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add "
                            f"some or remove it (a class without images would be trained blind)")
        class_names.append(name)
        for f in files:
            images.append(read_image(f, side, channels, background))
            labels.append(label)
    if skipped:
        warn(f"warning: skipped {skipped} image name(s) in {root} that are not regular files (links, FIFOs, "
             f"devices): they were not opened")
    return np.stack(images), np.asarray(labels, np.int64), class_names


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of an image folder, sorted by name (links are not followed); none where
    the folder is one class itself."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())


SKIN_TONES = re.compile(r"-1f3f[b-f]", re.IGNORECASE)      # Unicode's skin-tone modifiers, in a code-point name


def subclass_key(name: str, styles: bool = False) -> str:
    """What files of one subclass share: the name's stem after its first '-' (google-1f383.png and
    twitter-1f383.png are one emoji in two styles), or the whole stem where it has no '-' or where
    `styles` keeps the styles apart; an emoji's skin-tone variants are one subclass too (1f44b-1f3fb
    is 1f44b)."""
    stem = Path(name).stem
    return SKIN_TONES.sub("", stem.split("-", 1)[1] if "-" in stem and not styles else stem)


def folder_subclasses(root: str | Path, styles: bool = False) -> tuple[np.ndarray, list[int]]:
    """(subclass int64 (N,), subclasses per class) of the images `load_image_folder` reads from
    `root`, in its order: each class's subclasses are its files' `subclass_key`s (`styles`: one per
    style), numbered class by class (those of class 0 first) and in sorted order within one."""
    root = Path(root)
    ids: list[int] = []
    counts: list[int] = []
    for folder in class_folders(root) or [root]:
        keys = [subclass_key(f.name, styles) for f in image_files(folder)[0]]
        number = {key: sum(counts) + i for i, key in enumerate(sorted(set(keys)))}
        ids += [number[key] for key in keys]
        counts.append(len(number))
    return np.asarray(ids, np.int64), counts


def image_files(folder: Path) -> tuple[list[Path], int]:
    """(the regular image files of `folder`, sorted; how many entries with an image's name are not
    regular files), from the folder's listing without following or opening anything."""
    files, others = [], 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if entry.is_file(follow_symlinks=False):
                files.append(Path(entry.path))
            else:
                others += 1
    return sorted(files), others


def read_image(path: Path, side: int, channels: int, background: str) -> np.ndarray:
    """One image (C, side, side) uint8, its size checked from its header before it is decoded."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)     # our own cap is checked below
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{path} is {width}x{height} pixels, over the {MAX_IMAGE_PIXELS:,} this reader "
                                    f"decodes; shrink it (the data set is read at {side}x{side}) or remove it")
                img = _center_square(_converted(_eight_bit(img), channels, background)).resize(
                    (side, side), Image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError:           # Pillow's own cap, far over ours, refused in open()
        pillow_cap = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise DataError(f"{path} is over {pillow_cap:,} pixels (a decompression bomb?), far over the "
                        f"{MAX_IMAGE_PIXELS:,} this reader decodes; shrink it or remove it") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable image ({str(e)[:120]}); remove or replace it") from e
    if array.ndim == 2:
        array = array[:, :, None]
    elif channels == 4:              # a hidden colour: black, what the augmentations fill with
        array = np.where(array[:, :, 3:] == 0, np.uint8(0), array)
    return array.transpose(2, 0, 1)


def _eight_bit(img):
    """A 16-bit (or 32-bit integer) grayscale image scaled to 8 bits; Pillow's own conversion clips
    it at 255 instead, turning nearly all of a 0..65535 range white."""
    from PIL import Image

    if img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return img
    values = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) <= 65535 else float(values.max())
    return Image.fromarray(np.round(np.clip(values, 0, top) * (255.0 / top)).astype(np.uint8), "L")


MAX_DATASET_NAME = 64
MAX_CLASS_NAME = 200


def folder_dataset_name(data_dir: str | Path | None) -> str:
    """What a folder data set is called in a model's metadata and card: the folder's own name
    (`../data/emoji` -> `emoji`; its train split given itself, `../data/emoji/train`, is `emoji` too), or
    `folder` where that is no plain, printable name or is the name of a built-in data set (evaluate would
    take it for that one)."""
    path = Path(data_dir).resolve() if data_dir else None
    name = (path.parent.name if path.name == "train" else path.name) if path else ""
    plain = name and len(name) <= MAX_DATASET_NAME and name.isprintable() and not name.startswith(".")
    return name if plain and name not in BUILTIN_DATASETS else "folder"


def split_folder(data_dir: str | Path, split: str) -> Path:
    """DATA_DIR/train or DATA_DIR/test of a split data set; a DataError that shows the layout."""
    folder = Path(data_dir) / split
    if not folder.is_dir():
        raise DataError(f"{data_dir} has no {split}/ folder: a folder data set for this needs "
                        f"{'/ and '.join(SPLITS)}/, each with one subfolder per class")
    return folder


def _converted(img, channels: int, background: str):
    """A PIL image in the run's mode: RGBA as it is (Pillow resizes it weighting colours by alpha),
    else composited over `background` first, so that transparent pixels take that colour and not
    whatever colour they hide, then RGB or L (an opaque image converts as it always did)."""
    from PIL import Image

    rgba = img.convert("RGBA")
    if channels == 4:
        return rgba
    rgb = Image.fromarray(flatten(np.asarray(rgba), background))
    return rgb.convert("L") if channels == 1 else rgb


def _center_square(img):
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))

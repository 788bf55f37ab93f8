"""Image folders as data sets: one subfolder per class, read into one uint8 array. numpy + pillow.

A folder with `train/` and `test/` subfolders (each with its class subfolders) is a split data set:
training reads `train/`, evaluation measures against `test/` with `train/` as the floor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gan_pack.core.idx import BUILTIN_DATASETS
from gan_pack.core.images import flatten
from gan_pack.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "test")


def load_image_folder(root: str | Path, side: int, channels: int,
                      background: str = "white") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, C, side, side), labels int64 (N,), class names) of an image folder: its
    subfolders are the classes (sorted by name), or it is one class itself."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir())
    groups = [(p.name, p) for p in subfolders] or [(root.name, root)]
    images, labels, class_names = [], [], []
    for label, (name, folder) in enumerate(groups):
        class_names.append(name)
        for f in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(f) as img:
                    img = _center_square(_converted(img, channels, background)).resize(
                        (side, side), Image.Resampling.BILINEAR)
                    array = np.asarray(img, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"{f} is not a readable image ({e}); remove or replace it") from e
            if array.ndim == 2:
                array = array[:, :, None]
            elif channels == 4:              # a hidden colour: black, what the augmentations fill with
                array = np.where(array[:, :, 3:] == 0, np.uint8(0), array)
            images.append(array.transpose(2, 0, 1))
            labels.append(label)
    if not images:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}), neither "
                        f"directly nor in subfolders; point --data-dir at a folder of images")
    return np.stack(images), np.asarray(labels, np.int64), class_names


MAX_DATASET_NAME = 64


def folder_dataset_name(data_dir: str | Path | None) -> str:
    """What a folder data set is called in a model's metadata and card: the folder's own name
    (`../data/emoji` -> `emoji`), or `folder` where that is no plain, printable name or is the name of
    a built-in data set (evaluate would take it for that one)."""
    name = Path(data_dir).resolve().name if data_dir else ""
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

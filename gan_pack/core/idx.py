"""Reading MNIST-style IDX files (gzipped or not) with numpy alone.

Used by training (through data.py) and by the torch-free evaluation.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from gan_pack.errors import DataError

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES = SPLIT_FILES["train"] + SPLIT_FILES["test"]
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
BUILTIN_DATASETS = tuple(TORCHVISION_FOLDERS)          # the data sets read from IDX files


def find_idx_file(data_dir: Path, stem: str, dataset: str) -> Path | None:
    """The file `stem` (or `stem.gz`) flat in data_dir or in torchvision's <Name>/raw/."""
    folders = [data_dir, data_dir / "raw"]
    if dataset in TORCHVISION_FOLDERS:
        folders.append(data_dir / TORCHVISION_FOLDERS[dataset] / "raw")
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def missing_files_message(data_dir: Path, dataset: str) -> str:
    return (f"{data_dir} does not hold the {dataset} IDX files: put "
            f"{', '.join(ALL_FILES)} (gzipped or not) flat in that folder or under "
            f"{TORCHVISION_FOLDERS.get(dataset, '<Name>')}/raw/, or leave out --data-dir "
            f"to download them with torchvision")


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file into a uint8 array, checking its header against its length."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} cannot be read ({e}); replace it with an intact copy") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad magic number); "
                        f"replace it with the original MNIST-format file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header cut short); replace it with an intact copy")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: {len(raw)} bytes where its header "
                        f"promises {expected}; replace it with an intact copy")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_split(data_dir: str | Path, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, H, W), labels int64 (N,)) of one split from data_dir."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"--data-dir {data_dir} does not exist; " + missing_files_message(data_dir, dataset))
    image_stem, label_stem = SPLIT_FILES[split]
    image_path = find_idx_file(data_dir, image_stem, dataset)
    label_path = find_idx_file(data_dir, label_stem, dataset)
    if image_path is None or label_path is None:
        raise DataError(missing_files_message(data_dir, dataset))
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{image_path} and {label_path} do not pair up as images (N, H, W) and "
                        f"labels (N,); replace them with the original files")
    return images[:, None, :, :], labels.astype(np.int64)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz). For tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    Path(path).write_bytes(data)

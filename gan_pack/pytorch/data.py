"""Datasets as one uint8 tensor, and batch feeding with no per-image Python."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_pack.core.folder import SPLITS, folder_dataset_name, folder_subclasses, load_image_folder
from gan_pack.core.idx import ALL_FILES, load_idx_split
from gan_pack.errors import DataError
from gan_pack.pytorch.config import Recipe
from gan_pack.pytorch.data_facts import DATASET_CLASS_NAMES, DatasetInfo


def load_dataset(recipe: Recipe, data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor, DatasetInfo]:
    """(images uint8 (N, C, H, W), labels int64 (N,), facts) of the training split. With
    --subclasses the labels are the images' subclasses (`facts.subclass_counts` says whose)."""
    subclass_counts = []
    if recipe.dataset == "folder":
        images, labels, class_names = _load_folder(recipe, data_dir)
        if recipe.subclasses:
            labels, subclass_counts = folder_subclasses(_folder_root(data_dir), recipe.subclass_styles)
    else:
        images, labels = _load_builtin(recipe, data_dir)
        class_names = DATASET_CLASS_NAMES[recipe.dataset]
    images = np.array(images, dtype=np.uint8)
    labels = np.array(labels, dtype=np.int64)
    digest = fingerprint(images, labels)             # of the data as read, before any resizing
    images = _fit_images(torch.from_numpy(images), recipe)
    num_classes = len(class_names) if recipe.conditional else 0
    if recipe.conditional and len(class_names) < 2:
        raise DataError("--model cgan needs at least two classes (one subfolder per class); "
                        "use --model gan for a folder of unlabelled images")
    name = folder_dataset_name(data_dir) if recipe.dataset == "folder" else recipe.dataset
    info = DatasetInfo(name=name, image_shape=tuple(images.shape[1:]),
                       num_classes=num_classes, class_names=class_names if num_classes else [],
                       size=len(images), fingerprint=digest, subclass_counts=subclass_counts)
    return images, torch.from_numpy(labels), info


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 of the images (as read) and their labels: a resumed run must see the same data."""
    digest = hashlib.sha256(f"{images.shape}|{labels.shape}".encode())
    digest.update(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return digest.hexdigest()


def _load_builtin(recipe: Recipe, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    if data_dir is not None:
        return load_idx_split(data_dir, recipe.dataset, "train")
    root = Path.home() / ".cache" / "gan_pack" / recipe.dataset
    try:
        from torchvision import datasets

        cls = datasets.MNIST if recipe.dataset == "mnist" else datasets.FashionMNIST
        ds = cls(str(root), train=True, download=True)
    except Exception as e:  # torchvision raises plain RuntimeError/URLError when offline
        raise DataError(f"could not download {recipe.dataset} ({type(e).__name__}: this machine is offline or "
                        f"cannot reach torchvision's mirrors); put {', '.join(ALL_FILES)} (gzipped or not) in a "
                        f"folder and pass --data-dir FOLDER") from e
    return ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64)


def _load_folder(recipe: Recipe, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if data_dir is None or not Path(data_dir).is_dir():
        raise DataError(f"--dataset folder needs --data-dir pointing at an image folder, "
                        f"got {data_dir!r}")
    return load_image_folder(_folder_root(data_dir), recipe.image_size, recipe.channels, recipe.background)


def _folder_root(data_dir: str) -> Path:
    root = Path(data_dir)
    if all((root / split).is_dir() for split in SPLITS):    # a split data set: train on train/
        root = root / "train"
    return root


def subclass_classes(subclass_counts: list[int]) -> torch.Tensor:
    """The class of each subclass, (sum(counts),) int64: subclasses are numbered class by class."""
    return torch.repeat_interleave(torch.arange(len(subclass_counts)), torch.tensor(subclass_counts))


def _fit_images(images: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Match the configured channel count and size (for built-in data sets)."""
    if images.shape[1] != recipe.channels:
        images = images.expand(-1, recipe.channels, -1, -1).contiguous()
    if images.shape[-1] != recipe.image_size or images.shape[-2] != recipe.image_size:
        resized = F.interpolate(images.float(), size=(recipe.image_size, recipe.image_size),
                                mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    return images


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float32 in [-1, 1], the range G's Tanh produces."""
    return images.float().div_(127.5).sub_(1.0)


def epoch_order(size: int, seed: int, epoch: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The shuffled order of epoch `epoch`: a function of (seed, epoch) alone, so every process of
    a distributed run, every data path and a resumed run all see the same batches. With `weights`
    (one per image), `size` images drawn with replacement in proportion to them instead."""
    rng = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is not None:
        return torch.multinomial(weights, size, replacement=True, generator=rng)
    return torch.randperm(size, generator=rng)                 # (N,) int64, on the CPU


def balancing_weights(labels: torch.Tensor) -> torch.Tensor:
    """One weight per image, 1 / (images of its class): every class drawn equally often."""
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()


class Batches:
    """Shared by both data paths: the epoch's global batches, this process's share of each.

    `batch_size` is the global batch: with `world_size` processes each gets batch_size / world_size
    images of every step, so N GPUs train the same recipe as one.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1, balance: bool | torch.Tensor = False):
        if len(images) < batch_size:
            raise DataError(f"the data set has {len(images)} images, fewer than one batch of "
                            f"{batch_size}; lower --batch-size")
        if batch_size % world_size:
            raise DataError(f"--batch-size {batch_size} does not split evenly over {world_size} "
                            f"processes; use a multiple of {world_size}")
        self.size, self.batch_size, self.seed = len(images), batch_size, seed
        # Class-balanced epochs; `balance` may give the classes (labels that are subclasses).
        classes = balance if isinstance(balance, torch.Tensor) else labels
        self.weights = balancing_weights(classes) if balance is not False else None
        self.local = batch_size // world_size
        self.rank = rank

    def __len__(self) -> int:
        return self.size // self.batch_size

    def local_slices(self):
        """This process's share of each global batch, as slices of the epoch's order. The partial
        batch is dropped (BatchNorm needs more than one image; a CUDA graph replays fixed shapes)."""
        for step in range(len(self)):
            start = step * self.batch_size + self.rank * self.local
            yield slice(start, start + self.local)


class DeviceBatches(Batches):
    """The fast path: the whole data set on the device as uint8; each batch a gather and a scale."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 device: torch.device, seed: int = 0, rank: int = 0, world_size: int = 1,
                 balance: bool | torch.Tensor = False):
        super().__init__(images, labels, batch_size, seed, rank, world_size, balance)
        self.images = images.to(device)          # (N, C, H, W) uint8
        self.labels = labels.to(device)          # (N,) int64
        self.device = device

    def gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images float in [-1, 1] (B, C, H, W), labels (B,)) for a (B,) index on the device."""
        return to_model_range(self.images[index]), self.labels[index]

    def epoch(self, epoch: int = 0):
        """Yield (index, images, labels) for one epoch; the order goes to the device once."""
        order = epoch_order(self.size, self.seed, epoch, self.weights).to(self.device)
        for part in self.local_slices():
            index = order[part]                                # (B_local,)
            yield (index, *self.gather(index))


class LoaderBatches(Batches):
    """The plain path: a DataLoader collating image by image from host memory, as the tutorials
    do. Used with --no-fast, and for data sets too large for the GPU."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 device: torch.device, seed: int = 0, rank: int = 0, world_size: int = 1,
                 balance: bool | torch.Tensor = False):
        super().__init__(images, labels, batch_size, seed, rank, world_size, balance)
        self.dataset = torch.utils.data.TensorDataset(images, labels)
        self.device = device

    def epoch(self, epoch: int = 0):
        order = epoch_order(self.size, self.seed, epoch, self.weights)
        sampler = torch.cat([order[part] for part in self.local_slices()]).tolist()
        # Its own generator: a DataLoader otherwise draws a seed from the global RNG (the noise's).
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.local, sampler=sampler,
                                             pin_memory=self.device.type == "cuda",
                                             generator=torch.Generator().manual_seed(epoch))
        for images, labels in loader:
            images = to_model_range(images.to(self.device, non_blocking=True))
            yield None, images, labels.to(self.device, non_blocking=True)


def make_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device,
                 fast: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 balance: bool | torch.Tensor = False) -> Batches:
    """DeviceBatches when --fast and the data set takes under a quarter of the free GPU memory."""
    fits = device.type != "cuda" or images.numel() < torch.cuda.mem_get_info(device)[0] // 4
    cls = DeviceBatches if fast and fits else LoaderBatches
    return cls(images, labels, batch_size, device, seed, rank, world_size, balance)

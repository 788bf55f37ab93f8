"""Training speed: the classic tutorial loop against gan_pack's loop, same data, same device,
same recipe (MLP cGAN, batch 64, Adam 2e-4 (0.5, 0.999)), measured side by side in one process.

The tutorial loop is reimplemented as the tutorials write it: a torchvision-style Dataset with
ToTensor + Normalize per image, a DataLoader with shuffling, BCE on probabilities. gan_pack's
loop keeps the whole data set as one uint8 tensor and slices shuffled batches from it.

Usage: .venv/bin/python benchmarks/train_speed.py --data-dir ../shared/data/mnist [--steps 400] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from gan_pack.config import DatasetInfo, TrainConfig
from gan_pack.data import DeviceBatches
from gan_pack.idx import load_idx_split
from gan_pack.train import build_trainer, resolve_device, train_step


class TutorialDataset(torch.utils.data.Dataset):
    """MNIST as the tutorials read it: PIL image -> ToTensor -> Normalize((0.5,), (0.5,))."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        from torchvision import transforms

        self.images, self.labels = images[:, 0], labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def tutorial_loop(images, labels, device, steps: int) -> float:
    """images/s of the tutorial loop (MLP cGAN, Sigmoid + BCELoss, DataLoader)."""
    config = TrainConfig(model="cgan", loss="bce-prob", ema=False, device=str(device))
    info = DatasetInfo("mnist", (1, 28, 28), 10)
    t = build_trainer(config, info, device)
    loader = torch.utils.data.DataLoader(TutorialDataset(images, labels), batch_size=64, shuffle=True,
                                         drop_last=True)
    done, started = 0, time.perf_counter()
    while done < steps:
        for real, y in loader:
            train_step(t, real.to(device), y.to(device))
            done += 1
            if done == steps:
                break
    _sync(device)
    return steps * 64 / (time.perf_counter() - started)


def gan_pack_loop(images, labels, device, steps: int) -> float:
    config = TrainConfig(model="cgan", device=str(device))
    info = DatasetInfo("mnist", (1, 28, 28), 10)
    t = build_trainer(config, info, device)
    batches = DeviceBatches(torch.from_numpy(images), torch.from_numpy(labels), 64, device)
    done, started = 0, time.perf_counter()
    while done < steps:
        for real, y in batches.epoch():
            train_step(t, real, y)
            done += 1
            if done == steps:
                break
    _sync(device)
    return steps * 64 / (time.perf_counter() - started)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    images, labels = load_idx_split(args.data_dir, "mnist", "train")
    images = np.array(images)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"device: {name}; torch {torch.__version__}; {args.steps} steps of batch 64 each")
    tutorial = tutorial_loop(images, labels, device, args.steps)
    ours = gan_pack_loop(images, labels, device, args.steps)
    epoch = len(images) // 64 * 64
    print(f"{'loop':<34} {'images/s':>10} {'steps/s':>9} {'s/epoch':>8}")
    for title, value in (("tutorial (DataLoader, ToTensor)", tutorial), ("gan_pack (tensor batches)", ours)):
        print(f"{title:<34} {value:>10,.0f} {value / 64:>9.1f} {epoch / value:>8.1f}")
    print(f"ratio gan_pack / tutorial: {ours / tutorial:.2f}x")


if __name__ == "__main__":
    main()

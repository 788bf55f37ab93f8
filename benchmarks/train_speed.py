"""Training speed: the classic tutorial loop against gan_pack's loop, same data, same device,
same recipe (Adam 2e-4 (0.5, 0.999), D step then G step), measured side by side in one process.

The tutorial loop is reimplemented as the tutorials write it: a Dataset with ToTensor + Normalize
per image, a shuffling DataLoader, separate D calls on real and fake, Sigmoid + BCELoss, and
D's weight gradients computed in the G step too. gan_pack is measured twice: `--no-fast`
(DataLoader, eager steps) and `--fast` (data on the device, fused Adam, and on CUDA the whole
step replayed as one CUDA graph). gan_pack's loop also updates its EMA copy every step.

With --quality-epochs E, the tutorial loop and gan_pack --fast each train E epochs of the MLP
cGAN at batch 64 and are evaluated like `ganpack evaluate` (FCD, conditional accuracy, n images).

Usage: python benchmarks/train_speed.py --data-dir ../shared/data/mnist [--device auto]
           [--cases mlp-64,mlp-1024,dcgan-64] [--seconds 5]
           [--quality-epochs 0 --classifier exported/mnist-classifier.onnx]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gan_pack.core.idx import load_idx_split
from gan_pack.pytorch.config import Recipe, TrainConfig
from gan_pack.pytorch.data import make_batches
from gan_pack.pytorch.data_facts import DatasetInfo
from gan_pack.pytorch.distributed import World, resolve_device
from gan_pack.pytorch.models import build_discriminator, build_generator
from gan_pack.pytorch.monitor import generate_numpy
from gan_pack.pytorch.step import StepSettings, make_step
from gan_pack.pytorch.train import Trainer, build_networks

INFO = DatasetInfo("mnist", (1, 28, 28), 10)


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


class TutorialLoop:
    """The classic cGAN tutorial's training loop, on gan_pack's model classes (same architecture)."""

    def __init__(self, arch: str, batch: int, images, labels, device):
        torch.manual_seed(0)
        recipe = Recipe(model="cgan", arch=arch)
        self.G = build_generator(recipe, 10, (1, 28, 28)).to(device)
        self.D = build_discriminator(recipe, 10, (1, 28, 28)).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loader = torch.utils.data.DataLoader(TutorialDataset(images, labels), batch_size=batch,
                                                  shuffle=True, drop_last=True)
        self.device, self.batch = device, batch

    def step(self, real, labels):
        real, labels = real.to(self.device), labels.to(self.device)
        ones = torch.ones(len(real), device=self.device)
        zeros = torch.zeros(len(real), device=self.device)
        self.opt_d.zero_grad()
        d_real = F.binary_cross_entropy(torch.sigmoid(self.D(real, labels)), ones)
        z = torch.randn(len(real), 100, device=self.device)
        fake_labels = torch.randint(0, 10, (len(real),), device=self.device)
        fake = self.G(z, fake_labels)
        d_fake = F.binary_cross_entropy(torch.sigmoid(self.D(fake.detach(), fake_labels)), zeros)
        (d_real + d_fake).backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        g_loss = F.binary_cross_entropy(torch.sigmoid(self.D(fake, fake_labels)), ones)
        g_loss.backward()
        self.opt_g.step()

    def run(self, steps: int) -> None:
        done = 0
        while done < steps:
            for real, labels in self.loader:
                self.step(real, labels)
                done += 1
                if done == steps:
                    return


class GanPackLoop:
    """gan_pack's own step, as `ganpack train` runs it (--fast or --no-fast)."""

    def __init__(self, arch: str, batch: int, images, labels, device, fast: bool, bf16: bool = False):
        # build_trainer's parts, fed the arrays this benchmark already holds
        config = TrainConfig.from_dict(dict(model="cgan", arch=arch, batch_size=batch, fast=fast, bf16=bf16))
        nets = build_networks(config.recipe, INFO, device, fast)
        settings = StepSettings.of(config.recipe, INFO.num_classes, device)
        batches = make_batches(torch.from_numpy(images), torch.from_numpy(labels), batch, device, fast)
        self.t = Trainer(config, INFO, device, World(), Path(config.run.out), nets, settings, batches,
                         make_step(nets, settings, batches, fast))
        self.epoch = 0

    def run(self, steps: int) -> None:
        done = 0
        while done < steps:
            for index, real, labels in self.t.batches.epoch(self.epoch):
                self.t.run_step(index, real, labels)
                self.t.step += 1
                done += 1
                if done == steps:
                    return
            self.epoch += 1


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(loop, device, seconds: float, block: int) -> tuple[int, float]:
    """Run whole blocks of steps for about `seconds`; (steps, seconds taken)."""
    sync(device)
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        loop.run(block)
        done += block
        sync(device)
    return done, time.perf_counter() - started


def interleaved_rates(loops: dict, device, seconds: float, rounds: int = 3) -> dict:
    """Steps/s of each loop, timed in turns (A, B, C, A, B, C, ...) so that a slow spell of the
    machine hits every loop alike. Each loop warms up first (a CUDA graph is captured then)."""
    built = {title: make() for title, make in loops.items()}
    blocks = {}
    for title, loop in built.items():
        loop.run(10)
        steps, taken = timed_steps(loop, device, 0.5, 5)
        blocks[title] = max(1, int(steps / taken * 0.1))      # blocks of about 0.1 s
    totals = {title: [0, 0.0] for title in built}
    for _ in range(rounds):
        for title, loop in built.items():
            steps, taken = timed_steps(loop, device, seconds / rounds, blocks[title])
            totals[title][0] += steps
            totals[title][1] += taken
    return {title: steps / taken for title, (steps, taken) in totals.items()}


def quality(loop_generator, device, images_n: int, classifier: str, data_dir: str) -> dict:
    from gan_pack.evaluate.classifier import OnnxClassifier, RealReference
    from gan_pack.evaluate.quality import quality_metrics, reference_metrics

    clf = OnnxClassifier(classifier)
    real = RealReference.load(clf, data_dir, images_n, 0)
    floor = reference_metrics(real)["fcd_floor_train_vs_test"]
    fake, labels = loop_generator(images_n)
    m = quality_metrics(fake, labels, clf, real)
    return {"fcd": m["fcd"], "ratio": m["fcd"] / floor, "accuracy": m["conditional_accuracy"]}


def tutorial_images(loop: TutorialLoop, n: int):
    loop.G.eval()
    with torch.no_grad():
        labels = torch.arange(n, device=loop.device) % 10
        g = torch.Generator(device=loop.device).manual_seed(7)
        fake = torch.cat([loop.G(torch.randn(len(chunk), 100, device=loop.device, generator=g), chunk)
                          for chunk in labels.split(1000)])
    loop.G.train()
    return fake.float().cpu().numpy(), labels.cpu().numpy()


def print_case(name: str, batch: int, rates: dict, epoch_images: int) -> None:
    print(f"\n{name}, batch {batch}")
    print(f"{'loop':<40} {'steps/s':>9} {'images/s':>11} {'s/epoch':>8} {'vs tutorial':>11}")
    base = rates["tutorial (DataLoader, ToTensor)"]
    for title, rate in rates.items():
        print(f"{title:<40} {rate:>9,.1f} {rate * batch:>11,.0f} {epoch_images / (rate * batch):>8.3f} "
              f"{rate / base:>10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cases", default="mlp-64", help="arch-batch, comma separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per loop")
    parser.add_argument("--bf16", action="store_true", help="also time gan_pack --fast --bf16")
    parser.add_argument("--quality-epochs", type=int, default=0)
    parser.add_argument("--classifier", default="exported/mnist-classifier.onnx")
    parser.add_argument("--quality-n", type=int, default=10000)
    args = parser.parse_args()
    device = resolve_device(args.device)
    images, labels = load_idx_split(args.data_dir, "mnist", "train")
    images, labels = np.array(images), np.array(labels)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"device: {name}; torch {torch.__version__}; ~{args.seconds:g} s timed per loop after warm-up, "
          f"in 3 interleaved rounds")
    for case in args.cases.split(","):
        arch, batch = case.split("-")[0], int(case.split("-")[1])
        loops = {"tutorial (DataLoader, ToTensor)": lambda: TutorialLoop(arch, batch, images, labels, device),
                 "gan_pack --no-fast": lambda: GanPackLoop(arch, batch, images, labels, device, False),
                 "gan_pack --fast": lambda: GanPackLoop(arch, batch, images, labels, device, True)}
        if args.bf16:
            loops["gan_pack --fast --bf16"] = lambda: GanPackLoop(arch, batch, images, labels, device, True, True)
        rates = interleaved_rates(loops, device, args.seconds)
        print_case(f"{arch} cGAN", batch, rates, len(images) // batch * batch)
    if args.quality_epochs:
        report_quality(args, images, labels, device)


def report_quality(args, images, labels, device) -> None:
    epochs, steps = args.quality_epochs, args.quality_epochs * (len(images) // 64)
    print(f"\nquality after {epochs} epochs, MLP cGAN, batch 64 (n = {args.quality_n}):")
    tutorial = TutorialLoop("mlp", 64, images, labels, device)
    started = time.perf_counter()
    tutorial.run(steps)
    sync(device)
    seconds = time.perf_counter() - started
    q = quality(lambda n: tutorial_images(tutorial, n), device, args.quality_n, args.classifier, args.data_dir)
    print(f"  tutorial loop     {seconds:7.1f} s  FCD {q['fcd']:.3f} ({q['ratio']:.1f}x floor)  "
          f"accuracy {q['accuracy']:.2%}")
    ours = GanPackLoop("mlp", 64, images, labels, device, True)
    started = time.perf_counter()
    ours.run(steps)
    sync(device)
    seconds = time.perf_counter() - started
    from gan_pack.pytorch.train import finish_epoch_models

    finish_epoch_models(ours.t)
    q = quality(lambda n: generate_numpy(ours.t, n), device, args.quality_n, args.classifier, args.data_dir)
    print(f"  gan_pack --fast   {seconds:7.1f} s  FCD {q['fcd']:.3f} ({q['ratio']:.1f}x floor)  "
          f"accuracy {q['accuracy']:.2%}")


if __name__ == "__main__":
    main()

"""CPU training speed with glibc's default malloc against `ganpack train`'s setting, which keeps
freed memory for reuse (gan_pack/pytorch/host.py). Not a test.

Each measurement is its own process (the allocator setting is process-wide and cannot be undone),
running `ganpack train`'s own step (--fast: data in memory, fused Adam) on random images of the
case's shape for --seconds after a warm-up; the two settings alternate, round after round, so a
slow spell of the machine hits both. Prints images/s per round, the median of each, the median of
the paired ratios, and each process's peak resident memory.

Cases: emoji (64 px RGBA cGAN, G width 20, D width 64, spectral norm, hinge, DiffAugment, batch
128: the shipped emoji generator's recipe) and mnist (28 px DCGAN cGAN preset, batch 64).

Usage: .venv/bin/python benchmarks/cpu_allocator.py [--cases emoji,mnist] [--rounds 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "emoji": dict(model="cgan", arch="dcgan", dataset="folder", image_size=64, channels=4, width=20, d_width=64,
                  spectral_norm=True, loss="hinge", augment="translation,cutout", batch_size=128),
    "mnist": dict(model="cgan", arch="dcgan", batch_size=64),
}
SHAPES = {"emoji": ((4, 64, 64), 9), "mnist": ((1, 28, 28), 10)}
WARM_UP = 5                     # steps before the clock starts


def child(case: str, keep: bool, seconds: float) -> None:
    """One measurement: print images/s and peak RSS as JSON."""
    import torch

    from gan_pack.pytorch.config import TrainConfig
    from gan_pack.pytorch.data import make_batches
    from gan_pack.pytorch.data_facts import DatasetInfo
    from gan_pack.pytorch.distributed import World
    from gan_pack.pytorch.host import keep_freed_memory
    from gan_pack.pytorch.step import StepSettings, make_step
    from gan_pack.pytorch.train import Trainer, build_networks

    took = keep_freed_memory() if keep else False
    shape, num_classes = SHAPES[case]
    config = TrainConfig.from_dict(dict(CASES[case], device="cpu"))
    info = DatasetInfo(case, shape, num_classes)
    device = torch.device("cpu")
    images = torch.randint(0, 256, (2048, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(2048) % num_classes
    nets = build_networks(config.recipe, info, device, fast=True)
    settings = StepSettings.of(config.recipe, num_classes, device)
    batches = make_batches(images, labels, config.recipe.batch_size, device, fast=True)
    trainer = Trainer(config, info, device, World(), Path("."), nets, settings, batches,
                      make_step(nets, settings, batches, fast=True))
    done, started, epoch = 0, None, 0
    while True:
        for index, real, batch_labels in trainer.batches.epoch(epoch):
            trainer.run_step(index, real, batch_labels)
            done += 1
            if started is None and done == WARM_UP:
                started, done = time.perf_counter(), 0
            elif started is not None and time.perf_counter() - started >= seconds:
                rate = done * config.recipe.batch_size / (time.perf_counter() - started)
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(json.dumps({"images_per_s": rate, "peak_rss_mib": peak, "setting_taken": took}))
                return
        epoch += 1


def measure(case: str, keep: bool, seconds: float) -> dict:
    args = [sys.executable, __file__, "--child", case, "--seconds", str(seconds)] + (["--keep"] if keep else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="emoji,mnist")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.keep, args.seconds)
        return
    for case in args.cases.split(","):
        runs: dict[str, list[dict]] = {"glibc default": [], "keep freed memory": []}
        for r in range(args.rounds):
            for title, keep in (("glibc default", False), ("keep freed memory", True)):
                runs[title].append(measure(case, keep, args.seconds))
                print(f"{case} round {r + 1} {title:<18} {runs[title][-1]['images_per_s']:8.1f} images/s", flush=True)
        rates = {t: [m["images_per_s"] for m in ms] for t, ms in runs.items()}
        ratios = [k / d for d, k in zip(rates["glibc default"], rates["keep freed memory"])]
        print(f"\n{case}, batch {CASES[case]['batch_size']}, {args.rounds} rounds of {args.seconds:g} s")
        for title, ms in runs.items():
            print(f"  {title:<18} median {statistics.median(rates[title]):8.1f} images/s   "
                  f"peak RSS {max(m['peak_rss_mib'] for m in ms):7.0f} MiB")
        print(f"  paired ratio, median {statistics.median(ratios):.2f}x "
              f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})\n")


if __name__ == "__main__":
    main()

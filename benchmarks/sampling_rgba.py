"""64 px RGBA sampling on this CPU: the export against PyTorch eager on the same weights (not a test).

A DCGAN (or --arch fastgan) cGAN of 64 px RGBA images in 9 classes (the emoji categories), at the
shipped emoji-cgan's G by default (read from its manifest: `--width 24 --min-width 64`, 9.3 MB
fp32; fastgan: 24 and no floor, or 28 for the emoji fastgan's size, about 8.6 MB), BatchNorm calibrated,
untrained weights (speed does not depend on them). fp32 on both sides, the same noise and labels,
interleaved rounds at batch 64 and 1024; then the peak
memory of `ganpack sample -n 20000 -o x.npy` (streamed) and `--out-dir` (one PNG each), as for the
28 px models.

Usage: .venv/bin/python benchmarks/sampling_rgba.py [--arch dcgan|fastgan] [--width W]
       [--min-width C] [--refine-from S] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling import interleaved_rates, measure_process  # noqa: E402

import gan_pack  # noqa: E402
from gan_pack.contract.metadata import generator_metadata  # noqa: E402
from gan_pack.pytorch.config import TrainConfig  # noqa: E402
from gan_pack.pytorch.ema import recalibrate_batchnorm  # noqa: E402
from gan_pack.pytorch.export import Exportable, ExportOptions, write_generator  # noqa: E402
from gan_pack.pytorch.models import build_generator  # noqa: E402
from gan_pack.runtime.generator import OnnxGenerator  # noqa: E402

SHIPPED = Path(__file__).resolve().parent.parent / "exported" / "emoji-cgan" / "emoji-cgan.json"
CLASSES = ["activities", "animals-nature", "flags", "food-drink", "objects", "people-body", "smileys-emotion",
           "symbols", "travel-places"]


def build(folder: Path, width: int, arch: str, min_width: int, refine_from: int) -> tuple[torch.nn.Module, Path]:
    config = TrainConfig.from_dict(dict(model="cgan", arch=arch, dataset="folder", image_size=64, channels=4,
                                        width=width, min_width=min_width, refine_from=refine_from,
                                        out=str(folder), data_dir=str(folder),
                                        device="cpu"))
    shape = (4, 64, 64)
    generator = build_generator(config.recipe, len(CLASSES), shape)
    recalibrate_batchnorm(generator, config.recipe.noise_dim, len(CLASSES), torch.device("cpu"))
    generator.eval()
    flat = {"model": "cgan", "arch": arch, "noise_dim": config.recipe.noise_dim, "width": width,
            "min_width": min_width, "refine_from": refine_from}
    info = {"name": "emoji", "num_classes": len(CLASSES), "image_shape": list(shape), "class_names": CLASSES}
    metadata = generator_metadata(flat, info, 0, 0, "ema", "fp32", 0, gan_pack.__version__)
    path = folder / "rgba.onnx"
    write_generator(Exportable(generator, config.recipe.noise_dim, len(CLASSES), metadata), path,
                    ExportOptions(batch_sizes=(1, 7)))
    return generator, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("dcgan", "fastgan"), default="dcgan")
    parser.add_argument("--width", type=int, default=None, help="dcgan: the shipped G's; fastgan: 24")
    parser.add_argument("--min-width", type=int, default=None, help="dcgan: the shipped G's; fastgan: 0")
    parser.add_argument("--refine-from", type=int, default=None, help="dcgan: the shipped G's; fastgan: 0")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    shipped = json.loads(SHIPPED.read_text())["training"] if args.arch == "dcgan" else {"width": 24, "min_width": 0}
    args.width = shipped["width"] if args.width is None else args.width
    args.min_width = shipped["min_width"] if args.min_width is None else args.min_width
    args.refine_from = shipped.get("refine_from", 0) if args.refine_from is None else args.refine_from
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        generator, path = build(Path(scratch), args.width, args.arch, args.min_width, args.refine_from)
        onnx_g = OnnxGenerator(path)
        params = sum(p.numel() for p in generator.parameters())
        print(f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads); "
              f"{args.arch} G width {args.width}, min width {args.min_width}, refine from {args.refine_from}: "
              f"{params / 1e6:.2f}M parameters, "
              f"{path.stat().st_size / 1e6:.2f} MB fp32; rewrites "
              f"{json.loads(onnx_g.info.raw.get('rewrites', '{}')).get('kept', 'none')}")
        for batch in (64, 1024):
            noise = onnx_g.noise(batch, seed=batch)
            labels = np.arange(batch, dtype=np.int64) % len(CLASSES)
            tn, tl = torch.from_numpy(noise), torch.from_numpy(labels)

            @torch.no_grad()
            def eager():
                return generator(tn, tl).clamp(-1, 1).numpy()

            gap = np.abs(onnx_g.generate(noise, labels) - eager()).max()
            rates = interleaved_rates({"torch": eager, "onnx": lambda: onnx_g.generate(noise, labels)}, batch,
                                      args.seconds)
            print(f"batch {batch:5d}: PyTorch eager {rates['torch']:8.1f} images/s, OnnxGenerator "
                  f"{rates['onnx']:8.1f} images/s ({rates['onnx'] / rates['torch']:.2f}x); max abs difference "
                  f"{gap:.1e}")
        out = Path(scratch)
        for what, argv in (("-n 20000 -o x.npy", ["-n", "20000", "-o", str(out / "x.npy")]),
                           ("-n 2000 --out-dir (PNG each)", ["-n", "2000", "--out-dir", str(out / "each")])):
            wall, peak = measure_process([sys.executable, "-m", "gan_pack", "sample", str(path), *argv], repeats=3)
            print(f"ganpack sample {what}: {wall:.2f} s, peak {peak:.1f} MiB")


if __name__ == "__main__":
    main()

"""Packages on the GPU through the public API (needs a GPU, onnxruntime-gpu and torch; not a test).

For the DCGAN cGAN (the shipped mnist-cgan's generator) and the MLP cGAN, each with the same weights
in PyTorch and in a package made here with `--variants cuda`, in interleaved rounds at one batch:

- outputs left on the GPU: torch eager fp32 (cuDNN's TF32 on, its default) on GPU noise, against
  OnnxGenerator(package, device="cuda").generate(gpu_noise, gpu_labels, output="device") for the
  CUDA variant the package picks and for its main fp32 model (TF32 on, as in PyTorch);
- numpy outputs: torch's `.cpu().numpy()` against generate(numpy noise) with numpy out.

Then `ganpack sample --device cuda -n N -o x.npy` end to end, as a whole process, and what bounds it.

Usage: python benchmarks/sampling_cuda.py [--batch 8192] [--seconds 3] [--samples 1000000] [--stream-only]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sampling import build_cgan, interleaved_rates  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def contenders(generator, package: Path, batch: int, shipped: Path | None = None) -> dict:
    """name -> a call that makes `batch` images and returns once they exist."""
    import torch

    from gan_pack.runtime.generator import OnnxGenerator

    g = generator.cuda().eval()
    variant, main = OnnxGenerator(package, device="cuda"), OnnxGenerator(package, device="cuda", variant="main")
    noise, labels = variant.noise(batch, seed=0), np.arange(batch, dtype=np.int64) % 10
    tn, tl = torch.from_numpy(noise).cuda(), torch.from_numpy(labels).cuda()

    def torch_gpu():
        with torch.inference_mode():
            g(tn, tl)
            torch.cuda.synchronize()

    def torch_numpy():                          # numpy in, numpy out, as generate(noise, labels) is
        with torch.inference_mode():
            return g(torch.from_numpy(noise).cuda(), torch.from_numpy(labels).cuda()).cpu().numpy()

    kind = f"{variant.variant} variant ({variant.info.precision})"
    runs = {
        "gpu out: torch eager fp32": torch_gpu,
        f"gpu out: OnnxGenerator, {kind}": lambda: variant.generate(tn, tl, output="device"),
        "gpu out: OnnxGenerator, main fp32 (the CPU rewrite)": lambda: main.generate(tn, tl, output="device"),
        "numpy out: torch eager fp32, numpy noise .cuda(), .cpu().numpy()": torch_numpy,
        f"numpy out: OnnxGenerator, {kind}": lambda: variant.generate(noise, labels),
        "numpy out: OnnxGenerator, main fp32": lambda: main.generate(noise, labels),
    }
    if shipped is not None:
        ship = OnnxGenerator(shipped, device="cuda")
        runs[f"gpu out: OnnxGenerator, {shipped.name}/ as shipped ({ship.variant})"] = \
            lambda: ship.generate(tn, tl, output="device")
        runs[f"numpy out: OnnxGenerator, {shipped.name}/ as shipped ({ship.variant})"] = \
            lambda: ship.generate(noise, labels)
    return runs


def table(arch: str, folder: Path, batch: int, seconds: float, shipped: Path | None = None) -> Path:
    from gan_pack.package.pack import PackOptions, pack

    folder = folder / arch
    folder.mkdir()
    generator, exported = build_cgan(folder, arch, rewrite="on")
    package = pack(exported, folder / f"{arch}-pkg", PackOptions(variants=("cuda",)))
    runs = contenders(generator, package, batch, shipped)
    rates = interleaved_rates(runs, batch, seconds)
    print(f"\n{arch} cGAN, batch {batch}, images/s (interleaved rounds; the same untrained weights in torch and "
          f"in the package made here)")
    for output in ("gpu out", "numpy out"):
        base = next(v for k, v in rates.items() if k.startswith(output) and "torch" in k)
        for name, value in rates.items():
            if name.startswith(output):
                print(f"  {name:<72} {value:>12,.0f} {value / base:>7.2f}x")
    return package


def streaming(package: Path, n: int) -> None:
    """`ganpack sample --device cuda -n N -o x.npy` as a whole process, then its parts alone: the same
    stream in this process (session made), the noise on one thread and on the threads sample uses,
    and this disk's write rate."""
    from concurrent.futures import ThreadPoolExecutor

    from gan_pack.core.noise import portable_noise
    from gan_pack.runtime.generator import OnnxGenerator
    from gan_pack.runtime.session import usable_cores

    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        command = [sys.executable, "-m", "gan_pack", "sample", str(package), "--device", "cuda", "-n", str(n),
                   "--seed", "0", "-o", f"{scratch}/x.npy"]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        took = time.perf_counter() - started
        size = Path(f"{scratch}/x.npy").stat().st_size
        block = np.zeros(size // (n // 8192), np.uint8)
        started = time.perf_counter()
        with open(f"{scratch}/copy.bin", "wb") as f:
            for _ in range(n // 8192):
                f.write(block.data)
        disk = size / (time.perf_counter() - started)
    g = OnnxGenerator(package, device="cuda")
    next(g.iter_batches(8192, seed=1))
    started = time.perf_counter()
    for _ in g.iter_batches(n, seed=0):
        pass
    streamed = n / (time.perf_counter() - started)
    started = time.perf_counter()
    portable_noise(0, 0, 100_000, 100)
    one = 100_000 / (time.perf_counter() - started)
    workers = max(1, usable_cores() - 1)
    with ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        list(pool.map(lambda i: portable_noise(0, i * 8192, 8192, 100), range(4 * workers)))
        threaded = 4 * workers * 8192 / (time.perf_counter() - started)
    print(f"\nganpack sample {package.name}/ --device cuda -n {n:,} -o x.npy ({size / 2**30:.2f} GiB): {took:.1f} s, "
          f"{n / took:,.0f} images/s end to end, process start included")
    print(f"  its parts alone: the stream in a process whose session is made {streamed:,.0f} images/s "
          f"({g.describe()}, numpy out); portable noise {one:,.0f} images/s on one thread, {threaded:,.0f} on "
          f"{workers} threads; writing {disk / 2**20:,.0f} MiB/s ({disk / (size / n):,.0f} images/s) to this disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--stream-only", action="store_true", help="only the `ganpack sample` stream")
    args = parser.parse_args()
    import onnxruntime as ort
    import torch

    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}, onnxruntime {ort.__version__}")
    with tempfile.TemporaryDirectory() as scratch:
        if not args.stream_only:
            table("dcgan", Path(scratch), args.batch, args.seconds, ROOT / "exported" / "mnist-cgan")
            table("mlp", Path(scratch), args.batch, args.seconds, ROOT / "exported" / "mnist-cgan-mlp")
        streaming(ROOT / "exported" / "mnist-cgan", args.samples)


if __name__ == "__main__":
    main()

"""Sampling speed and cold start, measured side by side in one run (not a test).

For the classic MLP cGAN: onnxruntime CPU (default session, and tuned) against PyTorch eager CPU
on the same weights and noise, at batch 1, 64 and 1024, timed in interleaved rounds; then the cold start of a whole
`ganpack sample` process against a process that only imports torch.

Usage: .venv/bin/python benchmarks/sampling.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 64, 1024)


def build_mlp_cgan(folder: Path):
    """A classic MLP cGAN with calibrated BatchNorm, saved as a checkpoint and exported."""
    import numpy as np
    import torch

    from gan_pack.checkpoint import save_checkpoint
    from gan_pack.config import TrainConfig
    from gan_pack.export import ExportOptions, export_generator, load_generator
    from gan_pack.idx import write_idx
    from gan_pack.models import recalibrate_batchnorm
    from gan_pack.train import build_trainer

    data = folder / "data"                  # 64 random digits: the weights are untrained anyway
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte", np.random.default_rng(0).integers(0, 255, (64, 28, 28)))
    write_idx(data / "train-labels-idx1-ubyte", np.arange(64) % 10)
    config = TrainConfig.from_dict(dict(model="cgan", arch="mlp", out=str(folder), device="cpu", data_dir=str(data)))
    t = build_trainer(config)
    recalibrate_batchnorm(t.ema.model, 100, 10, torch.device("cpu"))
    save_checkpoint(t, folder)
    export_generator(folder, folder / "mlp.onnx", ExportOptions(batch_sizes=(1, 7)))
    return load_generator(folder)[0], folder / "mlp.onnx"


def rate(fn, batch: int, seconds: float) -> float:
    """Images per second of fn() producing `batch` images, after a warm-up."""
    for _ in range(3):
        fn()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return calls * batch / (time.perf_counter() - started)


def interleaved_rates(fns: dict, batch: int, seconds: float, rounds: int = 3) -> dict:
    """Images/s of each fn, timed in turns (A, B, C, A, B, C, ...) so a slow spell of the machine
    hits every contender alike."""
    totals = {name: [0, 0.0] for name in fns}
    for fn in fns.values():
        fn()                                                   # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            started = time.perf_counter()
            while time.perf_counter() - started < seconds / rounds:
                fn()
                totals[name][0] += 1
            totals[name][1] += time.perf_counter() - started
    return {name: calls * batch / taken for name, (calls, taken) in totals.items()}


def sessions(path: Path):
    import onnxruntime as ort

    default = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    tuned = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return {"onnxruntime default": default, "onnxruntime tuned": tuned}


def throughput_table(generator, path: Path, seconds: float) -> list[str]:
    import torch

    torch.set_num_threads(os.cpu_count())
    rows = [f"{'batch':>6} {'torch eager':>14} {'ort default':>14} {'ort tuned':>14} {'tuned/torch':>12}"]
    runs = sessions(path)
    for batch in BATCHES:
        noise = np.random.default_rng(0).standard_normal((batch, 100), dtype=np.float32)
        labels = np.arange(batch, dtype=np.int64) % 10
        tn, tl = torch.from_numpy(noise), torch.from_numpy(labels)
        def torch_run():
            with torch.inference_mode():
                generator(tn, tl)

        fns = {"torch": torch_run, **{name: (lambda s=s: s.run(["images"], {"noise": noise, "labels": labels}))
                                      for name, s in runs.items()}}
        r = interleaved_rates(fns, batch, 3 * seconds)
        tuned = r["onnxruntime tuned"]
        rows.append(f"{batch:>6} {r['torch']:>14,.0f} {r['onnxruntime default']:>14,.0f} {tuned:>14,.0f} "
                    f"{tuned / r['torch']:>11.2f}x")
    return rows


def variants_table(folder: Path, fp32: Path, seconds: float) -> list[str]:
    """fp32, fp16 and int8 (static, dynamic) files of the same generator: images/s and size."""
    import onnxruntime as ort

    from gan_pack.export import ExportOptions, export_generator
    from gan_pack.quantize import quantize_generator

    paths = {"fp32": fp32, "fp16": folder / "mlp16.onnx", "int8 static": folder / "mlp.int8.onnx",
             "int8 dynamic": folder / "mlp.int8d.onnx"}
    export_generator(folder, paths["fp16"], ExportOptions(precision="fp16", batch_sizes=(1, 7)))
    quantize_generator(fp32, paths["int8 static"], "static")
    quantize_generator(fp32, paths["int8 dynamic"], "dynamic")
    rows = [f"{'variant':<13} {'MB':>6} " + " ".join(f"{'batch ' + str(b):>11}" for b in BATCHES)
            + f" {'vs fp32 @1024':>14}"]
    base = None
    for name, path in paths.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rates = []
        for batch in BATCHES:
            feeds = {"noise": np.random.default_rng(0).standard_normal((batch, 100), dtype=np.float32),
                     "labels": np.arange(batch, dtype=np.int64) % 10}
            rates.append(rate(lambda: session.run(["images"], feeds), batch, seconds))
        base = base or rates[-1]
        rows.append(f"{name:<13} {path.stat().st_size / 1e6:>6.2f} " + " ".join(f"{r:>11,.0f}" for r in rates)
                    + f" {rates[-1] / base:>13.2f}x")
    return rows


def measure_process(argv: list[str], repeats: int = 5) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MiB) of a whole process, each run in a fresh wrapper."""
    probe = ("import resource, subprocess, sys, time\n"
             "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "assert r.returncode == 0, r.stderr\n"
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    walls, peaks = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
        wall, rss_kib = out.stdout.split()
        walls.append(float(wall))
        peaks.append(float(rss_kib) / 1024)
    return float(np.median(walls)), max(peaks)


def cold_start_table(model: Path) -> list[str]:
    runtime_python = ROOT / ".venv-runtime" / "bin" / "python"
    python = str(runtime_python) if runtime_python.exists() else sys.executable
    out = Path(tempfile.mkdtemp()) / "x.png"
    sample = [python, "-m", "gan_pack", "sample", str(model), "-n", "64", "-o", str(out)]
    torch_only = [sys.executable, "-c", "import torch"]
    rows = [f"{'process':<44} {'wall s':>8} {'peak MiB':>9}"]
    for name, argv in ((f"ganpack sample -n 64 ({Path(python).parent.parent.name})", sample),
                       ("python -c 'import torch'", torch_only)):
        wall, peak = measure_process(argv)
        rows.append(f"{name:<44} {wall:>8.3f} {peak:>9.1f}")
    shutil.rmtree(out.parent)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    import onnxruntime
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    folder = Path(tempfile.mkdtemp())
    try:
        generator, path = build_mlp_cgan(folder)
        print("\nMLP cGAN images/s on CPU (same weights, same noise)")
        print("\n".join(throughput_table(generator, path, args.seconds)))
        print("\nvariants of the same generator, onnxruntime CPU images/s")
        print("\n".join(variants_table(folder, path, args.seconds)))
        print("\ncold start (shipped exported/mnist-cgan-mlp.onnx)")
        print("\n".join(cold_start_table(ROOT / "exported" / "mnist-cgan-mlp.onnx")))
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()

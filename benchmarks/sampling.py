"""Sampling speed, memory and cold start, measured side by side in one run (not a test).

For the classic MLP cGAN: onnxruntime CPU (default session, and tuned) against PyTorch eager CPU
on the same weights and noise, at batch 1, 64 and 1024, timed in interleaved rounds, and its fp16
and int8 variants. For the DCGAN cGAN: PyTorch eager against the export with ConvTranspose (as
exported before the rewrite), the rewritten export and its int8 variant, with the useful GFLOP/s
and their share of this machine's matrix-product peak (measured in the same run). Then the peak
memory of `ganpack sample -n 100000 --format npy` and the cold start of `ganpack sample -n 64`
for the shipped models, against a process that only imports torch.

Usage: .venv/bin/python benchmarks/sampling.py [--seconds 2] [--only mlp|dcgan|memory]
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

from gan_pack.runtime.session import create_session

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 64, 1024)


def build_mlp_cgan(folder: Path):
    """A classic MLP cGAN with calibrated BatchNorm, saved as a checkpoint and exported."""
    return build_cgan(folder, "mlp")


def build_cgan(folder: Path, arch: str, **export):
    """A cGAN of the preset `arch` with calibrated BatchNorm (untrained weights: speed does not
    depend on them), saved as a checkpoint in `folder` and exported to folder/ARCH.onnx."""
    import numpy as np
    import torch

    from gan_pack.core.idx import write_idx
    from gan_pack.pytorch.checkpoint import save_checkpoint
    from gan_pack.pytorch.config import TrainConfig
    from gan_pack.pytorch.ema import recalibrate_batchnorm
    from gan_pack.pytorch.export import ExportOptions, export_generator, load_generator
    from gan_pack.pytorch.train import build_trainer

    data = folder / "data"                  # 64 random digits: the weights are untrained anyway
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte", np.random.default_rng(0).integers(0, 255, (64, 28, 28)))
    write_idx(data / "train-labels-idx1-ubyte", np.arange(64) % 10)
    config = TrainConfig.from_dict(dict(model="cgan", arch=arch, out=str(folder), device="cpu", data_dir=str(data)))
    t = build_trainer(config)
    recalibrate_batchnorm(t.ema.model, 100, 10, torch.device("cpu"))
    save_checkpoint(t, folder)
    export_generator(folder, folder / f"{arch}.onnx", ExportOptions(batch_sizes=(1, 7), **export))
    return load_generator(folder)[0], folder / f"{arch}.onnx"


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


def torch_against_sessions(generator, runs: dict, batch: int, seconds: float) -> dict:
    """Images/s of the PyTorch cGAN ("torch") and of each onnxruntime session in `runs`, on the same
    noise and labels, timed in interleaved rounds."""
    import torch

    noise = np.random.default_rng(0).standard_normal((batch, 100), dtype=np.float32)
    labels = np.arange(batch, dtype=np.int64) % 10
    tn, tl = torch.from_numpy(noise), torch.from_numpy(labels)

    def torch_run():
        with torch.inference_mode():
            generator(tn, tl)

    fns = {"torch": torch_run, **{name: (lambda s=s: s.run(["images"], {"noise": noise, "labels": labels}))
                                  for name, s in runs.items()}}
    return interleaved_rates(fns, batch, seconds)


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
        r = torch_against_sessions(generator, runs, batch, 3 * seconds)
        tuned = r["onnxruntime tuned"]
        rows.append(f"{batch:>6} {r['torch']:>14,.0f} {r['onnxruntime default']:>14,.0f} {tuned:>14,.0f} "
                    f"{tuned / r['torch']:>11.2f}x")
    return rows


def variants_table(folder: Path, fp32: Path, seconds: float) -> list[str]:
    """fp32, fp16 and int8 (static, dynamic) files of the same generator: images/s and size."""
    import onnxruntime as ort

    from gan_pack.onnx_tools.quantize import quantize_generator
    from gan_pack.pytorch.export import ExportOptions, export_generator

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


def useful_macs(generator, noise_dim: int = 100, num_classes: int = 10) -> int:
    """Multiply-adds one image needs: in x out for a Linear; for a (transposed) convolution,
    C_in x C_out/groups x the (input, tap) pairs that land inside the output (zero padding and
    cropped borders add nothing to the image, so they are not counted)."""
    import torch
    from torch import nn

    def pairs(n_in: int, n_out: int, k: int, s: int, p: int, transposed: bool) -> int:
        if transposed:
            return sum(0 <= i * s - p + t < n_out for i in range(n_in) for t in range(k))
        return sum(0 <= o * s - p + t < n_in for o in range(n_out) for t in range(k))

    total = 0

    def count(module, inputs, output):
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.Linear):
            total += module.in_features * module.out_features
            return
        transposed = isinstance(module, nn.ConvTranspose2d)
        per_axis = [pairs(x.shape[2 + a], output.shape[2 + a], module.kernel_size[a], module.stride[a],
                          module.padding[a], transposed) for a in (0, 1)]
        total += module.in_channels * module.out_channels // module.groups * per_axis[0] * per_axis[1]

    hooks = [m.register_forward_hook(count) for m in generator.modules()
             if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        generator(torch.zeros(1, noise_dim), torch.zeros(1, dtype=torch.long) if num_classes else None)
    for h in hooks:
        h.remove()
    return total


def matmul_peaks(seconds: float) -> dict[str, float]:
    """This machine's matrix-product rate through onnxruntime (2048^3, all cores): fp32 MatMul in
    GFLOP/s and uint8 x int8 MatMulInteger in GOP/s, the ceilings the generators are held to."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    n, rng, rates = 2048, np.random.default_rng(0), {}
    cases = {"fp32": ("MatMul", TensorProto.FLOAT, TensorProto.FLOAT, rng.standard_normal((n, n), dtype=np.float32),
                      rng.standard_normal((n, n), dtype=np.float32)),
             "int8": ("MatMulInteger", TensorProto.UINT8, TensorProto.INT32,
                      rng.integers(0, 255, (n, n), dtype=np.uint8), rng.integers(-127, 127, (n, n), dtype=np.int8))}
    for name, (op, dtype, out_type, a, b) in cases.items():
        graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["c"])], "peak",
                                  [helper.make_tensor_value_info("a", dtype, [n, n])],
                                  [helper.make_tensor_value_info("c", out_type, [n, n])],
                                  [numpy_helper.from_array(b, "b")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        rates[name] = rate(lambda: s.run(None, {"a": a}), 1, seconds) * 2 * n ** 3 / 1e9
    return rates


def dcgan_tables(folder: Path, seconds: float) -> list[str]:
    """The DCGAN cGAN: PyTorch eager against the ConvTranspose export, the rewritten export and its
    int8 variant (same weights and noise, interleaved rounds), with GFLOP/s and share of peak."""
    import torch

    from gan_pack.onnx_tools.optimize import optimize_generator
    from gan_pack.onnx_tools.quantize import quantize_generator

    torch.set_num_threads(os.cpu_count())
    generator, convtranspose = build_cgan(folder, "dcgan", rewrite="off")
    paths = {"ort ConvTranspose": convtranspose, "ort rewritten": folder / "dcgan.rewritten.onnx",
             "ort int8": folder / "dcgan.int8.onnx"}
    optimize_generator(convtranspose, paths["ort rewritten"], "on")
    quantize_generator(paths["ort rewritten"], paths["ort int8"], "static", calibration_n=256)
    macs, peaks = useful_macs(generator), matmul_peaks(seconds)
    runs = {name: create_session(path, "cpu", None) for name, path in paths.items()}
    rows = [f"useful work: {2 * macs / 1e6:.1f} MFLOP an image; this machine's matrix-product peak through "
            f"onnxruntime: {peaks['fp32']:.0f} GFLOP/s fp32, {peaks['int8']:.0f} GOP/s int8 (2048^3, all cores)",
            "",
            f"{'batch':>6} {'torch eager':>12} " + " ".join(f"{name:>18}" for name in paths)]
    shares = []
    for batch in BATCHES:
        r = torch_against_sessions(generator, runs, batch, 4 * seconds)
        rows.append(f"{batch:>6} {r['torch']:>12,.0f} " + " ".join(
            f"{r[name]:>9,.0f} ({r[name] / r['torch']:.2f}x)" for name in paths))
        flops = {name: 2 * macs * r[name] / 1e9 for name in ("torch", *paths)}
        shares.append(f"{batch:>6} " + " ".join(
            f"{flops[name]:>8.1f} ({flops[name] / peaks['int8' if 'int8' in name else 'fp32']:>4.0%})"
            for name in flops))
    rows += ["", "useful GFLOP/s (share of the fp32 peak; int8: of the int8 peak)",
             f"{'batch':>6} " + " ".join(f"{name:>15}" for name in ("torch eager", *paths)), *shares]
    return rows


def memory_table(n: int) -> list[str]:
    """Peak resident memory of whole `ganpack sample` processes on the shipped generators (runtime
    venv): -n N to one .npy, and the cold start of -n 64 to a PNG grid."""
    runtime_python = ROOT / ".venv-runtime" / "bin" / "python"
    python = str(runtime_python) if runtime_python.exists() else sys.executable
    scratch = Path(tempfile.mkdtemp())
    rows = [f"{'model':<32} {'batch':>5} {'-n ' + str(n) + ' npy: s':>16} {'peak MiB':>9} {'output MiB':>11} "
            f"{'-n 64: s':>9} {'peak MiB':>9}"]
    try:
        models = sorted(ROOT.glob("exported/*/*.onnx"))
        for model in models:
            from gan_pack.runtime.generator import OnnxGenerator

            batch = OnnxGenerator(model).batch_size
            out = scratch / "x.npy"
            wall, peak = measure_process([python, "-m", "gan_pack", "sample", str(model), "-n", str(n),
                                          "-o", str(out)], repeats=1)
            size = out.stat().st_size / 2**20
            cold_wall, cold_peak = measure_process([python, "-m", "gan_pack", "sample", str(model), "-n", "64",
                                                    "-o", str(scratch / "x.png")])
            rows.append(f"{model.name:<32} {batch:>5} {wall:>16.1f} {peak:>9.1f} {size:>11.1f} "
                        f"{cold_wall:>9.3f} {cold_peak:>9.1f}")
    finally:
        shutil.rmtree(scratch)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--only", choices=("mlp", "dcgan", "memory"), help="run one part")
    parser.add_argument("--memory-n", type=int, default=100_000, help="images of the memory runs")
    args = parser.parse_args()
    import onnxruntime
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    folder = Path(tempfile.mkdtemp())
    try:
        if args.only in (None, "mlp"):
            (folder / "mlp").mkdir()
            generator, path = build_mlp_cgan(folder / "mlp")
            print("\nMLP cGAN images/s on CPU (same weights, same noise)")
            print("\n".join(throughput_table(generator, path, args.seconds)))
            print("\nvariants of the same generator, onnxruntime CPU images/s")
            print("\n".join(variants_table(folder / "mlp", path, args.seconds)))
        if args.only in (None, "dcgan"):
            (folder / "dcgan").mkdir()
            print("\nDCGAN cGAN images/s on CPU (same weights, same noise; x: against torch eager)")
            print("\n".join(dcgan_tables(folder / "dcgan", args.seconds)))
        if args.only in (None, "memory"):
            print("\nmemory of whole ganpack sample processes (shipped models; output MiB is the .npy on disk)")
            print("\n".join(memory_table(args.memory_n)))
            print("\ncold start against torch (shipped exported/mnist-cgan-mlp/)")
            print("\n".join(cold_start_table(ROOT / "exported" / "mnist-cgan-mlp" / "mnist-cgan-mlp.onnx")))
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()

"""NVlabs generators: gan_pack's export of a network pickle against NVlabs' own forward (not a test).

Needs a checkout of NVlabs/stylegan3 (or NVlabs/stylegan2-ada-pytorch for --config stylegan2) outside
this repository, given with --nvlabs, and what its code imports (scipy, requests, click, and
setuptools' pkg_resources; a --deps folder is added to the end of sys.path). Its networks are built
with random weights (noise strengths and w_avg away from 0, ToRGB weights scaled so images mostly lie
in [-1, 1]), pickled with its own persistence code, then read by `ganpack export`'s path, which runs
none of that code.

--part parity: 32 and 64 px, with and without 10 classes, batch 1 and 7, psi 1 and 0.7, noise
    const; NVlabs' forward with force_fp32 (its reference ops on a CPU), images clamped to [-1, 1] as
    its gen_images.py does, against the export run by onnxruntime (CPU).
--part cpu: a 64 px network (z and w 512, 8 mapping layers, channel_base 16384, channel_max 256),
    batch 64 (--batches N: N), 2 threads for both: NVlabs' forward against OnnxGenerator, interleaved
    rounds.
--part gpu: the same network on CUDA, NVlabs' forward with its compiled ops (nvcc) against
    OnnxGenerator on CUDA with the fp32 file and its packed fp16 `cuda` variant, batch 64 and 1024.

Usage: PYTHONPATH=. python benchmarks/nvlabs.py --nvlabs ~/src/stylegan3 --config stylegan2 --part parity
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling import interleaved_rates  # noqa: E402

from gan_pack.pytorch.export import ExportOptions, write_generator  # noqa: E402
from gan_pack.pytorch.nvlabs import exportable_network_pickle  # noqa: E402
from gan_pack.runtime.generator import OnnxGenerator  # noqa: E402


def nvlabs_generator(config: str, resolution: int, c_dim: int, big: bool, seed: int = 0):
    torch.manual_seed(seed)
    width = {"z_dim": 512, "w_dim": 512} if big else {"z_dim": 64, "w_dim": 64}
    mapping = {"num_layers": 8 if big else 2}
    channels = {"channel_base": 16384, "channel_max": 256} if big else {"channel_base": 2048, "channel_max": 64}
    if config == "stylegan2":
        try:
            networks = importlib.import_module("training.networks_stylegan2")
            synthesis = {"conv_clamp": 256, "num_fp16_res": 4}
        except ImportError:                           # stylegan2-ada-pytorch
            networks = importlib.import_module("training.networks")
            synthesis = {"synthesis_kwargs": {"conv_clamp": 256, "num_fp16_res": 4, **channels}}
            channels = {}
    else:
        networks = importlib.import_module("training.networks_stylegan3")
        synthesis = {"conv_kernel": 1, "use_radial_filters": True} if config == "stylegan3-r" else {}
        synthesis |= {"num_fp16_res": 4, "conv_clamp": 256}
    g = networks.Generator(c_dim=c_dim, img_resolution=resolution, img_channels=3, mapping_kwargs=mapping,
                           **width, **channels, **synthesis).eval().requires_grad_(False)
    for name, value in g.named_parameters():
        if name.endswith("noise_strength"):
            value.fill_(0.2)
        if "torgb" in name and name.endswith("weight") and value.dim() == 4:
            value.mul_(0.3)
    for name, value in g.named_buffers():
        if name.endswith("w_avg"):
            value.copy_(torch.randn_like(value) * 0.3)
    return g


def nvlabs_images(g, z, labels, psi, device="cpu", force_fp32=True):
    c = None if labels is None else torch.nn.functional.one_hot(torch.as_tensor(labels), g.c_dim).float()
    with torch.no_grad():
        zt = torch.as_tensor(z, device=device)
        c = None if c is None else c.to(device)
        return g(zt, c, truncation_psi=psi, noise_mode="const", force_fp32=force_fp32).clamp(-1, 1).cpu().numpy()


def exported(g, scratch: Path, name: str) -> Path:
    pickle_path, model = scratch / f"{name}.pkl", scratch / f"{name}.onnx"
    with open(pickle_path, "wb") as f:
        pickle.dump({"G": g, "G_ema": g, "D": None}, f)
    write_generator(exportable_network_pickle(pickle_path), model, ExportOptions(batch_sizes=(1, 7)))
    return model


def parity(config: str, scratch: Path) -> None:
    bound = 1e-4 if config == "stylegan2" else 1e-3
    for resolution in (32, 64):
        for c_dim in (0, 10):
            g = nvlabs_generator(config, resolution, c_dim, big=False)
            onnx_g = OnnxGenerator(exported(g, scratch, f"g{resolution}_{c_dim}"))
            worst = 0.0
            for batch in (1, 7):
                z = np.random.default_rng(batch).standard_normal((batch, g.z_dim), dtype=np.float32)
                labels = np.arange(batch) % c_dim if c_dim else None
                for psi in (1.0, 0.7):
                    feeds = {"noise": z, "psi": np.full(batch, psi, np.float32)}
                    if c_dim:
                        feeds["labels"] = labels.astype(np.int64)
                    ours = onnx_g.session.run(["images"], feeds)[0]
                    theirs = nvlabs_images(g, z, labels, psi)
                    gap = float(np.abs(ours - theirs).max())
                    worst = max(worst, gap)
                    print(f"  {config} {resolution:3d} px, {c_dim:2d} classes, batch {batch}, psi {psi}: "
                          f"max abs {gap:.2e}  (mean |image| {np.abs(theirs).mean():.3f})")
            print(f"{config} {resolution} px, {c_dim} classes: worst {worst:.2e} {'<=' if worst <= bound else '>'} "
                  f"{bound:g}")


def cpu_speed(config: str, scratch: Path, seconds: float, batch: int = 64) -> None:
    torch.set_num_threads(2)
    g = nvlabs_generator(config, 64, 0, big=True)
    onnx_g = OnnxGenerator(exported(g, scratch, "big"), threads=2)
    z = np.random.default_rng(0).standard_normal((batch, 512), dtype=np.float32)
    gap = float(np.abs(onnx_g.generate(z) - nvlabs_images(g, z, None, 1.0)).max())
    rates = interleaved_rates({"nvlabs": lambda: nvlabs_images(g, z, None, 1.0),
                               "onnx": lambda: onnx_g.generate(z)}, batch, seconds)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 2 threads each, torch "
          f"{torch.__version__}; {config} 64 px, batch {batch}, max abs difference {gap:.1e}")
    print(f"  NVlabs forward (reference ops)   {rates['nvlabs']:8.1f} images/s")
    print(f"  OnnxGenerator (onnxruntime CPU)  {rates['onnx']:8.1f} images/s  {rates['onnx'] / rates['nvlabs']:.2f}x")


def register_built_extensions() -> None:
    """NVlabs' custom_ops imports the extension it builds by name; torch >= 2.x's cpp_extension.load
    returns it without registering that name, so register it."""
    import torch.utils.cpp_extension as extension

    load = extension.load

    def load_and_register(*args, **kwargs):
        module = load(*args, **kwargs)
        sys.modules[kwargs.get("name") or args[0]] = module
        return module
    extension.load = load_and_register


def gpu_speed(config: str, scratch: Path, seconds: float, batches: list[int]) -> None:
    from gan_pack.package.pack import PackOptions, pack

    register_built_extensions()

    g = nvlabs_generator(config, 64, 0, big=True)
    model = exported(g, scratch, "big")
    package = pack(model, scratch / "big", PackOptions(variants=("cuda",)))
    g = g.cuda()
    factories = {"fp32 file": lambda: OnnxGenerator(package, device="cuda", variant="main"),
                 "cuda variant (fp16)": lambda: OnnxGenerator(package, device="cuda")}
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; {config} 64 px, NVlabs' forward with its "
          f"compiled ops (fp16 in its top resolutions, as it runs on CUDA; and with force_fp32)")
    z1 = np.random.default_rng(1).standard_normal((7, 512), dtype=np.float32)
    gap = float(np.abs(OnnxGenerator(model).generate(z1) - nvlabs_images(g, z1, None, 1.0, "cuda")).max())
    print(f"parity, batch 7: export (CPU) vs NVlabs forward (CUDA, force_fp32, TF32 on) max abs {gap:.2e}")
    for batch in batches:
        z = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, 512), dtype=np.float32)).cuda()

        def theirs(fp32=False):
            with torch.no_grad():
                g(z, None, noise_mode="const", force_fp32=fp32).clamp(-1, 1)
            torch.cuda.synchronize()
        if batch <= 256:               # every contender's memory fits at once: interleaved rounds
            runners = {name: make() for name, make in factories.items()}
            fns = {"nvlabs": theirs, "nvlabs fp32": lambda: theirs(True),
                   **{name: (lambda r=r: r.generate(z, output="device")) for name, r in runners.items()}}
            rates = interleaved_rates(fns, batch, seconds)
            del runners
        else:                          # one after another, each freed before the next
            rates = {}
            for name, fn in (("nvlabs", theirs), ("nvlabs fp32", lambda: theirs(True))):
                rates[name] = interleaved_rates({name: fn}, batch, seconds / 2)[name]
            torch.cuda.empty_cache()
            for name, make in factories.items():
                runner = make()
                rates[name] = interleaved_rates({name: lambda: runner.generate(z, output="device")}, batch,
                                                seconds / 2)[name]
                del runner
        print(f"batch {batch}{' (timed one after another)' if batch > 256 else ''}: " + ", ".join(
            f"{name} {rate:,.0f} images/s ({rate / rates['nvlabs']:.2f}x)" for name, rate in rates.items()))


def gpu_options(config: str, scratch: Path, seconds: float, batch: int) -> None:
    """The packaged fp32 file and cuda variant under other CUDA provider options, psi fed, numpy in
    and out, interleaved: where the fp16 variant's time goes."""
    import onnxruntime as ort

    from gan_pack.package.pack import PackOptions, pack

    package = pack(exported(nvlabs_generator(config, 64, 0, big=True), scratch, "big"), scratch / "big",
                   PackOptions(variants=("cuda",)))
    feeds = {"noise": np.random.default_rng(0).standard_normal((batch, 512), dtype=np.float32),
             "psi": np.ones(batch, np.float32)}
    sessions = {}
    for file in ("big.onnx", "big.cuda.onnx"):
        for nhwc in ("0", "1"):
            for search in ("HEURISTIC", "EXHAUSTIVE"):
                options = {"prefer_nhwc": nhwc, "cudnn_conv_algo_search": search}
                sessions[f"{file} nhwc={nhwc} {search}"] = ort.InferenceSession(
                    str(package / file), providers=[("CUDAExecutionProvider", options)])
    rates = interleaved_rates({name: (lambda s=s: s.run(["images"], feeds)) for name, s in sessions.items()},
                              batch, seconds)
    for name, rate in rates.items():
        print(f"  {name:<40} {rate:9,.0f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvlabs", required=True, type=Path, help="an NVlabs checkout (outside this repository)")
    parser.add_argument("--deps", type=Path, help="a folder of what NVlabs' code imports")
    parser.add_argument("--config", default="stylegan2", choices=["stylegan2", "stylegan3-t", "stylegan3-r"])
    parser.add_argument("--part", default="parity", choices=["parity", "cpu", "gpu", "gpu-options"])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batches", default="64,1024", help="gpu: the batches; cpu: the first is the batch")
    args = parser.parse_args()
    sys.path.insert(0, str(args.nvlabs.resolve()))
    if args.deps:
        sys.path.append(str(args.deps.resolve()))
    with tempfile.TemporaryDirectory() as scratch:
        if args.part == "parity":
            parity(args.config, Path(scratch))
        elif args.part == "cpu":
            cpu_speed(args.config, Path(scratch), args.seconds, int(args.batches.split(",")[0]))
        elif args.part == "gpu-options":
            gpu_options(args.config, Path(scratch), args.seconds, int(args.batches.split(",")[0]))
        else:
            gpu_speed(args.config, Path(scratch), args.seconds, [int(b) for b in args.batches.split(",")])


if __name__ == "__main__":
    main()

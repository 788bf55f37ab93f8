"""StyleGAN2 on a GPU: the export against the package's forward with its real CUDA ops (not a test).

On a GPU machine with nvcc (and ninja, which torch's extension builder uses): stylegan2-torch's ops
are compiled there (TORCH_CUDA_ARCH_LIST=9.0 on an H100/H200 shortens the build; on Python 3.12 a
distutils shim stands in for what the package imports). A 64 px generator (latent 512, 8 mapping
layers, channels capped at 128), random weights (ToRGB scaled by 0.2, as the tests do, so images
mostly lie in [-1, 1] like a trained network's), zero noise, psi 1:
- parity: the export (onnxruntime, CPU provider) against the compiled forward at batch 1, 7, 64;
- speed, in interleaved rounds at each batch: the compiled forward (PyTorch eager, fp32, TF32 as
  PyTorch defaults) against OnnxGenerator on CUDA, the fp32 file and, packed with --variants cuda,
  its fp16 variant (needs onnxruntime-gpu).

Usage: PYTHONPATH=. python benchmarks/stylegan2_cuda.py [--batches 64,1024] [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling import interleaved_rates  # noqa: E402

from gan_pack.pytorch.export import ExportOptions, write_generator  # noqa: E402
from gan_pack.pytorch.stylegan2 import exportable_stylegan2_torch, noise_resolutions  # noqa: E402
from gan_pack.pytorch.stylegan2_ops import compiled_stylegan2_torch_generator, stylegan2_torch_generator  # noqa: E402
from gan_pack.runtime.generator import OnnxGenerator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,1024")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    init = {"resolution": 64, "latent_dim": 512, "n_mlp": 8, "channels": {str(2 ** k): 128 for k in range(2, 7)}}
    channels = {int(k): v for k, v in init["channels"].items()}
    torch.manual_seed(0)
    source = stylegan2_torch_generator()(64, 512, 8, channels=channels).eval()
    with torch.no_grad():            # like a trained network, images mostly within [-1, 1]
        for rgb in source.to_rgbs:
            rgb.weight.mul_(0.2)
    started = time.perf_counter()
    compiled = compiled_stylegan2_torch_generator()(64, 512, 8, channels=channels)
    print(f"compiled the package's CUDA ops in {time.perf_counter() - started:.0f} s; "
          f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    compiled.load_state_dict(source.state_dict())
    compiled = compiled.cuda().eval()
    zeros = [torch.zeros(1, 1, s, s, device="cuda") for s in noise_resolutions(2 * len(compiled.convs) - 1)]
    with tempfile.TemporaryDirectory() as scratch:
        weights, model, package = Path(scratch) / "G.pt", Path(scratch) / "sg.onnx", Path(scratch) / "sg"
        torch.save(source.state_dict(), weights)
        write_generator(exportable_stylegan2_torch(weights, init, "none"), model, ExportOptions(batch_sizes=(1, 7)))
        cpu = OnnxGenerator(model)

        @torch.no_grad()
        def forward(z):
            return compiled([z], noises=zeros).clamp(-1, 1)

        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        for batch in (1, 7, 64):
            z = cpu.noise(batch, seed=batch)
            gap = np.abs(cpu.generate(z) - forward(torch.from_numpy(z).cuda()).cpu().numpy()).max()
            print(f"parity, batch {batch}: export (CPU) vs compiled forward (CUDA, fp32) max abs {gap:.2e}")
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        from gan_pack.cli.app import main as ganpack

        sys.argv = ["ganpack", "pack", str(model), "-o", str(package), "--variants", "cuda"]
        try:
            ganpack()
        except SystemExit as e:
            if e.code:
                raise
        contenders = {"fp32 file": OnnxGenerator(package, device="cuda", variant="main"),
                      "cuda variant (fp16)": OnnxGenerator(package, device="cuda")}
        for batch in map(int, args.batches.split(",")):
            z = torch.from_numpy(cpu.noise(batch, seed=1)).cuda()

            def torch_run():
                forward(z)
                torch.cuda.synchronize()

            runs = {"compiled forward": torch_run}
            runs.update({name: (lambda g=g: g.generate(z, output="device")) for name, g in contenders.items()})
            rates = interleaved_rates(runs, batch, args.seconds)
            base = rates["compiled forward"]
            print(f"batch {batch}: " + ", ".join(f"{name} {rate:,.0f} images/s ({rate / base:.2f}x)"
                                              for name, rate in rates.items()))


if __name__ == "__main__":
    main()

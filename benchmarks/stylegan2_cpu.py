"""StyleGAN2 sampling on a CPU: the export against the package's own forward (not a test).

A 64 px `stylegan2_torch.Generator` (latent 512, 8 mapping layers, its default channel table capped
at 128) with random weights, exported with `ganpack export --from stylegan2-torch --noise-mode none`.
Contenders, timed in interleaved rounds on the same weights and noise, fp32, zero noise, psi 1:
- PyTorch eager running the package's own forward with gan_pack's stand-in ops (what a user without
  nvcc runs: grouped convolutions of per-sample weights, the FIR filters as single-channel convolutions);
- PyTorch eager running gan_pack's rewritten graph (StyleGAN2Graph), to show what the rewrite alone gives;
- OnnxGenerator on the exported file (onnxruntime, CPU).

Usage: .venv/bin/python benchmarks/stylegan2_cpu.py [--batches 1,64] [--seconds 3] [--resolution 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampling import interleaved_rates  # noqa: E402

from gan_pack.pytorch.stylegan2 import exportable_stylegan2_torch, noise_resolutions  # noqa: E402
from gan_pack.pytorch.stylegan2_ops import stylegan2_torch_generator  # noqa: E402
from gan_pack.runtime.generator import OnnxGenerator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    side = args.resolution
    init = {"resolution": side, "latent_dim": 512, "n_mlp": 8,
            "channels": {str(2 ** k): 128 for k in range(2, side.bit_length())}}
    torch.manual_seed(0)
    g = stylegan2_torch_generator()(side, 512, 8, channels={int(k): v for k, v in init["channels"].items()}).eval()
    with tempfile.TemporaryDirectory() as scratch:
        weights, model = Path(scratch) / "G.pt", Path(scratch) / "sg.onnx"
        torch.save({"g_ema": g.state_dict()}, weights)
        from gan_pack.pytorch.export import ExportOptions, write_generator

        exportable = exportable_stylegan2_torch(weights, init, "none")
        write_generator(exportable, model, ExportOptions(batch_sizes=(1, 7)))
        onnx_g = OnnxGenerator(model)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__} ({torch.get_num_threads()} threads), model {model.stat().st_size / 1e6:.1f} MB, "
              f"{side} px, rewrites: {json.loads(onnx_g.info.raw.get('rewrites', '{}')).get('kept', 'none')}")
        zeros = [torch.zeros(1, 1, s, s) for s in noise_resolutions(2 * len(g.convs) - 1)]
        graph = exportable.generator
        for batch in map(int, args.batches.split(",")):
            z = onnx_g.noise(batch, seed=batch)
            zt = torch.from_numpy(z)

            @torch.no_grad()
            def own():
                return g([zt], noises=zeros).clamp(-1, 1).numpy()

            @torch.no_grad()
            def rewritten():
                return graph(zt).numpy()

            gap = max(np.abs(onnx_g.generate(z) - own()).max(), np.abs(rewritten() - own()).max())
            rates = interleaved_rates({"own": own, "rewritten": rewritten, "onnx": lambda: onnx_g.generate(z)},
                                      batch, args.seconds)
            print(f"batch {batch:5d} (max abs difference {gap:.1e}):")
            for name, label in (("own", "PyTorch eager, the package's forward (stand-in ops)"),
                                ("rewritten", "PyTorch eager, gan_pack's rewritten graph"),
                                ("onnx", "OnnxGenerator (onnxruntime CPU), the export")):
                print(f"  {label:<55} {rates[name]:9.1f} images/s  {rates[name] / rates['own']:5.2f}x")


if __name__ == "__main__":
    main()

"""Forward against forward, same weights: PyTorch eager (fp32) against the exported model (fp32) and its
int8 CPU variant, or on a GPU against the fp16 CUDA variant, on a compact upscaler of the published
realesr-general-x4v3 size (64 features, 32 convolutions, 4x) with seeded random weights.

    python benchmarks/upscale_speed.py --device cpu --threads 2 --size 256 --batch 1
    python benchmarks/upscale_speed.py --device cuda --size 512 --batch 8

Prints seconds per forward (median of --rounds interleaved rounds), the ratios to PyTorch, and each
variant's PSNR against the fp32 model (8-bit output, picture-like images).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def timed(run, rounds: int, repeat: int) -> list[float]:
    run()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            run()
        times.append((time.perf_counter() - started) / repeat)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from spandrel.architectures.Compact import Compact

    from gan_pack.core.test_images import picture_like
    from gan_pack.onnx_tools.image_variants import make_image_cuda, make_image_int8
    from gan_pack.pytorch.image_export import write_image_model
    from gan_pack.pytorch.image_models import exportable_spandrel
    from gan_pack.runtime.image_model import ImageModel

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    state = Compact(num_feat=64, num_conv=32, upscale=4).state_dict()
    exportable = exportable_spandrel(state, "realesr-general-x4v3-size.pth")
    x = picture_like(args.batch, 3, args.size, args.size, seed=0)
    with tempfile.TemporaryDirectory() as scratch:
        main_path = Path(scratch) / "compact.onnx"
        write_image_model(exportable, main_path)
        variant = Path(scratch) / ("compact.cuda.onnx" if args.device == "cuda" else "compact.int8.onnx")
        figure = (make_image_cuda if args.device == "cuda" else make_image_int8)(main_path, variant)
        module = exportable.module()
        threads = args.threads if args.device == "cpu" else None
        fp32 = ImageModel(main_path, device=args.device, threads=threads)
        other = ImageModel(variant, device=args.device, threads=threads)
        if args.device == "cuda":
            module = module.cuda()
            xt = torch.from_numpy(x).cuda()

            def eager():
                with torch.no_grad():
                    module(xt)
                torch.cuda.synchronize()
        else:
            xt = torch.from_numpy(x)

            def eager():
                with torch.no_grad():
                    module(xt)
        def on_device(model):
            """The graph with its image already on the GPU and its output left there (as PyTorch's)."""
            import onnxruntime as ort

            binding = model.session.io_binding()
            binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_output("images", "cuda")
            return lambda: model.session.run_with_iobinding(binding)

        run_fp32, run_other = ((on_device(fp32), on_device(other)) if args.device == "cuda"
                               else (lambda: fp32.run(x), lambda: other.run(x)))
        runs = {"pytorch fp32 eager": eager, "onnx fp32": run_fp32,
                f"onnx {'fp16 cuda' if args.device == 'cuda' else 'int8'}": run_other}
        times = {name: [] for name in runs}
        for _ in range(args.rounds):                           # interleaved rounds
            for name, run in runs.items():
                times[name] += timed(run, 1, args.repeat)
    base = statistics.median(times["pytorch fp32 eager"])
    where = f"{args.device}, {args.threads} threads" if args.device == "cpu" else "cuda"
    print(f"compact 64 features x 32 convolutions, 4x, input {args.batch}x3x{args.size}x{args.size} ({where}; "
          f"torch {torch.__version__})")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<20} {median * 1000:9.1f} ms   {base / median:5.2f}x PyTorch")
    print(f"  variant PSNR against fp32: {figure:.1f} dB")


if __name__ == "__main__":
    main()

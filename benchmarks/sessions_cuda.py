"""Raw onnxruntime sessions on the CUDA provider against PyTorch CUDA eager on the same MLP cGAN
weights and noise, side by side in one run (needs a GPU and onnxruntime-gpu; not a test): the study
behind the CUDA variant. benchmarks/sampling_cuda.py measures the public API.

For each variant of the generator (torch.onnx's graph with its BatchNorm nodes, gan_pack's export
that folds them into the next Gemm, that export with its Gemms rewritten as MatMul + Add, and the
fp16 export) and each way of feeding it (numpy in and
out, or I/O binding with inputs and outputs on the GPU), it prints images/s and the ratio to
PyTorch, and onnxruntime's profile (kernel time per operator type) for the I/O-bound runs.

With --arch dcgan, the DCGAN cGAN: the export with ConvTranspose nodes, the rewritten export
(phase convolutions, as ganpack export writes it by default on CPUs where that is faster) and the
fp16 export, with cuDNN's TF32 on and off on both sides, and the CUDA provider's NHWC layout.

Usage: python benchmarks/sessions_cuda.py [--arch mlp|dcgan] [--batch 8192] [--seconds 2]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sampling import build_cgan, build_mlp_cgan, rate  # noqa: E402


def session(path: Path, options: dict, profile: bool = False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = str(path.with_suffix(""))
    s = ort.InferenceSession(str(path), so, providers=[("CUDAExecutionProvider", options)])
    assert s.get_providers()[0] == "CUDAExecutionProvider", s.get_providers()
    return s


def bound_runner(s, noise: np.ndarray, labels: np.ndarray, image_shape):
    """I/O binding: inputs copied to the GPU once, the output written into a GPU buffer."""
    import onnxruntime as ort

    binding = s.io_binding()
    inputs = {"noise": ort.OrtValue.ortvalue_from_numpy(noise, "cuda", 0),
              "labels": ort.OrtValue.ortvalue_from_numpy(labels, "cuda", 0)}
    for name, value in inputs.items():
        binding.bind_ortvalue_input(name, value)
    output = ort.OrtValue.ortvalue_from_shape_and_type((len(noise), *image_shape), np.float32, "cuda", 0)
    binding.bind_ortvalue_output("images", output)
    return lambda: s.run_with_iobinding(binding)


def profile_summary(s, runs: int) -> str:
    events = json.load(open(s.end_profiling()))
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"].get("op_name")] += e["dur"]
    return ", ".join(f"{op} {us / runs:,.0f} us" for op, us in per_op.most_common(4))


def gemm_to_matmul(source: Path, target: Path) -> Path:
    """Each Gemm(x, W, b, transB=1) -> MatMul(x, W^T) + Add(b), W^T stored transposed."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    inits = {i.name: i for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "Gemm" or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
            nodes.append(node)
            continue
        x, w, b = node.input
        weight = numpy_helper.to_array(inits[w])
        if attrs.get("transB", 0):
            weight = weight.T
        model.graph.initializer.remove(inits[w])
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), w + "_t"))
        nodes.append(helper.make_node("MatMul", [x, w + "_t"], [node.output[0] + "_mm"]))
        nodes.append(helper.make_node("Add", [node.output[0] + "_mm", b], list(node.output)))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(target))
    return target


def cuda_kernel_table(run, calls: int = 5) -> str:
    """Every CUDA kernel and copy that a few runs launch (CUPTI sees onnxruntime's kernels too)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            run()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=70)


HEURISTIC = {"cudnn_conv_algo_search": "HEURISTIC"}


def cuda_inputs(generator, batch: int):
    """(noise, labels) as numpy for onnxruntime, and a run of the PyTorch cGAN on the GPU on the same
    inputs that waits for the GPU."""
    import torch

    noise = np.random.default_rng(0).standard_normal((batch, 100), dtype=np.float32)
    labels = np.arange(batch, dtype=np.int64) % 10
    g = generator.cuda().eval()
    tn, tl = torch.from_numpy(noise).cuda(), torch.from_numpy(labels).cuda()

    def torch_run():
        g(tn, tl)
        torch.cuda.synchronize()

    return noise, labels, torch_run


def dcgan(batch: int, seconds: float) -> None:
    """The DCGAN cGAN on the GPU: PyTorch eager against onnxruntime's CUDA provider, I/O bound."""
    import torch

    from gan_pack.pytorch.export import ExportOptions, export_generator

    folder = Path(tempfile.mkdtemp())
    try:
        generator, convtranspose = build_cgan(folder, "dcgan", rewrite="off")
        variants = {"fp32 ConvTranspose (export --rewrite off)": convtranspose,
                    "fp32 phase convolutions (export --rewrite on)": folder / "rewritten.onnx",
                    "fp16 ConvTranspose (export --precision fp16)": folder / "fp16.onnx"}
        export_generator(folder, variants["fp32 phase convolutions (export --rewrite on)"],
                         ExportOptions(batch_sizes=(1, 7), rewrite="on"))
        export_generator(folder, variants["fp16 ConvTranspose (export --precision fp16)"],
                         ExportOptions(precision="fp16", batch_sizes=(1, 7)))
        noise, labels, torch_run = cuda_inputs(generator, batch)

        rates: dict[str, float] = {}
        with torch.inference_mode():
            rates["torch eager fp32, defaults (cuDNN TF32 on, no benchmark)"] = rate(torch_run, batch, seconds)
            torch_kernels = cuda_kernel_table(torch_run)
            torch.backends.cudnn.benchmark = True
            for tf32 in (True, False):
                torch.backends.cudnn.allow_tf32 = tf32
                rates[f"torch eager fp32, cudnn.benchmark, TF32 {'on' if tf32 else 'off'}"] = \
                    rate(torch_run, batch, seconds)
            torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = False, True
        base = rates["torch eager fp32, defaults (cuDNN TF32 on, no benchmark)"]
        print(f"\n{'run (GPU in/out)':<78} {'images/s':>12} {'vs torch':>9}")
        for name, value in rates.items():
            print(f"{name:<78} {value:>12,.0f} {value / base:>8.2f}x")
        for name, path in variants.items():
            for opt_name, options in ((", TF32 on (default)", {}), (", TF32 off", {"use_tf32": "0"}),
                                      (", HEURISTIC algo search", HEURISTIC),
                                      (", HEURISTIC, TF32 off", {**HEURISTIC, "use_tf32": "0"}),
                                      (", HEURISTIC, prefer_nhwc", {**HEURISTIC, "prefer_nhwc": "1"}),
                                      (", HEURISTIC, CUDA graph", {**HEURISTIC, "enable_cuda_graph": "1"})):
                try:
                    value = rate(bound_runner(session(path, options), noise, labels, (1, 28, 28)), batch, seconds)
                except Exception as e:  # an option this build or this graph does not take
                    print(f"{'ort ' + name + opt_name:<78} failed: {str(e).splitlines()[0][:100]}")
                    continue
                print(f"{'ort ' + name + opt_name:<78} {value:>12,.0f} {value / base:>8.2f}x")
        from gan_pack.runtime.generator import OnnxGenerator

        for name in list(variants)[:2]:
            runtime = OnnxGenerator(variants[name], device="cuda", batch_size=batch)
            value = rate(lambda: runtime.generate(noise, labels), batch, seconds)
            print(f"{'OnnxGenerator(device=cuda).generate, numpy in/out, ' + name[:30]:<78} {value:>12,.0f} "
                  f"{value / base:>8.2f}x")
        print("\nGPU kernels of 5 runs, torch eager fp32 defaults:")
        print(torch_kernels)
        for name in variants:
            print(f"\nGPU kernels of 5 I/O-bound runs, {name}, HEURISTIC:")
            print(cuda_kernel_table(bound_runner(session(variants[name], HEURISTIC), noise, labels, (1, 28, 28))))
    finally:
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("mlp", "dcgan"), default="mlp")
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    import onnxruntime as ort
    import torch

    if args.arch == "dcgan":
        print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}, onnxruntime {ort.__version__}; "
              f"DCGAN cGAN, batch {args.batch}")
        dcgan(args.batch, args.seconds)
        return

    from gan_pack.pytorch.export import ExportOptions, export_generator

    batch = args.batch
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"MLP cGAN, batch {batch}")
    folder = Path(tempfile.mkdtemp())
    try:
        generator, fp32 = build_mlp_cgan(folder)
        from gan_pack.pytorch.export import ExportedGenerator, to_onnx

        raw = folder / "raw.onnx"            # torch.onnx's graph before gan_pack folds BatchNorm
        to_onnx(ExportedGenerator(generator, half=False).eval(), raw, 100, 10, 18)
        variants = {"fp32, BatchNorm kept (torch.onnx graph)": raw,
                    "fp32 (ganpack export: BatchNorm folded)": fp32,
                    "fp32 (ganpack export), Gemm -> MatMul+Add": gemm_to_matmul(fp32, folder / "matmul.onnx"),
                    "fp16 (ganpack export --precision fp16)": folder / "fp16.onnx"}
        export_generator(folder, variants["fp16 (ganpack export --precision fp16)"],
                         ExportOptions(precision="fp16", batch_sizes=(1, 7)))
        noise, labels, torch_run = cuda_inputs(generator, batch)

        with torch.inference_mode():
            base = rate(torch_run, batch, args.seconds)
            torch.backends.cuda.matmul.allow_tf32 = True
            tf32 = rate(torch_run, batch, args.seconds)
            torch.backends.cuda.matmul.allow_tf32 = False
        print(f"\n{'run':<58} {'images/s':>12} {'vs torch':>9}")
        print(f"{'torch eager fp32 (GPU in/out)':<58} {base:>12,.0f} {1:>8.2f}x")
        print(f"{'torch eager, TF32 matmuls':<58} {tf32:>12,.0f} {tf32 / base:>8.2f}x")
        profiles = []
        for name, path in variants.items():
            for opt_name, options in (("", {}), (", use_tf32=0", {"use_tf32": "0"})):
                s = session(path, options)
                numpy_rate = rate(lambda: s.run(["images"], {"noise": noise, "labels": labels}), batch, args.seconds)
                p = session(path, options, profile=True)
                run, calls = bound_runner(p, noise, labels, (1, 28, 28)), [0]

                def counted(run=run, calls=calls):
                    calls[0] += 1
                    run()

                bound_rate = rate(counted, batch, args.seconds)
                profiles.append(f"{name}{opt_name}: {profile_summary(p, calls[0])}")
                for how, value in ((", numpy in/out", numpy_rate), (", I/O binding", bound_rate)):
                    print(f"{'ort ' + name + opt_name + how:<58} {value:>12,.0f} {value / base:>8.2f}x")
        from gan_pack.runtime.generator import OnnxGenerator

        runtime = OnnxGenerator(fp32, device="cuda", batch_size=batch)
        api = rate(lambda: runtime.generate(noise, labels), batch, args.seconds)
        print(f"{'OnnxGenerator(device=cuda).generate, numpy in/out':<58} {api:>12,.0f} {api / base:>8.2f}x")
        for name in ("fp32, BatchNorm kept (torch.onnx graph)", "fp32 (ganpack export: BatchNorm folded)"):
            s = session(variants[name], {})
            print(f"\nGPU kernels of 5 I/O-bound runs, {name}:")
            print(cuda_kernel_table(bound_runner(s, noise, labels, (1, 28, 28))))
        print("\nonnxruntime profile, host time per run (I/O binding runs):")
        print("\n".join(profiles))
        opts = session(fp32, {}).get_provider_options()["CUDAExecutionProvider"]
        print("\nCUDA provider options (defaults):", {k: opts[k] for k in sorted(opts) if "tf32" in k or "cudnn" in k})
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()

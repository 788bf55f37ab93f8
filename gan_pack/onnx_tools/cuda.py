"""The variant of a generator made for CUDA, ONNX to ONNX: the CPU kernel rewrites undone (a GPU's
cuDNN runs ConvTranspose faster than the phase convolutions made for CPUs), then half precision for
weights and compute, float32 inputs and output kept. onnx + onnxruntime, no torch.

The rewrites are undone exactly: `phase_weights` and `tap_weights` only move weights, so their
inverses here give back the original tensors bit for bit. The variant is proven against the fp32
file it comes from, on the CUDA provider (variant.derive), since that is where it runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gan_pack.contract.parity import DEFAULT_ATOL, ParityReport
from gan_pack.core.files import file_sha256
from gan_pack.core.log import Log, say
from gan_pack.errors import ConfigError, ModelError
from gan_pack.onnx_tools.rewrite import PHASES, TAPS, replace_nodes
from gan_pack.onnx_tools.variant import Proof, derive
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.session import cuda_available

# What the CUDA variant asks of onnxruntime's CUDA provider: channels-last convolutions (measured
# 1.86x over NCHW for the fp16 DCGAN on an H200) and cuDNN's heuristics for their algorithms. A graph
# with grouped (depthwise) convolutions, as StyleGAN's FIR filters are, stays channels-first: there
# channels-last measured 0.54x (a 64 px StyleGAN2's fp16 variant on an H100, batch 256).
CUDA_OPTIONS = {"prefer_nhwc": "1", "cudnn_conv_algo_search": "HEURISTIC"}
GROUPED_CUDA_OPTIONS = {"prefer_nhwc": "0", "cudnn_conv_algo_search": "HEURISTIC"}


def cuda_options_of(model) -> dict[str, str]:
    """The CUDA provider options for this graph: channels-last unless it has grouped convolutions."""
    grouped = any(node.op_type in ("Conv", "ConvTranspose") and any(a.name == "group" and a.i > 1
                                                                    for a in node.attribute)
                  for node in model.graph.node)
    return GROUPED_CUDA_OPTIONS if grouped else CUDA_OPTIONS
CUDA_NEEDED = ("the cuda variant is made and proven on onnxruntime's CUDA provider: pack on a machine with a "
               "CUDA GPU and onnxruntime-gpu")
PHASE_NODES = ("phases", "relu", "nhwc", "blocks", "interleave", "full", "crop", "nchw")
TAP_NODES = ("nhwc", "taps", "taps_nchw", "sum")


def unphase_weights(phases: np.ndarray) -> np.ndarray:
    """The inverse of rewrite.phase_weights: (4 C_out, C_in, 2, 2) -> ConvTranspose's (C_in, C_out, 4, 4)."""
    c_out, c_in = phases.shape[0] // 4, phases.shape[1]
    blocks = phases.reshape(2, 2, c_out, c_in, 2, 2)
    weight = np.zeros((c_in, c_out, 4, 4), dtype=phases.dtype)
    for r in range(2):
        for s in range(2):
            for t in range(2):
                for u in range(2):
                    weight[:, :, 2 * (1 - t) + r, 2 * (1 - u) + s] = blocks[r, s, :, :, t, u].T
    return weight


def untap_weights(matrix: np.ndarray, k: int) -> np.ndarray:
    """The inverse of rewrite.tap_weights: (C_in, C_out k k) -> Conv's (C_out, C_in, k, k)."""
    c_in = matrix.shape[0]
    return matrix.reshape(c_in, -1, k, k).transpose(1, 0, 2, 3).copy()


def _groups(model, first: str) -> dict[str, object]:
    """prefix -> the first node of each rewritten group (its name is PREFIX/first)."""
    return {node.name[:-len(first) - 1]: node for node in model.graph.node if node.name.endswith("/" + first)}


def _phase_group(prefix: str, nodes: dict, inits: dict) -> tuple[list, dict]:
    from onnx import helper, numpy_helper

    conv = nodes[f"{prefix}/phases"]
    phases = numpy_helper.to_array(inits[conv.input[1]])
    weight = unphase_weights(phases)
    bias = numpy_helper.to_array(inits[conv.input[2]])[:weight.shape[1]]
    out = nodes[f"{prefix}/nchw"].output[0]
    relu = f"{prefix}/relu" in nodes
    made = [helper.make_node("ConvTranspose", [conv.input[0], f"{prefix}/weight", f"{prefix}/bias"],
                             [f"{prefix}/convtranspose" if relu else out], name=prefix,
                             kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])]
    if relu:
        made.append(helper.make_node("Relu", [f"{prefix}/convtranspose"], [out], name=f"{prefix}/relu"))
    return made, {f"{prefix}/weight": weight, f"{prefix}/bias": bias}


def _tap_group(prefix: str, nodes: dict, inits: dict) -> tuple[list, dict]:
    from onnx import helper, numpy_helper

    one_hot_conv = nodes[f"{prefix}/sum"]
    k = numpy_helper.to_array(inits[one_hot_conv.input[1]]).shape[2]
    weight = untap_weights(numpy_helper.to_array(inits[nodes[f"{prefix}/taps"].input[1]]), k)
    made = [helper.make_node("Conv", [nodes[f"{prefix}/nhwc"].input[0], f"{prefix}/weight", one_hot_conv.input[2]],
                             list(one_hot_conv.output), name=prefix, kernel_shape=[k, k], pads=[k // 2] * 4)]
    return made, {f"{prefix}/weight": weight}


def undo_cpu_rewrites(model) -> dict[str, int]:
    """Give back, in place, the ConvTranspose and Conv nodes that rewrite.rewrite_graph replaced;
    returns how many of each."""
    from onnx import numpy_helper

    nodes = {node.name: node for node in model.graph.node}
    inits = {init.name: init for init in model.graph.initializer}
    groups: list[tuple] = [(p, PHASE_NODES, _phase_group) for p in _groups(model, "phases")]
    groups += [(p, TAP_NODES, _tap_group) for p in _groups(model, "taps")]
    replaced, undone = {}, {PHASES: 0, TAPS: 0}
    for prefix, names, rebuild in groups:
        made, weights = rebuild(prefix, nodes, inits)
        members = [f"{prefix}/{n}" for n in names if f"{prefix}/{n}" in nodes]
        replaced[members[0]] = made
        replaced.update({m: [] for m in members[1:]})
        model.graph.initializer.extend(numpy_helper.from_array(w, name) for name, w in weights.items())
        undone[PHASES if rebuild is _phase_group else TAPS] += 1
    if groups:
        replace_nodes(model, [n for node in model.graph.node for n in replaced.get(node.name, [node])])
    return undone


def cuda_graph(model):
    """The CUDA variant of an fp32 generator graph (a new ModelProto): rewrites undone, fp16 inside,
    except the arithmetic that picks an index from the noise (set_aside)."""
    import copy

    from onnxruntime.transformers.float16 import convert_float_to_float16

    graph = copy.deepcopy(model)
    undo_cpu_rewrites(graph)
    aside = set_aside(graph)
    half = convert_float_to_float16(graph, keep_io_types=True)
    put_back(half, *aside)
    return clamp_output(half)


def set_aside(model) -> tuple[list, list, list]:
    """Take out of `model`, in place, the nodes whose results end in an integer index (each Cast to
    int64 and all that feeds it: a --subclasses G's pick of a subclass from the noise), reading
    their own renamed copies of the initializers they read; what they hand the rest becomes graph
    inputs meanwhile. Half precision there would change the pick (fp16 noise * 256 keeps few
    fraction bits), and the float16 converter's node_block_list casts each blocked node's inputs
    through fp16 all the same. Returns (nodes, initializers, inputs added) for put_back."""
    import copy

    from onnx import TensorProto, helper, shape_inference

    graph = model.graph
    makers = {out: k for k, node in enumerate(graph.node) for out in node.output}
    wanted = [k for k, node in enumerate(graph.node) if node.op_type == "Cast"
              and any(a.name == "to" and a.i == TensorProto.INT64 for a in node.attribute)]
    picked: set[int] = set()
    while wanted:
        k = wanted.pop()
        if k not in picked:
            picked.add(k)
            wanted += [makers[i] for i in graph.node[k].input if i in makers]
    if not picked:
        return [], [], []
    nodes = [copy.deepcopy(graph.node[k]) for k in sorted(picked)]
    read_by_rest = ({i for k, n in enumerate(graph.node) if k not in picked for i in n.input}
                    | {v.name for v in graph.output})
    handed = [o for n in nodes for o in n.output if o in read_by_rest]
    types = {v.name: v.type.tensor_type.elem_type for v in shape_inference.infer_shapes(model).graph.value_info}
    if not all(types.get(name) for name in handed):
        return [], [], []            # untyped hand-over: left as it is (the variant's proof then judges it)
    inputs = [helper.make_tensor_value_info(name, types[name], None) for name in handed]
    read = {i for n in nodes for i in n.input}
    initializers = [copy.deepcopy(i) for i in graph.initializer if i.name in read]
    copied = {i.name for i in initializers}
    for init in initializers:
        init.name = f"index/{init.name}"
    for node in nodes:
        node.input[:] = [f"index/{i}" if i in copied else i for i in node.input]
    for k in sorted(picked, reverse=True):
        del graph.node[k]
    unread = read - read_by_rest     # initializers only the set-aside nodes read: theirs alone now
    for k in reversed(range(len(graph.initializer))):
        if graph.initializer[k].name in unread:
            del graph.initializer[k]
    graph.input.extend(inputs)
    return nodes, initializers, inputs


def put_back(model, nodes: list, initializers: list, inputs: list) -> None:
    """Undo set_aside on the converted `model`: its nodes first (they read only graph inputs and
    their own initializers), unchanged, and their hand-over inputs dropped."""
    import copy

    handed = {v.name for v in inputs}
    kept = [copy.deepcopy(v) for v in model.graph.input if v.name not in handed]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    body = [copy.deepcopy(n) for n in model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend([*nodes, *body])
    model.graph.initializer.extend(initializers)


def clamp_output(model):
    """End the graph in Clip(-1, 1) on its images (on the GPU, where it costs nothing), so that the
    runtime need not clip them on the host (metadata clamped=true says so)."""
    from onnx import helper, numpy_helper

    from gan_pack.contract.names import IMAGES

    unclamped = f"{IMAGES}/unclamped"
    for node in model.graph.node:
        node.output[:] = [unclamped if o == IMAGES else o for o in node.output]
        node.input[:] = [unclamped if i == IMAGES else i for i in node.input]
    model.graph.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), name)
                                    for name, v in (("clamp/min", -1.0), ("clamp/max", 1.0))])
    model.graph.node.append(helper.make_node("Clip", [unclamped, "clamp/min", "clamp/max"], [IMAGES], name="clamp"))
    return model


def make_cuda_variant(main: Path, output: Path, target: Path | None = None, log: Log = None) -> ParityReport:
    """Write the CUDA variant of the fp32 generator `main` to `output` (or `target`, a temp path the
    caller moves), proven on the CUDA provider against `main` on the CPU (fp16's bound)."""
    import onnx

    if not cuda_available():
        raise ConfigError(CUDA_NEEDED)
    reference = OnnxGenerator(main)
    if reference.info.precision != "fp32":
        raise ModelError(f"{main} is {reference.info.precision}; the CUDA variant is made from the fp32 model")
    say(log, f"making the CUDA variant of {main.name} (rewrites undone, fp16)")
    meta = {k: v for k, v in reference.info.raw.items() if k not in ("parity", "rewrites", "parity_vs_original")}
    graph = cuda_graph(onnx.load(str(main)))
    meta.update({"precision": "fp16", "provider": "cuda", "cuda_options": json.dumps(cuda_options_of(graph)),
                 "clamped": "true", "derived_from_sha256": file_sha256(main)})
    proof = Proof(reference.generate, "fp32 onnxruntime CPU", "fp16-cuda", DEFAULT_ATOL["fp16"],
                  "the CUDA variant does not match the fp32 model", key="parity_vs_fp32", device="cuda")
    report = derive(graph, meta, output, proof, target=target)
    assert report is not None
    return report


def gpu_name() -> str | None:
    """The name of the GPU onnxruntime's CUDA provider runs on, where onnxruntime says it."""
    import onnxruntime as ort

    try:
        for d in ort.get_ep_devices():
            if d.ep_name == "CUDAExecutionProvider":
                meta = dict(d.device.metadata)
                return meta.get("Description") or meta.get("DeviceName") or None
    except (AttributeError, RuntimeError):
        pass
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information"))[:1]:    # Linux's driver
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                return line.split(":", 1)[1].strip()[:80] or None
    return None


SPEED_BATCH = 8192
SPEED_MEMORY = 4 << 30          # the activations a timed batch may take on the GPU


def measure_speed(models: dict[str, Path], seconds: float = 3.0, rounds: int = 3) -> tuple[int, dict]:
    """(batch, images/s of each model file) on the CUDA provider through OnnxGenerator.generate, the
    images left on the GPU, timed in interleaved rounds; what the manifest records of a CUDA variant.
    The batch is SPEED_BATCH, or fewer where the first model's activations of that many images would
    pass SPEED_MEMORY (a StyleGAN's are megabytes an image)."""
    generators = {name: OnnxGenerator(path, device="cuda") for name, path in models.items()}
    first = next(iter(generators.values()))
    batch = int(max(1, min(SPEED_BATCH, SPEED_MEMORY // (first.info.activation_bytes or 1))))
    noise = first.noise(batch, seed=0)
    labels = first.resolve_labels(batch, None)
    totals = {name: [0, 0.0] for name in generators}
    for g in generators.values():
        g.generate(noise, labels, output="device")                           # warm-up: cuDNN's choices
    for _ in range(rounds):
        for name, g in generators.items():
            started = time.perf_counter()
            while time.perf_counter() - started < seconds / (rounds * len(generators)) or not totals[name][0]:
                g.generate(noise, labels, output="device")      # returns once the GPU is done
                totals[name][0] += 1
            totals[name][1] += time.perf_counter() - started
    return batch, {name: round(calls * batch / taken) for name, (calls, taken) in totals.items()}

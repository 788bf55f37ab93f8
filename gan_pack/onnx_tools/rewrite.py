"""Kernel rewrites of an exported generator for onnxruntime's CPU provider (onnx + numpy, no torch).

Each rewrite keeps the math (the same products, summed in another order) and moves the work onto
kernels that run faster:

- `ConvTranspose` (kernel 4, stride 2, pad 1: the DCGAN upsampling) becomes ONE 2x2 `Conv` with 4x
  the output channels. Output pixel (2I + r - 1, 2J + s - 1) of the transposed convolution reads
  input rows I-1..I and columns J-1..J with kernel taps (2(1-t) + r, 2(1-u) + s), so the four
  output phases (r, s) are four 2x2 convolutions of the same input: one Conv whose output channel
  (r, s, c) is phase (r, s) of channel c. The phases are then interleaved channels-last, where each
  move is a run of C contiguous values, not one value, and the border row and column that pad 1
  drops are cropped. onnxruntime runs Conv in its blocked (NCHWc) layout near the FMA peak, while
  its ConvTranspose is a matrix product plus a scatter-add (col2im); and a Conv can be quantized
  (QLinearConv, with VNNI on CPUs that have it), which a ConvTranspose cannot.
- A `Conv` to a few channels (the last 3x3 layer to 1 or 3 channels, which onnxruntime's blocked
  kernels run at a few GFLOP/s) becomes a channels-last `MatMul` that gives each tap's partial sum,
  then a `Conv` with one-hot weights that adds the k x k taps: the same sums, on a matrix product.

`rewrite_graph` edits a model in place; `measure` times a rewritten model against the original so
that export keeps a rewrite only where it is faster on the machine at hand. Parity is proven by the
caller (export against PyTorch, `optimize` against the original file, through variant.derive).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_pack.runtime.session import create_session

PHASES = "convtranspose_phases"        # the names metadata records
TAPS = "thin_conv_taps"
THIN_MAX_CHANNELS = 4                  # convolutions to at most this many channels use the taps form


@dataclass
class Rewrites:
    """What rewrite_graph changed: a count per rewrite."""

    counts: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.counts.values())

    def record(self) -> dict:
        """What metadata `rewrites` records of a kept rewrite: the counts of the rewrites made."""
        return {"rewrites": {k: v for k, v in self.counts.items() if v}, "kept": True}


def phase_weights(weight: np.ndarray) -> np.ndarray:
    """ConvTranspose weights (C_in, C_out, 4, 4) -> the 2x2 Conv's (4 C_out, C_in, 2, 2), output
    channels ordered (r, s, c) so that channels-last they reshape to (..., 2, 2, C_out)."""
    c_in, c_out = weight.shape[:2]
    out = np.zeros((2, 2, c_out, c_in, 2, 2), dtype=weight.dtype)
    for r in range(2):
        for s in range(2):
            for t in range(2):
                for u in range(2):
                    out[r, s, :, :, t, u] = weight[:, :, 2 * (1 - t) + r, 2 * (1 - u) + s].T
    return out.reshape(4 * c_out, c_in, 2, 2)


def tap_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights (C_out, C_in, k, k) -> the MatMul's (C_in, C_out*k*k), column (o, y, x) the
    tap's partial sum, and the one-hot (C_out, C_out*k*k, k, k) Conv that adds the taps."""
    c_out, c_in, kh, kw = weight.shape
    matrix = weight.transpose(1, 0, 2, 3).reshape(c_in, c_out * kh * kw)
    one_hot = np.zeros((c_out, c_out * kh * kw, kh, kw), dtype=weight.dtype)
    for o in range(c_out):
        for y in range(kh):
            for x in range(kw):
                one_hot[o, (o * kh + y) * kw + x, y, x] = 1
    return matrix, one_hot


class _Graph:
    """The model's graph with what the rewrites look up: initializers, consumers, static shapes."""

    def __init__(self, model):
        import onnx

        self.graph = model.graph
        self.inits = {i.name: i for i in model.graph.initializer}
        self.consumers: dict[str, list] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        inferred = onnx.shape_inference.infer_shapes(model).graph
        self.shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None
                                for d in v.type.tensor_type.shape.dim]
                       for v in [*inferred.value_info, *inferred.input, *inferred.output]}

    def array(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name]) if name in self.inits else None

    def weight(self, name: str) -> np.ndarray:
        """An initializer that the rewrite's case check found."""
        array = self.array(name)
        assert array is not None, name
        return array

    def constant(self, name: str, value) -> str:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_phase_case(g: _Graph, node) -> bool:
    a = _attrs(node)
    weight = g.array(node.input[1])
    shape = g.shapes.get(node.input[0])
    return (weight is not None and weight.ndim == 4 and weight.shape[2:] == (4, 4)
            and (len(node.input) < 3 or not node.input[2] or g.array(node.input[2]) is not None)
            and a.get("strides") == [2, 2] and a.get("pads") == [1, 1, 1, 1] and a.get("group", 1) == 1
            and a.get("dilations", [1, 1]) == [1, 1] and a.get("output_padding", [0, 0]) == [0, 0]
            and "output_shape" not in a and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            and shape is not None and len(shape) == 4 and None not in shape[2:])


def _phase_nodes(g: _Graph, node, relu) -> list:
    """ConvTranspose (+ the Relu after it) -> Conv 2x2 -> [Relu] -> channels-last interleave -> crop."""
    from onnx import helper

    weight = g.weight(node.input[1])
    c_out = weight.shape[1]
    bias = g.weight(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(c_out, weight.dtype)
    height, width = (int(d) for d in g.shapes[node.input[0]][2:])      # static: _is_phase_case checked
    p = node.name or node.output[0]
    out = relu.output[0] if relu is not None else node.output[0]
    conv = f"{p}/phases"
    nodes = [helper.make_node("Conv", [node.input[0], g.constant(f"{p}/phase_weight", phase_weights(weight)),
                                       g.constant(f"{p}/phase_bias", np.tile(bias, 4))],
                              [conv], name=f"{p}/phases", kernel_shape=[2, 2], pads=[1, 1, 1, 1])]
    if relu is not None:                    # before the interleave, where onnxruntime fuses it into the Conv
        nodes.append(helper.make_node("Relu", [conv], [f"{p}/relu"], name=f"{p}/relu"))
        conv = f"{p}/relu"
    shape6 = [-1, height + 1, width + 1, 2, 2, c_out]                        # (B, I, J, r, s, C)
    shape4 = [-1, 2 * height + 2, 2 * width + 2, c_out]                      # (B, 2I + r, 2J + s, C)
    nodes += [
        helper.make_node("Transpose", [conv], [f"{p}/nhwc"], name=f"{p}/nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", [f"{p}/nhwc", g.constant(f"{p}/shape6", np.array(shape6, np.int64))],
                         [f"{p}/blocks"], name=f"{p}/blocks"),
        helper.make_node("Transpose", [f"{p}/blocks"], [f"{p}/interleaved"], name=f"{p}/interleave",
                         perm=[0, 1, 3, 2, 4, 5]),                           # (B, I, r, J, s, C)
        helper.make_node("Reshape", [f"{p}/interleaved", g.constant(f"{p}/shape4", np.array(shape4, np.int64))],
                         [f"{p}/full"], name=f"{p}/full"),
        helper.make_node("Slice", [f"{p}/full", g.constant(f"{p}/starts", np.array([1, 1], np.int64)),
                                   g.constant(f"{p}/ends", np.array([2 * height + 1, 2 * width + 1], np.int64)),
                                   g.constant(f"{p}/axes", np.array([1, 2], np.int64))],
                         [f"{p}/cropped"], name=f"{p}/crop"),
        helper.make_node("Transpose", [f"{p}/cropped"], [out], name=f"{p}/nchw", perm=[0, 3, 1, 2]),
    ]
    return nodes


def _is_thin_case(g: _Graph, node) -> bool:
    a = _attrs(node)
    weight = g.array(node.input[1])
    if weight is None or weight.ndim != 4 or len(node.input) < 3 or g.array(node.input[2]) is None:
        return False
    c_out, _, kh, kw = weight.shape
    return (c_out <= THIN_MAX_CHANNELS and kh == kw and kh % 2 == 1 and kh > 1
            and a.get("strides", [1, 1]) == [1, 1] and a.get("dilations", [1, 1]) == [1, 1]
            and a.get("group", 1) == 1 and a.get("pads") == [kh // 2] * 4
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))


def _thin_nodes(g: _Graph, node) -> list:
    """Conv (C_out <= 4, k x k, same padding) -> channels-last MatMul to C_out*k*k taps -> one-hot Conv."""
    from onnx import helper

    weight = g.weight(node.input[1])
    k = weight.shape[2]
    matrix, one_hot = tap_weights(weight)
    p = node.name or node.output[0]
    return [
        helper.make_node("Transpose", [node.input[0]], [f"{p}/nhwc"], name=f"{p}/nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", [f"{p}/nhwc", g.constant(f"{p}/tap_weight", matrix)], [f"{p}/taps"],
                         name=f"{p}/taps"),
        helper.make_node("Transpose", [f"{p}/taps"], [f"{p}/taps_nchw"], name=f"{p}/taps_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", [f"{p}/taps_nchw", g.constant(f"{p}/one_hot", one_hot), node.input[2]],
                         list(node.output), name=f"{p}/sum", kernel_shape=[k, k], pads=[k // 2] * 4),
    ]


def tap_nodes(model) -> list[str]:
    """The nodes of taps rewrites, which int8 must leave in float: the taps' partial sums are large
    and cancel in their sum, so 8 bits for each of them lose the image (the original convolution
    quantizes only the sum)."""
    return [n.name for n in model.graph.node if n.name.endswith(("/taps", "/sum"))]


def rewrite_graph(model, phases: bool = True, taps: bool = True) -> Rewrites:
    """Rewrite, in place, each ConvTranspose(4, 2, 1) into phase convolutions (`phases`) and each
    Conv to a few channels into taps (`taps`); returns what changed. Float32 graphs only."""
    from onnx import TensorProto

    g = _Graph(model)
    done = Rewrites({PHASES: 0, TAPS: 0})
    nodes, absorbed = [], set()
    for node in model.graph.node:
        if id(node) in absorbed:
            continue
        if phases and node.op_type == "ConvTranspose" and _is_phase_case(g, node) \
                and g.inits[node.input[1]].data_type == TensorProto.FLOAT:
            users = g.consumers.get(node.output[0], [])
            relu = users[0] if len(users) == 1 and users[0].op_type == "Relu" else None
            if relu is not None:
                absorbed.add(id(relu))
            nodes += _phase_nodes(g, node, relu)
            done.counts[PHASES] += 1
        elif taps and node.op_type == "Conv" and _is_thin_case(g, node) \
                and g.inits[node.input[1]].data_type == TensorProto.FLOAT:
            nodes += _thin_nodes(g, node)
            done.counts[TAPS] += 1
        else:
            nodes.append(node)
    if done:
        replace_nodes(model, nodes)
    return done


def replace_nodes(model, nodes: list) -> None:
    """Give the graph these nodes, in this order, dropping the weights no node reads any more and
    the shapes inferred for the old nodes."""
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)
    del model.graph.value_info[:]


def _feeds(session, batch: int) -> dict[str, np.ndarray]:
    """Standard-normal noise and labels 0 for each input the session has."""
    feeds: dict[str, np.ndarray] = {}
    for value in session.get_inputs():
        if value.type == "tensor(int64)":
            feeds[value.name] = np.zeros(batch, np.int64)
        else:
            feeds[value.name] = np.random.default_rng(0).standard_normal(
                (batch, *value.shape[1:]), dtype=np.float32)
    return feeds


def measure(paths: dict[str, str], batch: int = 64, seconds: float = 1.5, rounds: int = 3) -> dict[str, float]:
    """Images/s of each model file on this machine's CPU, timed in interleaved rounds (A, B, A, B,
    ...) so that a slow spell of the machine hits each alike."""
    sessions = {name: create_session(Path(path), "cpu", None) for name, path in paths.items()}
    feeds = {name: _feeds(s, batch) for name, s in sessions.items()}
    totals = {name: [0, 0.0] for name in paths}
    for name, s in sessions.items():
        s.run(None, feeds[name])                                              # warm-up
    for _ in range(rounds):
        for name, s in sessions.items():
            started = time.perf_counter()
            while time.perf_counter() - started < seconds / (rounds * len(paths)) or not totals[name][0]:
                s.run(None, feeds[name])
                totals[name][0] += 1
            totals[name][1] += time.perf_counter() - started
    return {name: calls * batch / taken for name, (calls, taken) in totals.items()}


def rewrite_for_cpu(model, mode: str, scratch) -> dict | None:
    """Apply the rewrites to `model` (in place) as `mode` says, and return what metadata records:
    None when the graph has nothing to rewrite (or mode is off); else the counts, whether they were
    kept, and, for auto, the images/s of both graphs at batch 64 on this machine's CPU. auto keeps
    the rewritten graph only where it measured faster."""
    import copy

    import onnx

    if mode == "off":
        return None
    candidate = copy.deepcopy(model)
    done = rewrite_graph(candidate)
    if not done:
        return None
    record = done.record()
    if mode == "auto":
        paths = {"original": str(Path(scratch) / "original.onnx"), "rewritten": str(Path(scratch) / "rewritten.onnx")}
        onnx.save(model, paths["original"])
        onnx.save(candidate, paths["rewritten"])
        rates = measure(paths)
        record.update(batch=64, images_per_s={k: round(v, 1) for k, v in rates.items()},
                      kept=rates["rewritten"] > rates["original"])
    if record["kept"]:
        model.graph.CopyFrom(candidate.graph)
    return record

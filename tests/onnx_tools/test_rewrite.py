"""Kernel rewrites: the rewritten graph computes what the original does, on real onnxruntime, for
every shape the rewrite accepts; what it does not accept is left alone; export, optimize and
quantize record what they did and prove it."""

import json

import numpy as np
import pytest

from conftest import one_error_line, run_cli, shipped

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from gan_pack.onnx_tools.rewrite import PHASES, TAPS, phase_weights, rewrite_graph


def session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def layer_model(op: str, weight: np.ndarray, bias: np.ndarray | None, shape, relu: bool, **attrs):
    """x (B, C, H, W) -> op(x, weight[, bias]) [-> Relu] -> y, with a dynamic batch."""
    inits = [numpy_helper.from_array(weight, "w")] + ([numpy_helper.from_array(bias, "b")] if bias is not None else [])
    nodes = [helper.make_node(op, ["x", "w"] + (["b"] if bias is not None else []), ["t" if relu else "y"],
                              name="layer", **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["t"], ["y"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None, None, None])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8                    # what any onnxruntime reads, whatever onnx's newest is
    return model


def outputs(model, x):
    return session(model).run(None, {"x": x})[0]


TRANSPOSED = dict(kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("c_in,c_out,h,w,bias,relu", [
    (16, 8, 7, 7, True, True),        # the 28px DCGAN's first upsampling, in small
    (8, 3, 4, 4, True, False),        # to RGB, no Relu after it
    (5, 4, 3, 6, False, True),        # not square, no bias
    (1, 1, 1, 1, True, False),        # the smallest input
])
def test_phase_rewrite_matches_conv_transpose(c_in, c_out, h, w, bias, relu):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((c_in, c_out, 4, 4), dtype=np.float32)
    b = rng.standard_normal(c_out, dtype=np.float32) if bias else None
    original = layer_model("ConvTranspose", weight, b, (c_in, h, w), relu, **TRANSPOSED)
    rewritten = layer_model("ConvTranspose", weight, b, (c_in, h, w), relu, **TRANSPOSED)
    assert rewrite_graph(rewritten).counts == {PHASES: 1, TAPS: 0}
    assert {n.op_type for n in rewritten.graph.node} >= {"Conv", "Transpose", "Slice"}
    assert "ConvTranspose" not in {n.op_type for n in rewritten.graph.node}
    onnx.checker.check_model(rewritten)
    for batch in (1, 5):
        x = rng.standard_normal((batch, c_in, h, w), dtype=np.float32)
        expected, actual = outputs(original, x), outputs(rewritten, x)
        assert actual.shape == expected.shape == (batch, c_out, 2 * h, 2 * w)
        np.testing.assert_allclose(actual, expected, atol=1e-4 * np.abs(expected).max())


@pytest.mark.torch
def test_phase_weights_against_torch():
    """The weight map itself, against PyTorch's own transposed convolution."""
    import torch

    rng = np.random.default_rng(1)
    weight = rng.standard_normal((6, 4, 4, 4), dtype=np.float32)
    x = rng.standard_normal((2, 6, 5, 5), dtype=np.float32)
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(weight), stride=2,
                                                    padding=1).numpy()
    phases = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(phase_weights(weight)), padding=1)
    blocks = phases.numpy().reshape(2, 2, 2, 4, 6, 6)                    # (B, r, s, C, I, J)
    full = blocks.transpose(0, 3, 4, 1, 5, 2).reshape(2, 4, 12, 12)      # (B, C, 2I + r, 2J + s)
    np.testing.assert_allclose(full[:, :, 1:11, 1:11], expected, atol=1e-4)


@pytest.mark.parametrize("c_out,k", [(1, 3), (3, 3), (2, 5)])
def test_taps_rewrite_matches_thin_conv(c_out, k):
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((c_out, 12, k, k), dtype=np.float32)
    bias = rng.standard_normal(c_out, dtype=np.float32)
    args = ("Conv", weight, bias, (12, 9, 9), False)
    original, rewritten = layer_model(*args, kernel_shape=[k, k], pads=[k // 2] * 4), \
        layer_model(*args, kernel_shape=[k, k], pads=[k // 2] * 4)
    assert rewrite_graph(rewritten).counts == {PHASES: 0, TAPS: 1}
    x = rng.standard_normal((3, 12, 9, 9), dtype=np.float32)
    np.testing.assert_allclose(outputs(rewritten, x), outputs(original, x), atol=1e-4)


@pytest.mark.parametrize("op,attrs,c_out", [
    ("ConvTranspose", dict(kernel_shape=[4, 4], strides=[1, 1], pads=[0, 0, 0, 0]), 8),      # DCGAN's 1x1 -> 4x4
    ("ConvTranspose", dict(kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]), 8),
    ("ConvTranspose", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), 8),
    ("ConvTranspose", dict(kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1], group=2), 4),
    ("Conv", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), 8),                                # not thin
    ("Conv", dict(kernel_shape=[3, 3], pads=[0, 0, 0, 0]), 1),                                # not "same"
    ("Conv", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), 1),
])
def test_other_layers_are_left_alone(op, attrs, c_out):
    rng = np.random.default_rng(3)
    groups = attrs.get("group", 1)
    k = attrs["kernel_shape"][0]
    shape = (8, c_out // groups, k, k) if op == "ConvTranspose" else (c_out, 8, k, k)
    model = layer_model(op, rng.standard_normal(shape, dtype=np.float32),
                        rng.standard_normal(c_out, dtype=np.float32), (8, 6, 6), False, **attrs)
    before = model.SerializeToString()
    assert not rewrite_graph(model)
    assert model.SerializeToString() == before


@pytest.fixture
def convtranspose_export(trained_runs, tmp_path):
    """A DCGAN cGAN exported as before the rewrite (ConvTranspose nodes)."""
    from gan_pack.pytorch.export import ExportOptions, export_generator

    path = tmp_path / "dcgan.onnx"
    export_generator(trained_runs[("cgan", "dcgan")], path, ExportOptions(batch_sizes=(1, 7), rewrite="off"))
    return path


def test_optimize_rewrites_in_place_with_proof(convtranspose_export, tmp_path, capsys):
    """In place, parity against the original at 1/7/64/1000, metadata recorded."""
    from gan_pack.core.files import file_sha256
    from gan_pack.runtime.generator import OnnxGenerator

    model = convtranspose_export
    original = tmp_path / "original.onnx"
    original.write_bytes(model.read_bytes())
    code, out, err = run_cli(["optimize", model, "--mode", "on"], capsys)
    assert code == 0, err
    rewritten = OnnxGenerator(model)
    meta = rewritten.info.raw
    assert json.loads(meta["rewrites"])["rewrites"] == {PHASES: 2, TAPS: 1}
    parity = json.loads(meta["parity_vs_original"])
    assert [b["batch"] for b in parity["batches"]] == [1, 7, 64, 1000] and parity["ok"]
    assert meta["rewritten_from_sha256"] == file_sha256(original)
    assert int(meta["activation_bytes"]) > 0
    assert "ConvTranspose" not in {n.op_type for n in onnx.load(str(model)).graph.node}
    labels = list(range(10)) * 2
    np.testing.assert_allclose(rewritten.sample(20, labels=labels, seed=4),
                               OnnxGenerator(original).sample(20, labels=labels, seed=4), atol=1e-4)
    assert "fp32 vs the original fp32 file" in out

    code, out, err = run_cli(["optimize", model], capsys)             # a second time: refused
    one_error_line(code, err, "rewritten already")


def test_optimize_refuses_and_leaves_alone(tmp_path, capsys):
    """The MLP has nothing to rewrite: optimize records its activation size only, once."""
    from gan_pack.runtime.generator import OnnxGenerator

    mlp = tmp_path / "mlp.onnx"
    model = onnx.load(str(shipped("mnist-cgan-mlp.onnx")))
    kept = [p for p in model.metadata_props if p.key != "activation_bytes"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(mlp))
    code, out, err = run_cli(["optimize", mlp], capsys)
    assert code == 0 and "nothing to rewrite" in out and "wrote" in out, out
    assert OnnxGenerator(mlp).info.activation_bytes > 0
    assert onnx.load(str(mlp)).graph == model.graph                  # only the metadata changed
    before = mlp.read_bytes()
    code, out, err = run_cli(["optimize", mlp], capsys)
    assert code == 0 and "nothing written" in out and mlp.read_bytes() == before
    code, out, err = run_cli(["optimize", shipped("mnist-cgan.onnx"), "-o", tmp_path / "x.png"], capsys)
    one_error_line(code, err, ".onnx")
    code, out, err = run_cli(["optimize", shipped("mnist-cgan.onnx"), "--atol", "nan"], capsys)
    one_error_line(code, err)
    code, out, err = run_cli(["optimize", shipped("mnist-cgan.onnx"), "--mode", "off"], capsys)
    assert code == 2 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [mlp]


def test_quantize_turns_transposed_convolutions_into_int8_convolutions(convtranspose_export, tmp_path):
    from gan_pack.onnx_tools.quantize import quantize_generator
    from gan_pack.runtime.generator import OnnxGenerator

    output = tmp_path / "dcgan.int8.onnx"
    quantize_generator(convtranspose_export, output, "static", calibration_n=64)
    ops = {n.op_type for n in onnx.load(str(output)).graph.node}
    assert "ConvTranspose" not in ops and "QuantizeLinear" in ops
    meta = OnnxGenerator(output).info.raw
    assert json.loads(meta["rewrites"]) == {"rewrites": {PHASES: 2}, "kept": True}


@pytest.mark.slow                       # a whole export with parity and timing
def test_export_records_the_rewrite_and_proves_it(trained_runs, tmp_path):
    from gan_pack.pytorch.export import ExportOptions, export_generator
    from gan_pack.runtime.generator import OnnxGenerator

    run = trained_runs[("cgan", "dcgan")]
    for mode in ("on", "off", "auto"):
        path = tmp_path / f"{mode}.onnx"
        report = export_generator(run, path, ExportOptions(batch_sizes=(1, 7), rewrite=mode))[0]
        assert report.ok
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        meta = OnnxGenerator(path).info.raw
        if mode == "off":
            assert "rewrites" not in meta and "ConvTranspose" in ops
            continue
        record = json.loads(meta["rewrites"])
        assert record["rewrites"] == {PHASES: 2, TAPS: 1}
        assert ("ConvTranspose" not in ops) == record["kept"]
        if mode == "auto":                       # measured here, kept only if faster
            rates = record["images_per_s"]
            assert record["kept"] == (rates["rewritten"] > rates["original"]) and record["batch"] == 64


def test_int8_keeps_the_taps_in_float(tmp_path):
    """The shipped MNIST DCGAN has the taps form: quantizing each tap's partial sum to 8 bits lost the
    images of a Fashion-MNIST DCGAN (mean abs 0.39 from fp32); left in float, int8 stays within its
    bound."""
    from gan_pack.onnx_tools.quantize import quantize_generator

    output = tmp_path / "mnist.int8.onnx"
    report = quantize_generator(shipped("mnist-cgan.onnx"), output, "static", calibration_n=128)
    assert report.ok and max(b.mean_abs for b in report.batches) < 0.05
    graph = onnx.load(str(output)).graph
    made_by = {out: n for n in graph.node for out in n.output}
    inits = {i.name for i in graph.initializer}
    taps = [n for n in graph.node if n.name.endswith(("/taps", "/sum"))]
    assert [n.op_type for n in taps] == ["MatMul", "Conv"]
    for node in taps:                          # float weights, not the output of a DequantizeLinear
        assert node.input[1] in inits and node.input[1] not in made_by
    assert "QLinearConv" not in {n.op_type for n in graph.node}          # QDQ form; fused at load
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) >= 3

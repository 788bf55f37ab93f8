"""The CUDA variant, made ONNX to ONNX: the CPU rewrites undone exactly, then fp16 inside with
float32 inputs and output. Checked here on the CPU provider (which runs fp16 graphs too); the CUDA
provider itself is in tests/runtime/test_cuda.py, on a machine that has it."""

import numpy as np
import onnx
import pytest

from conftest import one_error_line, run_cli, shipped
from gan_pack.onnx_tools.cuda import cuda_graph, undo_cpu_rewrites, unphase_weights, untap_weights
from gan_pack.onnx_tools.rewrite import phase_weights, rewrite_graph, tap_weights
from gan_pack.runtime.generator import OnnxGenerator


def test_the_weight_maps_are_undone_bit_for_bit():
    rng = np.random.default_rng(0)
    transposed = rng.standard_normal((8, 5, 4, 4)).astype(np.float32)
    conv = rng.standard_normal((3, 7, 3, 3)).astype(np.float32)
    assert np.array_equal(unphase_weights(phase_weights(transposed)), transposed)
    assert np.array_equal(untap_weights(tap_weights(conv)[0], 3), conv)


def run(path, batch=64):
    g = OnnxGenerator(path)
    noise = g.noise(batch, seed=1)
    return g.generate(noise, g.resolve_labels(batch, None) if g.info.conditional else None)


def test_undoing_the_rewrites_gives_the_original_graph_back(tmp_path):
    """The shipped DCGAN is rewritten for CPUs (phase convolutions, taps); undone, it holds
    ConvTranspose and Conv again, gives the same images, and rewriting it again gives its graph."""
    model = onnx.load(str(shipped("mnist-cgan.onnx")))
    undone = onnx.load(str(shipped("mnist-cgan.onnx")))
    assert undo_cpu_rewrites(undone) == {"convtranspose_phases": 2, "thin_conv_taps": 1}
    ops = [n.op_type for n in undone.graph.node]
    assert ops.count("ConvTranspose") == 2 and "MatMul" not in ops and "Slice" not in ops
    onnx.save(undone, str(tmp_path / "undone.onnx"))
    np.testing.assert_allclose(run(tmp_path / "undone.onnx"), run(shipped("mnist-cgan.onnx")), atol=1e-5)
    again = onnx.load(str(tmp_path / "undone.onnx"))
    rewrite_graph(again)
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for init in again.graph.initializer:
        if init.name.endswith(("/phase_weight", "/tap_weight")):
            assert np.array_equal(onnx.numpy_helper.to_array(init), weights[init.name])


def test_the_cuda_graph_is_fp16_inside_and_float32_outside(tmp_path):
    model = cuda_graph(onnx.load(str(shipped("mnist-cgan.onnx"))))
    floats = {init.data_type for init in model.graph.initializer
              if init.data_type in (1, 10) and not init.name.startswith("clamp/")}
    assert floats == {onnx.TensorProto.FLOAT16}
    assert model.graph.node[-1].op_type == "Clip" and model.graph.node[-1].output[0] == "images"
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert types == {"noise": onnx.TensorProto.FLOAT, "labels": onnx.TensorProto.INT64,
                     "images": onnx.TensorProto.FLOAT}
    onnx.save(model, str(tmp_path / "half.onnx"))
    assert (tmp_path / "half.onnx").stat().st_size < 0.55 * shipped("mnist-cgan.onnx").stat().st_size
    half = run(tmp_path / "half.onnx")
    assert np.abs(half - run(shipped("mnist-cgan.onnx"))).max() <= 2e-2   # fp16's bound, here on the CPU provider
    assert half.min() >= -1 and half.max() <= 1


@pytest.mark.skipif(__import__("gan_pack.runtime.session", fromlist=["x"]).cuda_available(),
                    reason="this machine has CUDA")
def test_a_cuda_variant_is_made_where_cuda_is(tmp_path, capsys):
    code, _, err = run_cli(["pack", shipped("mnist-cgan.onnx"), "-o", tmp_path / "pkg", "--variants", "cuda"], capsys)
    one_error_line(code, err, "the cuda variant is made and proven on onnxruntime's CUDA provider")
    assert not (tmp_path / "pkg").exists()


def test_grouped_convolutions_keep_the_cuda_variant_channels_first():
    """Channels-last speeds up a DCGAN's fp16 convolutions but halves a StyleGAN's depthwise FIR filters."""
    from onnx import TensorProto, helper

    from gan_pack.onnx_tools.cuda import cuda_options_of

    def graph(group: int):
        conv = helper.make_node("Conv", ["x", "w"], ["y"], group=group)
        return helper.make_model(helper.make_graph(
            [conv], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [helper.make_tensor("w", TensorProto.FLOAT, [4, 4 // group, 3, 3], [0.0] * (16 // group) * 9)]))
    assert cuda_options_of(graph(4))["prefer_nhwc"] == "0"
    assert cuda_options_of(graph(1))["prefer_nhwc"] == "1"
    assert cuda_options_of(cuda_graph(onnx.load(str(shipped("mnist-cgan.onnx")))))["prefer_nhwc"] == "1"

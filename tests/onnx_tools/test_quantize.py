import shutil

import numpy as np
import pytest

from conftest import run_cli, shipped

pytest.importorskip("onnx")

from gan_pack.runtime.generator import OnnxGenerator


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    from gan_pack.onnx_tools.quantize import quantize_generator

    output = tmp_path_factory.mktemp("q") / "mlp.int8.onnx"
    quantize_generator(shipped("mnist-cgan-mlp.onnx"), output, "static", calibration_n=128)
    return output


def test_static_int8_keeps_the_contract_and_is_smaller(int8_model):
    source = shipped("mnist-cgan-mlp.onnx")
    g, fp32 = OnnxGenerator(int8_model), OnnxGenerator(source)
    assert g.info.precision == "int8-static" and g.info.parity is None
    assert g.info.num_classes == 10 and g.session.get_inputs()[0].shape[0] == "batch"
    assert int8_model.stat().st_size * 3 < source.stat().st_size
    a, b = g.sample(300, seed=0), fp32.sample(300, seed=0)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.05


def test_parity_vs_fp32_is_recorded(int8_model, capsys):
    code, out, _ = run_cli(["info", int8_model], capsys)
    assert code == 0 and "int8-static vs the fp32 model: batch 1 max abs" in out


def test_auto_mode_picks_by_graph(tmp_path):
    from gan_pack.onnx_tools.quantize import choose_mode

    assert choose_mode(shipped("mnist-cgan-mlp.onnx")) == "dynamic"
    assert choose_mode(shipped("mnist-cgan.onnx")) == "static"


def test_dynamic_mode(tmp_path, capsys):
    code, out, err = run_cli(["quantize", shipped("mnist-cgan-mlp.onnx"), "--mode", "dynamic",
                              "-o", tmp_path / "d.onnx"], capsys)
    assert code == 0, err
    assert OnnxGenerator(tmp_path / "d.onnx").info.precision == "int8-dynamic"


@pytest.mark.parametrize("args,word", [
    (["--mode", "int4"], "--mode"),
    (["-o", "{tmp}/x.bin"], ".onnx"),
    (["--calibration-n", "0"], "--calibration-n"),
])
def test_bad_input(tmp_path, capsys, args, word):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = run_cli(["quantize", shipped("mnist-cgan-mlp.onnx"), *args], capsys)
    assert code == 2 and word in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_int8_cannot_be_quantized_again(int8_model, tmp_path, capsys):
    code, _, err = run_cli(["quantize", int8_model, "-o", tmp_path / "again.onnx"], capsys)
    assert code == 2 and "fp32" in err and not (tmp_path / "again.onnx").exists()


def test_quantizing_over_the_model_itself_reports_both_sizes(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(shipped("mnist-cgan-mlp.onnx"), model)
    before = model.stat().st_size
    code, out, err = run_cli(["quantize", model, "--mode", "dynamic", "-o", model], capsys)
    assert code == 0, err
    assert f"was {before / 1e6:.2f} MB" in out and model.stat().st_size < before / 2


@pytest.mark.slow                       # a calibrated int8 of a shipped model
def test_a_fastgan_quantizes_and_leaves_nothing_in_the_working_folder(tmp_path, monkeypatch, capsys):
    """onnxruntime's symbolic shape inference gives up on a fastgan graph and then saves a file in the
    working folder; the quantizer uses ONNX's shape inference, which sizes it."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["quantize", shipped("fashion-mnist-cgan.onnx"), "-o", tmp_path / "q.onnx"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx"]
    assert OnnxGenerator(tmp_path / "q.onnx").info.precision == "int8-static"

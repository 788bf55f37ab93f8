"""Files we did not write, built to hurt: ONNX models with external data that leaves their folder or
metadata that lies about the graph, damaged checkpoints, and run folders with links and broken logs.
Each is refused in one line (or skipped with a warning), never read, allocated or inlined."""

import base64
import json
import shutil

import numpy as np
import pytest

from conftest import one_error_line, run_cli, shipped
from gan_pack.errors import ModelError
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.onnxscan import external_locations

pytestmark = pytest.mark.onnx           # the hostile models are built with onnx.helper

WEIGHTS = np.arange(16, dtype=np.float32).reshape(4, 4) / 16


def tiny_generator(external: str | None = None, **metadata):
    """A model that follows the contract: noise (batch, 4) -> images (batch, 1, 2, 2); with `external`,
    its weight is stored in that file instead of the model."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(WEIGHTS, "w")
    if external is not None:
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", str(WEIGHTS.nbytes))):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
    shape = numpy_helper.from_array(np.array([-1, 1, 2, 2], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["noise", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
         helper.make_node("Reshape", ["t", "shape"], ["images"])], "g",
        [helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 1, 2, 2])], [weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    meta = {"model": "gan", "noise_dim": "4", "num_classes": "0", "image_shape": "[1, 2, 2]", **metadata}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def save(model, path):
    path.write_bytes(model.SerializeToString())
    return path


# ---------------------------------------------------------------- ONNX external data

@pytest.fixture
def secret(tmp_path):
    (tmp_path / "secret.bin").write_bytes(WEIGHTS.tobytes())        # any readable file of the right size
    (tmp_path / "models").mkdir()
    return tmp_path / "secret.bin"


@pytest.mark.parametrize("location", ["../secret.bin", "SECRET", "sub/../../secret.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, secret, capsys, location):
    location = str(secret) if location == "SECRET" else location
    model = save(tiny_generator(location), tmp_path / "models" / "m.onnx")
    code, _, err = run_cli(["sample", model, "-n", 2, "-o", tmp_path / "o.png"], capsys)
    one_error_line(code, err, "outside the model's folder")
    assert not (tmp_path / "o.png").exists()


def test_external_data_through_a_symlink_is_refused(tmp_path, secret, capsys):
    (tmp_path / "models" / "w.bin").symlink_to(secret)
    model = save(tiny_generator("w.bin"), tmp_path / "models" / "m.onnx")
    code, _, err = run_cli(["info", model], capsys)
    one_error_line(code, err, "outside the model's folder")


def test_external_data_beside_the_model_still_works(tmp_path, secret):
    (tmp_path / "models" / "w.bin").write_bytes(WEIGHTS.tobytes())
    model = save(tiny_generator("w.bin"), tmp_path / "models" / "m.onnx")
    images = OnnxGenerator(model).generate(np.ones((1, 4), np.float32))
    np.testing.assert_allclose(images.reshape(-1), np.tanh(np.ones(4) @ WEIGHTS), rtol=1e-6)


def test_external_data_in_a_subgraph_is_found():
    """An If node's branch may hold its own initializers: they are walked too."""
    from onnx import TensorProto, helper

    inner = tiny_generator("../../etc/passwd").graph
    inner.ClearField("input")
    node = helper.make_node("If", ["cond"], ["images"], then_branch=inner, else_branch=inner)
    graph = helper.make_graph([node], "outer", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, None)])
    assert external_locations(helper.make_model(graph).SerializeToString()) == ["../../etc/passwd"] * 2


def test_truncated_model_is_one_line(tmp_path, capsys):
    data = tiny_generator().SerializeToString()
    model = tmp_path / "cut.onnx"
    model.write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(["info", model], capsys)
    one_error_line(code, err, "not a loadable ONNX model")


# ---------------------------------------------------------------- metadata against the graph

@pytest.mark.parametrize("metadata, words", [
    ({"image_shape": "[1, 100000, 100000]"}, "image_shape"),
    ({"image_shape": "[3, 2, 2]"}, "does not describe this graph"),
    ({"image_shape": "[1, 2]"}, "image_shape"),
    ({"image_shape": '"28"'}, "image_shape"),
    ({"noise_dim": "5"}, "does not describe this graph"),
    ({"noise_dim": "-4"}, "noise_dim"),
    ({"num_classes": "10"}, "missing labels"),
    ({"num_classes": "99999999999"}, "num_classes"),
    ({"class_names": '["a", "b"]'}, "class_names"),
    ({"parity": "{broken"}, "malformed"),
    ({"parity": '{"batches": "x"}'}, "not a parity report"),
    ({"parity": '{"batches": [{"batch": 1}]}'}, "not a parity report"),
    ({"parity_vs_fp32": "[1, 2]"}, "not a parity report"),
    ({"activation_bytes": "0"}, "activation_bytes"),
    ({"activation_bytes": str(1 << 40)}, "activation_bytes"),
    ({"activation_bytes": "lots"}, "malformed"),
])
def test_metadata_that_lies_is_a_model_error(tmp_path, capsys, metadata, words):
    model = save(tiny_generator(**metadata), tmp_path / "m.onnx")
    for command in (["info", model], ["sample", model, "-n", 2, "-o", tmp_path / "o.png"]):
        code, _, err = run_cli(command, capsys)
        one_error_line(code, err, words)


def test_info_escapes_control_characters(tmp_path, capsys):
    model = save(tiny_generator(dataset="\x1b[2J\x1b]0;pwned\x07evil\rtext"), tmp_path / "m.onnx")
    code, out, _ = run_cli(["info", model], capsys)
    assert code == 0 and "evil" in out
    assert not any(c in out for c in "\x1b\x07\r") and "\\x1b" in out


def test_nan_noise_is_refused(tmp_path):
    generator = OnnxGenerator(save(tiny_generator(), tmp_path / "m.onnx"))
    for bad in (np.nan, np.inf):
        noise = np.zeros((3, 4), np.float32)
        noise[1, 2] = bad
        with pytest.raises(ModelError, match="NaN or infinite"):
            generator.generate(noise)


def test_a_run_folder_or_checkpoint_given_as_model(tmp_path, capsys, trained_runs):
    run = trained_runs[("gan", "mlp")]
    for command in (["sample", run], ["info", run]):
        code, _, err = run_cli(command, capsys)
        one_error_line(code, err, "is a training run", f"ganpack export {run} -o NAME.onnx")
    code, _, err = run_cli(["info", run / "checkpoint.pt"], capsys)
    one_error_line(code, err, "is a checkpoint of the training run", f"ganpack export {run} -o NAME.onnx")


def test_a_state_dict_of_ones_own_given_as_model_points_at_module(tmp_path, capsys):
    """A generator.pth outside any run is a user's own state dict: the advice is --module or --from,
    not to export a run it does not belong to."""
    weights = tmp_path / "generator.pth"
    weights.write_bytes(b"PK\x03\x04 not really a zip")
    for command in ("info", "sample"):
        code, _, err = run_cli([command, weights], capsys)
        one_error_line(code, err, "is a PyTorch file", "--module FILE.py:Class", "--from tutorial-cgan")


def test_a_package_folder_is_a_model(capsys):
    """info, sample and evaluate take a package folder as verify and serve do."""
    from conftest import EXPORTED

    code, out, err = run_cli(["info", EXPORTED / "mnist-gan"], capsys)
    assert code == 0 and "mnist-gan.onnx" in out and "noise_dim" in out, err


# ---------------------------------------------------------------- checkpoints

def damaged(tmp_path, trained_runs, change) -> str:
    import torch

    source = trained_runs[("cgan", "mlp")]
    run = tmp_path / "damaged"
    shutil.copytree(source, run)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    change(ckpt)
    torch.save(ckpt, run / "checkpoint.pt")
    return run


def _first_weight(ckpt, value):
    name = next(iter(ckpt["generator_ema"]))
    ckpt["generator_ema"][name] = value(ckpt["generator_ema"][name])


@pytest.mark.parametrize("change, words", [
    (lambda c: c.pop("generator"), "generator is missing"),
    (lambda c: c.update(step="ten"), "step is a str"),
    (lambda c: c.update(generator_ema=[1, 2]), "generator_ema is a list"),
    (lambda c: _first_weight(c, lambda t: t[:-1]), "do not fit"),
    (lambda c: _first_weight(c, lambda t: 3), "not tensors"),
    (lambda c: c["generator_ema"].pop(next(iter(c["generator_ema"]))), "do not fit"),
    (lambda c: c["config"].update(noise_dim="abc"), "noise_dim must be int"),
    (lambda c: c["config"].update(noise_dim=10**9), "--noise-dim must be at most"),
    (lambda c: c["dataset"].pop("image_shape"), "data facts are malformed"),
    (lambda c: c.update(rng={}), "rng lacks"),
])
def test_damaged_checkpoint_is_one_line(tmp_path, capsys, trained_runs, change, words):
    run = damaged(tmp_path, trained_runs, change)
    code, _, err = run_cli(["export", run, "-o", tmp_path / "g.onnx"], capsys)
    one_error_line(code, err, words)
    assert not (tmp_path / "g.onnx").exists()


def _optimizer_lr(ckpt, value):
    ckpt["opt_g"]["param_groups"][0]["lr"] = value


@pytest.mark.parametrize("change, words", [
    (lambda c: c.update(discriminator={k: __import__("torch").zeros(3) for k in c["discriminator"]}),
     "discriminator weights do not fit"),
    (lambda c: _optimizer_lr(c, "fast"), "opt_g optimizer state does not fit"),
    (lambda c: _optimizer_lr(c, [1e-4, 2e-4]), "opt_g optimizer state does not fit"),
])
def test_damaged_checkpoint_on_resume_is_one_line(tmp_path, capsys, trained_runs, tiny_idx, change, words):
    run = damaged(tmp_path, trained_runs, change)
    code, _, err = run_cli(["train", "--resume", "--epochs", 2, "--out", run, "--data-dir", tiny_idx], capsys)
    one_error_line(code, err, words)


# ---------------------------------------------------------------- run folders

def test_report_inlines_only_real_images_inside_the_run(tmp_path, capsys, trained_runs):
    from PIL import Image

    run = tmp_path / "run"
    shutil.copytree(trained_runs[("cgan", "mlp")], run)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(secret)
    (run / "samples" / "epoch_900.png").symlink_to(secret)
    (run / "samples" / "epoch_901.png").write_text("root:x:0:0:not an image")
    code, _, err = run_cli(["report", run, "-o", tmp_path / "r.html"], capsys)
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "left out 2 sample file(s)" in err
    assert base64.b64encode(secret.read_bytes()).decode() not in page and "epoch 900" not in page
    assert "epoch 001" in page                                       # the run's own grid still shows

    shutil.rmtree(run / "samples")
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(secret, tmp_path / "elsewhere" / "epoch_001.png")
    (run / "samples").symlink_to(tmp_path / "elsewhere")             # the whole folder points out
    code, _, err = run_cli(["report", run, "-o", tmp_path / "r2.html"], capsys)
    assert code == 0 and base64.b64encode(secret.read_bytes()).decode() not in (tmp_path / "r2.html").read_text()


def test_one_broken_run_folder_does_not_break_runs_or_report(tmp_path, capsys, trained_runs):
    root = tmp_path / "runs"
    good = root / "good"
    shutil.copytree(trained_runs[("gan", "mlp")], good)
    broken = {"bad-json": "{not json", "bad-list": "[1, 2]", "bad-types": '{"model": [1], "epochs": {}}'}
    for name, text in broken.items():
        (root / name).mkdir()
        (root / name / "config.json").write_text(text)
    messy = root / "messy"
    shutil.copytree(good, messy)
    with open(messy / "metrics.jsonl", "a") as f:
        f.write('[1, 2]\n"text"\n{"step": "seven", "d_loss": 1}\n{"epoch": 1, "eval": true, "fcd": "x"}\n')
    (tmp_path / "notes.onnx").write_text("not a model")
    (messy / "exports.jsonl").write_text(
        '{"path": 5}\n[]\n{"path": "/nonexistent.onnx"}\n' + json.dumps({"path": str(tmp_path / "notes.onnx")}) + "\n")
    code, out, err = run_cli(["runs", root], capsys)
    assert code == 0 and "good" in out and "messy" in out and "bad-types" in out
    assert "skipped" in err and "bad-json" in err and "bad-list" in err and "Traceback" not in err
    code, _, err = run_cli(["report", messy, "-o", tmp_path / "m.html", "--png", tmp_path / "m.png"], capsys)
    assert code == 0 and "skipped 4 unreadable line(s)" in err and "left out the export" in err, err


def test_shipped_models_pass_every_check():
    """The checks refuse nothing real: every shipped generator loads."""
    for name in ("mnist-gan.onnx", "mnist-cgan.onnx", "mnist-cgan-mlp.onnx", "fashion-mnist-cgan.onnx"):
        assert OnnxGenerator(shipped(name)).sample(2, seed=0).shape[0] == 2

"""The torch-free runtime, against shipped models (real exports). Runs without torch installed."""

import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import EXPORTED, ROOT, shipped
from gan_pack.errors import DeviceError, ModelError
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.walk import slerp


@pytest.fixture(scope="module")
def cgan():
    return OnnxGenerator(shipped("mnist-cgan.onnx"))


@pytest.fixture(scope="module")
def gan():
    return OnnxGenerator(shipped("mnist-gan.onnx"))


def test_info_is_typed(cgan, gan):
    assert cgan.info.conditional and cgan.info.num_classes == 10 and cgan.info.noise_dim == 100
    assert cgan.info.image_shape == (1, 28, 28) and cgan.info.parity["ok"]
    assert not gan.info.conditional and gan.info.num_classes == 0


def test_sample_shape_range_and_seed(cgan):
    a = cgan.sample(12, labels=3, seed=5)
    assert a.shape == (12, 1, 28, 28) and a.dtype == np.float32
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert np.array_equal(a, cgan.sample(12, labels=3, seed=5))
    assert not np.array_equal(a, cgan.sample(12, labels=3, seed=6))


def test_first_k_images_do_not_depend_on_n_or_batch_size(cgan):
    small = cgan.sample(5, labels=[1, 2, 3, 4, 5], seed=0, batch_size=2)
    large = cgan.sample(50, labels=[1, 2, 3, 4, 5] * 10, seed=0, batch_size=17)
    assert np.allclose(small, large[:5], atol=1e-6)


def test_generate_matches_sample(cgan):
    noise = cgan.noise(4, seed=9)
    labels = np.array([0, 1, 2, 3])
    assert np.allclose(cgan.generate(noise, labels), cgan.sample(4, labels, seed=9), atol=1e-6)


def test_label_modes(cgan):
    assert list(cgan.resolve_labels(12, None)) == [i % 10 for i in range(12)]
    assert list(cgan.resolve_labels(3, 7)) == [7, 7, 7]
    assert list(cgan.resolve_labels(2, [4, 9])) == [4, 9]


@pytest.mark.parametrize("labels", [10, -1, [0, 11], np.array([3, -2])])
def test_out_of_range_labels_raise_before_onnxruntime(cgan, labels):
    n = 1 if np.ndim(labels) == 0 else len(labels)
    with pytest.raises(ModelError, match="out of range"):
        cgan.sample(n, labels=labels)


def test_label_count_and_unconditional(cgan, gan):
    with pytest.raises(ModelError, match="exactly 3"):
        cgan.sample(3, labels=[1, 2])
    with pytest.raises(ModelError, match="unconditional"):
        gan.sample(3, labels=1)
    assert gan.sample(3, seed=0).shape == (3, 1, 28, 28)


def test_bad_n_and_noise(cgan):
    with pytest.raises(ModelError, match="n must be an integer in 1.."):
        cgan.sample(0)
    with pytest.raises(ModelError, match="noise must have shape"):
        cgan.generate(np.zeros((2, 7), np.float32), [0, 1])


def test_iter_batches_is_bounded(gan):
    sizes = [len(images) for _, images in gan.iter_batches(2500, seed=0, batch_size=1000)]
    assert sizes == [1000, 1000, 500]


def test_threads_share_one_session(cgan):
    expected = cgan.sample(8, labels=2, seed=1)
    results, errors = [], []

    def worker():
        try:
            for _ in range(5):
                results.append(cgan.sample(8, labels=2, seed=1))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    assert all(np.array_equal(r, expected) for r in results)


def test_missing_file_and_not_onnx(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        OnnxGenerator(tmp_path / "nope.onnx")
    (tmp_path / "text.onnx").write_text("not onnx")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OnnxGenerator(tmp_path / "text.onnx")


def foreign_model(path, input_name="x", output_name="y", batch="batch"):
    """A valid ONNX model that is not a gan_pack generator (built with onnx.helper)."""
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 100])
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, 100])
    graph = helper.make_graph([helper.make_node("Identity", [input_name], [output_name])], "g", [inp], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for key, value in {"model": "gan", "noise_dim": "100", "num_classes": "0", "image_shape": "[1, 10, 10]"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.mark.onnx
def test_signature_names_what_is_missing(tmp_path):
    with pytest.raises(ModelError, match="missing noise, images"):
        OnnxGenerator(foreign_model(tmp_path / "m.onnx"))


@pytest.mark.onnx
def test_fixed_batch_is_rejected(tmp_path):
    with pytest.raises(ModelError, match="fixed batch"):
        OnnxGenerator(foreign_model(tmp_path / "m.onnx", "noise", "images", batch=4))


def test_classifier_is_not_a_generator():
    with pytest.raises(ModelError, match="classifier"):
        OnnxGenerator(shipped("mnist-classifier.onnx"))


def test_cuda_fails_clearly_without_cuda_provider():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        OnnxGenerator(shipped("mnist-cgan.onnx"), device="cuda")
    assert OnnxGenerator(shipped("mnist-cgan.onnx"), device="auto").providers == ["CPUExecutionProvider"]


def test_slerp_ends_and_norm():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    walk = slerp(a.astype(np.float32), b.astype(np.float32), 5)
    assert np.allclose(walk[0], a, atol=1e-5) and np.allclose(walk[-1], b, atol=1e-5)
    assert walk.shape == (5, 100)


def test_sample_and_evaluate_never_import_torch(tmp_path):
    from conftest import write_tiny_idx

    model, classifier = shipped("mnist-cgan.onnx"), shipped("mnist-classifier.onnx")
    data = write_tiny_idx(tmp_path / "data")
    commands = [["sample", str(model), "--per-class", "2", "-o", str(tmp_path / "g.png")],
                ["evaluate", str(model), "--classifier", str(classifier), "--data-dir", str(data), "-n", "20"],
                ["verify", str(EXPORTED / "mnist-cgan")]]
    code = (
        "import sys\n"
        "from gan_pack.cli.app import main\n"
        f"for argv in {commands!r}:\n"
        "    sys.argv = ['ganpack', *argv]\n"
        "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, e.code\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "assert not bad, bad\n"
        "print('torch-free')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "torch-free" in result.stdout and "FCD" in result.stdout and (tmp_path / "g.png").is_file()


def test_bound_runs_give_the_plain_runs_images_from_several_threads():
    """The I/O-binding path that CUDA uses for large batches, exercised here on the CPU provider:
    same images as session.run, and safe when threads share the generator."""
    g = OnnxGenerator(shipped("mnist-cgan-mlp.onnx"))
    assert g.binding_device is None                         # CPU provider: plain runs
    expected = g.sample(600, seed=3, batch_size=300)
    g.binding_device = "cpu"
    results = []
    threads = [threading.Thread(target=lambda: results.append(g.sample(600, seed=3, batch_size=300)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(np.array_equal(r, expected) for r in results)


def test_device_outputs_and_dlpack_inputs_with_the_cpu_standing_in():
    """output="device" hands out the bound output through DLPack without a copy, and DLPack inputs
    are read as they are and checked; the CPU provider stands in for a GPU here."""
    from gan_pack.runtime.device import DeviceImages, device_value

    g = OnnxGenerator(shipped("mnist-cgan-mlp.onnx"))
    noise, labels = g.noise(300, seed=5), np.arange(300) % 10
    expected = g.session.run(None, {"noise": noise, "labels": labels})[0]   # the graph's own output, unclipped
    g.binding_device = "cpu"
    images = g.generate(noise, labels, output="device")
    assert isinstance(images, DeviceImages) and images.shape == (300, 1, 28, 28) and len(images) == 300
    np.testing.assert_array_equal(np.from_dlpack(images), expected)
    np.testing.assert_array_equal(images.numpy(), expected)
    value = device_value(noise, "noise", np.float32, (100,))
    assert tuple(value.shape()) == (300, 100)
    with pytest.raises(ModelError, match=r"noise must be tensor\(float\) of shape \(batch, 64\)"):
        device_value(noise, "noise", np.float32, (64,))
    with pytest.raises(ModelError, match="labels must be tensor.int64"):
        device_value(labels.astype(np.int32), "labels", np.int64, ())
    with pytest.raises(ModelError, match="output must be one of numpy, device"):
        g.generate(noise, labels, output="torch")


def test_host_tensors_that_speak_dlpack_are_read_as_numpy():
    torch = pytest.importorskip("torch")
    g = OnnxGenerator(shipped("mnist-cgan-mlp.onnx"))
    noise, labels = g.noise(8, seed=2), np.arange(8) % 10
    from_torch = g.generate(torch.from_numpy(noise), torch.from_numpy(labels))
    np.testing.assert_array_equal(from_torch, g.generate(noise, labels))

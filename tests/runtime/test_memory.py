"""Bounded memory: the batch comes from a memory budget and the graph's activation size, and a
one-file .npy is written batch by batch, never held whole."""

import tracemalloc

import numpy as np
import pytest

from conftest import one_error_line, run_cli, shipped
from gan_pack.core.images import save_npy_batches
from gan_pack.errors import ModelError
from gan_pack.runtime.generator import ARENA_FACTOR, DEFAULT_BATCH_SIZE, FALLBACK_BATCH_SIZE, OnnxGenerator


def test_the_budget_sets_the_batch():
    dcgan, mlp = OnnxGenerator(shipped("mnist-cgan.onnx")), OnnxGenerator(shipped("mnist-cgan-mlp.onnx"))
    per_image = dcgan.info.activation_bytes
    assert per_image > 10 * mlp.info.activation_bytes            # the convolutions' feature maps
    assert dcgan.batch_size < mlp.batch_size
    for budget in (1 << 20, 8 << 20, 64 << 20, 1 << 30):
        batch = OnnxGenerator(shipped("mnist-cgan.onnx"), memory_budget=budget).batch_size
        assert batch & (batch - 1) == 0                               # a power of two
        assert batch == 1 or ARENA_FACTOR * per_image * batch <= budget
        assert batch == DEFAULT_BATCH_SIZE or ARENA_FACTOR * per_image * batch * 2 > budget   # the largest that fits
    assert OnnxGenerator(shipped("mnist-cgan.onnx"), batch_size=300).batch_size == 300      # asked for: as asked
    with pytest.raises(ModelError, match="memory_budget"):
        OnnxGenerator(shipped("mnist-cgan.onnx"), memory_budget=10)


@pytest.mark.onnx
def test_models_without_the_figure_get_the_fallback(tmp_path):
    import onnx

    model = onnx.load(str(shipped("mnist-gan.onnx")))
    kept = [p for p in model.metadata_props if p.key != "activation_bytes"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, str(tmp_path / "old.onnx"))
    assert OnnxGenerator(tmp_path / "old.onnx").batch_size == FALLBACK_BATCH_SIZE


def test_npy_is_streamed_and_equals_the_array(tmp_path, capsys):
    """-o x.npy of 20000 images (60 MiB): Python never holds more than a few batches of it (the
    peak also counts the model file, which is read once to check it)."""
    model = shipped("mnist-cgan-mlp.onnx")
    tracemalloc.start()
    try:
        code, out, err = run_cli(["sample", model, "-n", 20000, "--seed", 3, "-o", tmp_path / "x.npy"], capsys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, err
    images = np.load(tmp_path / "x.npy")
    assert images.shape == (20000, 1, 28, 28) and images.dtype == np.float32
    assert peak < images.nbytes / 4, (peak, images.nbytes)
    g = OnnxGenerator(model, batch_size=1000)
    np.testing.assert_allclose(images[::997], g.sample(20000, seed=3)[::997], atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_a_stream_that_fails_leaves_nothing(tmp_path):
    def batches():
        yield np.zeros((4, 1, 2, 2), np.float32)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_npy_batches(tmp_path / "x.npy", (8, 1, 2, 2), batches())
    with pytest.raises(ValueError, match="4 values written"):       # fewer images than the header says
        save_npy_batches(tmp_path / "x.npy", (2, 1, 2, 2), [np.zeros((1, 1, 2, 2), np.float32)])
    assert list(tmp_path.iterdir()) == []


def test_one_npy_file_keeps_its_size_bound(tmp_path, capsys):
    code, _, err = run_cli(["sample", shipped("mnist-cgan.onnx"), "-n", 10**9, "-o", tmp_path / "x.npy"], capsys)
    one_error_line(code, err, "GiB")
    assert list(tmp_path.iterdir()) == []

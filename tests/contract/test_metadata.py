"""The ONNX contract without torch: metadata build/parse, parity measurement and its report."""

import json

import numpy as np
import pytest

from gan_pack.cli.text import parity_summary
from gan_pack.contract.metadata import ModelInfo, generator_metadata
from gan_pack.contract.parity import DEFAULT_ATOL, measure_parity, parity_path, require_parity
from gan_pack.core.files import file_sha256
from gan_pack.errors import ModelError, ParityError


def metadata(**changes):
    config = {"model": "cgan", "arch": "mlp", "noise_dim": 8}
    dataset = {"name": "mnist", "num_classes": 3, "class_names": ["a", "b", "c"], "image_shape": [1, 4, 4]}
    return {**generator_metadata(config, dataset, 2, 40, "ema", "fp32", 18, "9.9"), **changes}


def test_metadata_built_is_metadata_parsed(tmp_path):
    info = ModelInfo.from_metadata(metadata(), tmp_path / "m.onnx")
    assert (info.model, info.noise_dim, info.num_classes, info.image_shape) == ("cgan", 8, 3, (1, 4, 4))
    assert info.class_names == ["a", "b", "c"] and info.conditional and info.version == "9.9"
    assert json.loads(info.raw["train_config"])["arch"] == "mlp"


@pytest.mark.parametrize("changes,word", [({"gan_pack.kind": "classifier"}, "classifier"),
                                          ({"noise_dim": "eight"}, "malformed")])
def test_bad_metadata_is_a_model_error(tmp_path, changes, word):
    with pytest.raises(ModelError, match=word):
        ModelInfo.from_metadata(metadata(**changes), tmp_path / "m.onnx")


def linear(scale):
    return lambda noise, labels: np.tanh(noise[:, :4] * scale)[:, None, None, :]


def test_parity_passes_within_the_bound_and_checks_rows():
    report = measure_parity(linear(1.0), linear(1.0), 8, 3, 1e-4, "fp32", "itself", (1, 7, 64))
    assert report.ok and [b.batch for b in report.batches] == [1, 7, 64]
    assert report.labels_checked == [0, 1, 2] and report.row_independence_max_abs == 0.0
    assert "bound on max_abs" in report.table()


def test_parity_fails_on_a_difference_and_on_rows_that_mix():
    off = measure_parity(linear(1.01), linear(1.0), 8, 0, 1e-4, "fp32", "ref", (1, 7))
    assert not off.ok and "batch 1" in off.first_failure()
    with pytest.raises(ParityError, match="nothing was written"):
        require_parity(off, "export does not match", parity_path("x.onnx"))

    def mixes(noise, labels):                       # each row depends on the batch mean
        return np.tanh(noise[:, :4] - noise[:, :4].mean(0))[:, None, None, :]
    mixed = measure_parity(mixes, mixes, 8, 0, 1e-4, "fp32", "itself", (1, 64))
    assert all(b.ok for b in mixed.batches) and not mixed.ok
    assert "row independence" in mixed.first_failure()


def test_mean_abs_metric_forgives_a_few_pixels_not_a_broken_model():
    def few_pixels(noise, labels):
        images = linear(1.0)(noise, labels).copy()
        images[:, 0, 0, 0] += 1.0                    # one pixel of four moved by 1: mean 0.25
        return images
    bound = DEFAULT_ATOL["int8"]
    assert not measure_parity(few_pixels, linear(1.0), 8, 0, bound, "int8-static", "fp32", (1, 7),
                              "mean_abs").ok
    quarter = lambda noise, labels: linear(1.0)(noise, labels) + 0.1   # noqa: E731
    report = measure_parity(quarter, linear(1.0), 8, 0, bound, "int8-static", "fp32", (1, 7), "mean_abs")
    assert report.ok and report.batches[0].max_abs == pytest.approx(0.1)
    assert "ok" in parity_summary(report.to_dict())


def test_sha256_of_a_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

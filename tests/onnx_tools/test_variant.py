"""derive: the one pipeline of every derived model file (export, quantize, optimize)."""

import json

import numpy as np
import onnx
import pytest

from conftest import shipped
from gan_pack.errors import ParityError
from gan_pack.onnx_tools.variant import Proof, derive
from gan_pack.runtime.generator import OnnxGenerator


@pytest.fixture(scope="module")
def source():
    path = shipped("mnist-cgan-mlp.onnx")
    return path, OnnxGenerator(path)


def candidate(path):
    model = onnx.load(str(path))
    return model, {p.key: p.value for p in model.metadata_props}


def proof(reference, bound=1e-4, key="parity_vs_source"):
    return Proof(reference, "the source file", "fp32", bound, "the copy does not match", key=key, batches=(1, 7))


def test_a_proven_copy_records_its_report_and_loads(tmp_path, source):
    path, reference = source
    model, meta = candidate(path)
    report = derive(model, meta, tmp_path / "copy.onnx", proof(reference.generate))
    copy = OnnxGenerator(tmp_path / "copy.onnx")
    stored = json.loads(copy.info.raw["parity_vs_source"])
    assert report.ok and stored["ok"] and [b["batch"] for b in stored["batches"]] == [1, 7]
    assert int(copy.info.raw["activation_bytes"]) == reference.info.activation_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.onnx"]


def test_a_failed_proof_leaves_nothing(tmp_path, source):
    path, reference = source
    model, meta = candidate(path)
    shifted = lambda noise, labels: reference.generate(noise, labels) + 0.5  # noqa: E731
    with pytest.raises(ParityError, match="the copy does not match: batch 1"):
        derive(model, meta, tmp_path / "copy.onnx", proof(shifted))
    assert list(tmp_path.iterdir()) == []


def test_allow_mismatch_writes_the_failed_report(tmp_path, source):
    path, reference = source
    model, meta = candidate(path)
    shifted = lambda noise, labels: reference.generate(noise, labels) + 0.5  # noqa: E731
    report = derive(model, meta, tmp_path / "copy.onnx", proof(shifted), allow_mismatch=True)
    stored = json.loads(OnnxGenerator(tmp_path / "copy.onnx").info.raw["parity_vs_source"])
    assert not report.ok and stored["ok"] is False
    assert stored["batches"][0]["max_abs"] == pytest.approx(0.5, abs=1e-3)


def test_a_target_path_is_written_for_the_caller_to_move(tmp_path, source):
    path, _ = source
    model, meta = candidate(path)
    assert derive(model, {**meta, "note": "stamped"}, tmp_path / "final.onnx", None, target=tmp_path / "t.onnx") is None
    assert not (tmp_path / "final.onnx").exists()
    stamped = OnnxGenerator(tmp_path / "t.onnx")
    assert stamped.info.raw["note"] == "stamped"
    np.testing.assert_array_equal(stamped.sample(3, seed=1), OnnxGenerator(path).sample(3, seed=1))

"""The ready-to-sample models in exported/: they load, carry their metadata, and sample every label."""

import json

import numpy as np
import pytest

from conftest import EXPORTED, shipped
from gan_pack.runtime import OnnxGenerator

GENERATORS = {
    "mnist-cgan.onnx": ("cgan", "mnist", 10),
    "mnist-gan.onnx": ("gan", "mnist", 0),
    "mnist-cgan-mlp.onnx": ("cgan", "mnist", 10),
    "fashion-mnist-cgan.onnx": ("cgan", "fashion-mnist", 10),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_shipped_generator(name):
    model, dataset, classes = GENERATORS[name]
    g = OnnxGenerator(shipped(name))
    assert (g.info.model, g.info.dataset, g.info.num_classes) == (model, dataset, classes)
    assert g.info.image_shape == (1, 28, 28) and g.info.parity["ok"] and g.info.weights == "ema"
    labels = np.arange(classes) if classes else None
    images = g.sample(max(classes, 4), labels=labels, seed=0)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1
    evaluation = json.loads((EXPORTED / name.replace(".onnx", ".eval.json")).read_text())
    assert evaluation["n"] == 10000 and evaluation["model_sha256"]


def test_fashion_class_names():
    g = OnnxGenerator(shipped("fashion-mnist-cgan.onnx"))
    assert g.info.class_names[0] == "T-shirt/top" and g.info.class_names[9] == "Ankle boot"


def test_exported_folder_is_small():
    names = [*GENERATORS, "mnist-classifier.onnx", "fashion-mnist-classifier.onnx"]
    total = sum(shipped(name).stat().st_size for name in names)
    assert total < 32e6

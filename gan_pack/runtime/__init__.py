"""Sampling an exported generator with onnxruntime alone (no torch, no onnx): the public API.

    from gan_pack.runtime.generator import OnnxGenerator
    images = OnnxGenerator("exported/mnist-cgan/").sample(16, labels=3, seed=0)
"""

from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.labels import LabelCycle, LabelRequest
from gan_pack.runtime.session import available_providers

__all__ = ["OnnxGenerator", "LabelCycle", "LabelRequest", "available_providers"]

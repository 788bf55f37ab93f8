"""The package folder's format, shared by what writes it (`ganpack pack`) and what reads it
(`ganpack verify`, `serve`, the Node and browser examples): format names, file names, the golden
vectors' encoding and the tolerance each precision is checked to. numpy only.

    NAME/
      NAME.onnx  (+ NAME.cuda.onnx, NAME.fp16.onnx, NAME.int8.onnx)   the generator and its variants
      NAME.json          the manifest (format gan_pack.package/2; /1 is read too)
      NAME.golden.json   golden vectors (format gan_pack.golden/1)
      NAME.parity.json, NAME.png, NAME.eval.json, README.md
      SHA256SUMS
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from gan_pack.contract.parity import DEFAULT_ATOL

PACKAGE_FORMAT, GOLDEN_FORMAT = "gan_pack.package/2", "gan_pack.golden/1"
# An image model's package (an upscaler, a restorer): the same folder, its manifest holding the image
# spec instead of noise and classes, its golden vectors input images and the images each file gives.
IMAGE_PACKAGE_FORMAT, IMAGE_GOLDEN_FORMAT = "gan_pack.image-package/1", "gan_pack.image-golden/1"
# What a reader of this version reads: /1 has no per-provider variants, /2 adds them (a file entry's
# `provider`, and the `speed` and `evaluation` measured when it was made).
PACKAGE_FORMATS = ("gan_pack.package/1", "gan_pack.package/2", IMAGE_PACKAGE_FORMAT)
PROVIDERS = ("cpu", "cuda")
SUMS = "SHA256SUMS"
GOLDEN_COUNT, GOLDEN_SEED = 4, 2024
# How far this machine's images may stray from the packed ones, by precision family (a CPU with other
# vector units, another onnxruntime, the CUDA provider): the metric and its bound.
GOLDEN_TOLERANCE = {"fp32": ("max_abs", 1e-3), "fp16": ("max_abs", DEFAULT_ATOL["fp16"]), "int8": ("mean_abs", 0.05)}
VARIANT_SUFFIXES = (".cuda.onnx", ".fp16.onnx", ".int8.onnx")


def variant_key(name: str, path: str) -> str:
    """What a user calls a model file of the package NAME: main (NAME.onnx), or the part between
    NAME. and .onnx (cuda, fp16, int8)."""
    return "main" if path == f"{name}.onnx" else path.removeprefix(f"{name}.").removesuffix(".onnx")


def family(precision: str) -> str:
    """fp32, fp16 or int8: the precision without its mode (int8-static -> int8)."""
    return precision.split("-")[0]


def encode(array: np.ndarray) -> str:
    """Little-endian float32, base64: how golden vectors store noise and images."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def decode(text: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape)


def main_model(folder: Path) -> Path:
    """The generator of the package folder NAME/: NAME/NAME.onnx."""
    return folder / f"{folder.name}.onnx"


def is_package(folder: Path) -> bool:
    return folder.is_dir() and main_model(folder).is_file()

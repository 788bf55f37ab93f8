"""A generator's graph held to the contract and to its own metadata: the inputs and outputs it must
have, their dtypes, a symbolic batch axis, and shapes that match what the metadata says. onnxruntime's
session only (no onnx package)."""

from __future__ import annotations

import os

from gan_pack.contract.metadata import ModelInfo
from gan_pack.contract.names import IMAGES, LABELS, NOISE, PSI
from gan_pack.errors import ModelError


def check_signature(session, path: os.PathLike, info: ModelInfo) -> None:
    """The graph's inputs and outputs are what the contract and the metadata say."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    expected = [NOISE] + ([LABELS] if info.conditional else [])
    missing = [n for n in expected if n not in inputs] + [n for n in [IMAGES] if n not in outputs]
    extra = [n for n in inputs if n not in expected]
    if missing or extra:
        raise ModelError(f"{path} does not follow the gan_pack contract: "
                         + (f"missing {', '.join(missing)}" if missing else "")
                         + ("; " if missing and extra else "")
                         + (f"unexpected inputs {', '.join(extra)}" if extra else ""))
    for value in list(inputs.values()) + list(outputs.values()):
        if not value.shape or not isinstance(value.shape[0], str):
            raise ModelError(f"{path}: {value.name!r} has a fixed batch axis {value.shape}; "
                             f"re-export it with `ganpack export`")
    noise, images = inputs[NOISE], outputs[IMAGES]
    if len(noise.shape) != 2 or noise.shape[1] != info.noise_dim or noise.type != "tensor(float)":
        raise ModelError(f"{path}: the noise input is {noise.type} {noise.shape} but the metadata says "
                         f"float (batch, {info.noise_dim}); the metadata does not describe this graph")
    if info.conditional and (len(inputs[LABELS].shape) != 1 or inputs[LABELS].type != "tensor(int64)"):
        raise ModelError(f"{path}: the labels input is {inputs[LABELS].type} {inputs[LABELS].shape}, "
                         f"not int64 (batch,)")
    defaults = {i.name: i for i in session.get_overridable_initializers()} if info.psi_input else {}
    if info.psi_input and (PSI not in defaults or defaults[PSI].type != "tensor(float)"):
        raise ModelError(f"{path}: the metadata says it takes psi, but the graph has no float psi input with a "
                         f"default; re-export it")
    fixed = [d if isinstance(d, int) else None for d in images.shape[1:]]
    if len(images.shape) != 4 or any(d is not None and d != want for d, want in zip(fixed, info.image_shape)):
        raise ModelError(f"{path}: the images output is {images.shape} but the metadata says image_shape "
                         f"{list(info.image_shape)}; the metadata does not describe this graph")

"""A generator's graph held to its spec (contract/spec.py): every input and output the spec lists, no
other input, each of its dtype, with a symbolic batch axis and the fixed sizes the spec says; an optional
input (psi) is an initializer a feed may override, so its default lives in the graph.
onnxruntime's session only (no onnx package)."""

from __future__ import annotations

import os

from gan_pack.contract.metadata import ModelInfo
from gan_pack.contract.spec import ONNX_TYPES, TensorSpec
from gan_pack.errors import ModelError


def check_signature(session, path: os.PathLike, info: ModelInfo) -> None:
    """The graph's inputs and outputs are what the metadata's spec says."""
    spec = info.spec
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    defaults = {i.name: i for i in session.get_overridable_initializers()}
    required = [t for t in spec.inputs() if not t.optional]
    missing = [t.name for t in required if t.name not in inputs] + [t.name for t in spec.outputs()
                                                                  if t.name not in outputs]
    extra = [n for n in inputs if n not in {t.name for t in required}]
    if missing or extra:
        raise ModelError(f"{path} does not follow the gan_pack contract: "
                         + (f"missing {', '.join(missing)}" if missing else "")
                         + ("; " if missing and extra else "")
                         + (f"unexpected inputs {', '.join(extra)}" if extra else ""))
    for tensor in spec.inputs():
        if tensor.optional:
            found = defaults.get(tensor.name)
            if found is None or found.type != ONNX_TYPES[tensor.dtype]:
                raise ModelError(f"{path}: the metadata says it takes {tensor.name}, but the graph has no "
                                 f"{tensor.dtype} {tensor.name} input with a default; re-export it")
        else:
            _check(path, inputs[tensor.name], tensor)
    for tensor in spec.outputs():
        _check(path, outputs[tensor.name], tensor)


def _check(path: os.PathLike, value, tensor: TensorSpec) -> None:
    """One graph value against its TensorSpec: a symbolic batch axis, the dtype, the rank and fixed sizes."""
    if not value.shape or not isinstance(value.shape[0], str):
        raise ModelError(f"{path}: {value.name!r} has a fixed batch axis {value.shape}; re-export it with "
                         f"`ganpack export`")
    want = ", ".join(["batch", *map(str, tensor.shape[1:])])
    fixed = [d if isinstance(d, int) else None for d in value.shape[1:]]
    if (value.type != ONNX_TYPES[tensor.dtype] or len(value.shape) != len(tensor.shape)
            or any(d is not None and d != w for d, w in zip(fixed, tensor.shape[1:]))):
        raise ModelError(f"{path}: the {tensor.name} {'output' if tensor.name == 'images' else 'input'} is "
                         f"{value.type} {value.shape} but the metadata says {tensor.dtype} ({want}); the metadata "
                         f"does not describe this graph")

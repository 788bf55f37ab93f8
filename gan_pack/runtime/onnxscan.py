"""What an .onnx file points at outside itself, read from the protobuf wire format (no onnx package).

A tensor may keep its bytes in an external file named by its `location`. onnxruntime opens that
file relative to the model, and older versions follow `../..` or an absolute path, so a crafted
model could read any file as weights. `check_external_data` refuses, before onnxruntime sees the
model, every location that is absolute, leaves the model's folder (also through a symlink) or is
not a regular file.
"""

from __future__ import annotations

import os
from pathlib import Path

from gan_pack.errors import ModelError

# The message fields that can hold tensors, by message: field number -> the message it holds.
# (onnx.proto: ModelProto, GraphProto, NodeProto, AttributeProto, FunctionProto, SparseTensorProto,
# TrainingInfoProto, TensorProto.)
MODEL, GRAPH, NODE, ATTRIBUTE, FUNCTION, SPARSE, TRAINING, TENSOR, ENTRY = range(9)
SCHEMA = {
    MODEL: {7: GRAPH, 20: TRAINING, 25: FUNCTION},
    TRAINING: {1: GRAPH, 2: GRAPH},
    GRAPH: {1: NODE, 5: TENSOR, 15: SPARSE},
    NODE: {5: ATTRIBUTE},
    FUNCTION: {7: NODE},
    ATTRIBUTE: {5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH, 22: SPARSE, 23: SPARSE},
    SPARSE: {1: TENSOR, 2: TENSOR},
    TENSOR: {13: ENTRY},
}
TENSOR_DATA_LOCATION, EXTERNAL = 14, 1
MAX_DEPTH = 64


class WireError(ValueError):
    pass


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise WireError("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(buf: memoryview):
    """(field number, wire type, int value or bytes view) of one message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, wire, value
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise WireError("field runs past the end")
            yield number, wire, buf[i:i + size]
            i += size
        else:
            raise WireError(f"wire type {wire}")
    if i != len(buf):
        raise WireError("truncated field")


def _entry(buf: memoryview) -> tuple[str, str]:
    key = value = ""
    for number, wire, data in _fields(buf):
        if wire == 2 and number in (1, 2):
            text = bytes(data).decode("utf-8", "replace")
            key, value = (text, value) if number == 1 else (key, text)
    return key, value


def _walk(buf: memoryview, kind: int, depth: int, found: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise WireError("graphs nested too deep")
    external, locations = False, []
    for number, wire, data in _fields(buf):
        if kind == TENSOR and number == TENSOR_DATA_LOCATION and wire == 0:
            external = data == EXTERNAL
        child = SCHEMA.get(kind, {}).get(number)
        if child is None or wire != 2:
            continue
        if child == ENTRY:
            key, value = _entry(data)
            if key == "location":
                locations.append(value)
        else:
            _walk(data, child, depth + 1, found)
    if kind == TENSOR and (external or locations):
        found.extend(locations or [""])


METADATA_PROPS = 14                 # ModelProto.metadata_props


def metadata_props(model_bytes: bytes) -> dict[str, str]:
    """The model's metadata_props, read from the wire format (no onnx, no session)."""
    return dict(_entry(data) for number, wire, data in _fields(memoryview(model_bytes))
                if number == METADATA_PROPS and wire == 2)


def model_metadata(path: str | os.PathLike) -> dict[str, str]:
    """metadata_props of a model file; {} for one that cannot be read (its session says why)."""
    try:
        return metadata_props(Path(path).read_bytes())
    except (OSError, WireError):
        return {}


def external_locations(model_bytes: bytes) -> list[str]:
    """The `location` of every tensor stored outside the model ("" for one that names none)."""
    found: list[str] = []
    _walk(memoryview(model_bytes), MODEL, 0, found)
    return found


def check_external_data(path: str | os.PathLike) -> None:
    """Refuse a model whose external data is absolute, leaves its folder, or is not a regular file."""
    path = Path(path)
    try:
        locations = external_locations(path.read_bytes())
    except WireError as e:
        raise ModelError(f"{path} is not a loadable ONNX model (malformed protobuf: {e}); give an exported "
                         f".onnx model") from e
    except OSError as e:
        raise ModelError(f"cannot read {path} ({e.strerror})") from e
    folder = path.resolve().parent
    for location in locations:
        target = (folder / location).resolve()
        if (not location or os.path.isabs(location) or ".." in Path(location).parts
                or not target.is_relative_to(folder)):
            raise ModelError(f"{path} reads tensor data from {location!r}, outside the model's folder; "
                             f"refused (external data must lie beside the model)")
        if not target.is_file():
            raise ModelError(f"{path} reads tensor data from {location!r}, which is not a file beside the "
                             f"model; copy the model with its data files")

"""The Open Inference Protocol (KServe v2 REST, Triton's HTTP API) as gan_pack speaks it: model
metadata, inference requests (JSON tensors or the binary tensor data extension) parsed and checked
into the generator's feeds, and replies encoded, with no web framework involved. numpy only.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np

from gan_pack.contract.names import IMAGES, LABELS, NOISE
from gan_pack.errors import GanPackError, ModelError
from gan_pack.runtime.generator import OnnxGenerator

DTYPES = {"FP32": np.float32, "INT64": np.int64}
HEADER = "Inference-Header-Content-Length"


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status



def model_metadata(name: str, g: OnnxGenerator) -> dict:
    inputs = [{"name": NOISE, "datatype": "FP32", "shape": [-1, g.info.noise_dim]}]
    if g.info.conditional:
        inputs.append({"name": LABELS, "datatype": "INT64", "shape": [-1]})
    return {"name": name, "versions": ["1"], "platform": "onnxruntime_onnx", "inputs": inputs,
            "outputs": [{"name": IMAGES, "datatype": "FP32", "shape": [-1, *g.info.image_shape]}],
            "parameters": {"num_classes": g.info.num_classes, "class_names": g.info.class_names,
                           "dataset": g.info.dataset, "output_range": [-1, 1]}}


def _tensor(entry: dict, binary: memoryview, offset: int, g: OnnxGenerator, limit: int) -> tuple[str, np.ndarray, int]:
    """(name, array, the offset after its binary data) of one entry of a request's `inputs`."""
    name, shape, datatype = entry["name"], [int(d) for d in entry["shape"]], entry["datatype"]
    expected = {NOISE: "FP32", LABELS: "INT64"}.get(name)
    if expected is None or (name == LABELS and not g.info.conditional):
        raise HTTPError(400, f"unexpected input {name!r}: this model takes "
                             f"{', '.join(i['name'] for i in model_metadata('', g)['inputs'])}")
    if datatype != expected:
        raise HTTPError(400, f"input {name!r} must be {expected}, not {datatype}")
    if shape and shape[0] > limit:
        raise HTTPError(413, f"{shape[0]} images in one request; at most {limit} (--max-images-per-request)")
    parameters = entry.get("parameters") or {}
    if "binary_data_size" in parameters:
        nbytes = int(parameters["binary_data_size"])
        array = np.frombuffer(binary[offset:offset + nbytes], dtype=DTYPES[datatype])
        offset += nbytes
    else:
        array = np.asarray(entry["data"], dtype=DTYPES[datatype]).reshape(-1)
    if array.size != math.prod(shape):
        raise HTTPError(400, f"input {name!r} has {array.size} values for shape {shape}")
    return name, array.reshape(shape), offset


def parse_infer(body: bytes, header_length: str | None, g: OnnxGenerator, limit: int) -> tuple[dict, dict, int]:
    """(request JSON, checked feeds, image count) of an infer request; HTTPError 400/413 otherwise."""
    try:
        size = int(header_length) if header_length is not None else len(body)
        request = json.loads(body[:size])
        binary = memoryview(body)[size:]
        tensors, offset = {}, 0
        for entry in request["inputs"]:
            name, tensors[name], offset = _tensor(entry, binary, offset, g, limit)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise HTTPError(400, f"malformed inference request ({type(e).__name__}: {str(e)[:160]})") from e
    if NOISE not in tensors:
        raise HTTPError(400, "the request lacks the input 'noise'")
    try:
        feeds = g.check_inputs(tensors[NOISE], tensors.get(LABELS))
    except ModelError as e:
        raise HTTPError(400, str(e)) from e
    return request, feeds, len(feeds[NOISE])


def infer_response(name: str, request: dict, images: np.ndarray) -> tuple[bytes, dict]:
    """(body, headers): JSON, or a JSON header then raw bytes when the client asked for binary data."""
    wanted = request.get("outputs") or [{"name": IMAGES}]
    binary = bool((request.get("parameters") or {}).get("binary_data_output")) or any(
        (o.get("parameters") or {}).get("binary_data") for o in wanted)
    output: dict = {"name": IMAGES, "datatype": "FP32", "shape": list(images.shape)}
    reply = {"model_name": name, "model_version": "1", "outputs": [output]}
    if "id" in request:
        reply["id"] = request["id"]
    if not binary:
        output["data"] = images.reshape(-1).tolist()
        return json.dumps(reply).encode(), {"content-type": "application/json"}
    raw = np.ascontiguousarray(images, dtype="<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    head = json.dumps(reply).encode()
    return head + raw, {"content-type": "application/octet-stream", HEADER: str(len(head))}


@dataclass(frozen=True)
class SampleQuery:
    """GET /v1/models/NAME/sample.{png,npy}?n=16&seed=1&label=3&truncation=0.7, checked."""

    n: int
    seed: int
    label: int | None
    truncation: float | None

    @classmethod
    def parse(cls, query, limit: int) -> "SampleQuery":
        try:
            n = int(query.get("n", 16))
            seed = int(query.get("seed", 0))
            label = int(query["label"]) if "label" in query else None
            truncation = float(query["truncation"]) if "truncation" in query else None
        except ValueError as e:
            raise HTTPError(400, f"n, seed and label are integers and truncation a number ({e})") from e
        if not 1 <= n <= limit:
            raise HTTPError(413 if n > 0 else 400, f"n must be in 1..{limit}, not {n}")
        return cls(n, seed, label, truncation)

    def feeds(self, g: OnnxGenerator) -> dict[str, np.ndarray]:
        """The generator's checked feeds: the portable noise of (seed, 0..n-1), the label or every class."""
        try:
            labels = g.resolve_labels(self.n, self.label) if g.info.conditional else None
            return g.check_inputs(g.noise(self.n, self.seed, truncation=self.truncation), labels)
        except GanPackError as e:
            raise HTTPError(400, str(e)) from e


def sample_body(images: np.ndarray, fmt: str, grid_rows: int | None) -> tuple[bytes, str]:
    """(body, media type) of a sample reply: a PNG grid, or the array as .npy."""
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, images)
        return buffer.getvalue(), "application/octet-stream"
    from gan_pack.core.images import make_grid, png_bytes

    return png_bytes(make_grid(images, grid_rows)), "image/png"

"""The Open Inference Protocol (KServe v2 REST, Triton's HTTP API) as gan_pack speaks it: model
metadata, inference requests (JSON tensors or the binary tensor data extension) parsed and checked
into the generator's feeds, and replies encoded, with no web framework involved. numpy only.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from gan_pack.contract.names import IMAGES, LABELS, NOISE, PSI
from gan_pack.contract.spec import OIP_TYPES, GeneratorSpec
from gan_pack.errors import GanPackError, ModelError
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.image_model import ImageModel

DTYPES = {"FP32": np.float32, "INT64": np.int64}
HEADER = "Inference-Header-Content-Length"
MAX_DIMENSION = 1 << 24                 # one axis of an input's shape
# A JSON reply writes each float32 as text: at most 25 bytes ("-1.2345678901234567e-05, "), about six
# times its binary size. Larger replies are refused before the model runs: binary data says the same.
JSON_VALUE_BYTES = 25
MAX_JSON_REPLY_BYTES = 32 << 20
JSON_CHUNK_VALUES = 1 << 13             # values encoded at a time (other threads run in between)
# Python's JSON parser holds the interpreter's lock until it is done (about 16 ms a MiB here), so the
# JSON part of a request is bounded to keep the server answering meanwhile; tensors beyond it travel
# as binary data.
MAX_JSON_REQUEST_BYTES = 2 << 20


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status



def spec_metadata(name: str, spec: GeneratorSpec) -> dict:
    """The Open Inference Protocol's model metadata of a spec: its inputs and outputs are the spec's
    tensors (psi, where the model takes it, an optional input: absent, 1)."""
    return {"name": name, "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [t.oip() for t in spec.inputs()], "outputs": [t.oip() for t in spec.outputs()]}


def model_metadata(name: str, g: OnnxGenerator) -> dict:
    return {**spec_metadata(name, g.info.spec),
            "parameters": {"num_classes": g.info.num_classes, "class_names": g.info.class_names,
                           "dataset": g.info.dataset, "output_range": [-1, 1], "psi_input": g.info.psi_input,
                           "truncation": g.info.truncation}}     # the package's default, for a client's own noise


@dataclass(frozen=True)
class InferRequest:
    """A checked inference request: the generator's feeds and what the reply must carry."""

    feeds: dict[str, np.ndarray]
    count: int
    id: str | None = None
    binary_output: bool = False


def _object(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HTTPError(400, f"{what} must be an object")
    return value


def _shape(entry: dict, name: str, limit: int) -> list[int]:
    shape = entry.get("shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIMENSION for d in shape):
        raise HTTPError(400, f"input {name!r}: shape must be a list of 1 to 4 sizes of at most {MAX_DIMENSION}, "
                             f"not {str(shape)[:60]}")
    if shape[0] > limit:
        raise HTTPError(413, f"{shape[0]} images in one request; at most {limit} (--max-images-per-request)")
    if shape[0] < 1:
        raise HTTPError(400, f"input {name!r}: ask for at least one image")
    return shape


def _values(entry: dict, name: str, datatype: str, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """The tensor's values, flat, and the offset after its binary data; JSON numbers of the wrong
    kind (floats or booleans as labels, strings anywhere) are refused, not converted."""
    parameters = _object(entry.get("parameters"), f"input {name!r}: parameters")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(binary) - offset:
            raise HTTPError(400, f"input {name!r}: binary_data_size must be a byte count within the body")
        return np.frombuffer(binary[offset:offset + size], dtype=DTYPES[datatype]), offset + size
    try:
        array = np.asarray(entry.get("data"))
    except (ValueError, OverflowError) as e:
        raise HTTPError(400, f"input {name!r}: data is not a (nested) list of numbers ({str(e)[:80]})") from e
    kinds = "iu" if datatype == "INT64" else "iuf"
    if array.dtype.kind not in kinds or array.ndim == 0:
        what = "integers" if datatype == "INT64" else "numbers"
        raise HTTPError(400, f"input {name!r}: data must be a list of {what}")
    if datatype == "INT64" and array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise HTTPError(400, f"input {name!r}: a label is out of range")
    return array.astype(DTYPES[datatype]).reshape(-1), offset


def _tensor(entry, binary: memoryview, offset: int, g: OnnxGenerator | ImageModel,
            limit: int) -> tuple[str, np.ndarray, int]:
    """(name, array, the offset after its binary data) of one entry of a request's `inputs`."""
    if not isinstance(entry, dict):
        raise HTTPError(400, "each input must be an object with name, datatype, shape and data")
    name, datatype = entry.get("name"), entry.get("datatype")
    tensors = {t.name: t for t in g.info.spec.inputs()}
    if not isinstance(name, str) or name not in tensors:
        raise HTTPError(400, f"unexpected input {str(name)[:40]!r}: this model takes {', '.join(tensors)}")
    name = str(name)
    expected = OIP_TYPES[tensors[name].dtype]
    if datatype != expected:
        raise HTTPError(400, f"input {name!r} must be {expected}, not {str(datatype)[:20]}")
    shape = _shape(entry, name, limit)
    array, offset = _values(entry, name, expected, binary, offset)
    if array.size != math.prod(shape):
        raise HTTPError(400, f"input {name!r} has {array.size} values for shape {shape}")
    return name, array.reshape(shape), offset


def _binary_output(request: dict) -> bool:
    outputs = request.get("outputs")
    if outputs is not None and (not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs)):
        raise HTTPError(400, "outputs must be a list of objects like {\"name\": \"images\"}")
    wanted = outputs or [{"name": IMAGES}]
    if any(o.get("name") != IMAGES for o in wanted):
        raise HTTPError(400, "this model has one output, images")
    return bool(_object(request.get("parameters"), "parameters").get("binary_data_output")) or any(
        bool(_object(o.get("parameters"), "an output's parameters").get("binary_data")) for o in wanted)


def request_psi(request: dict) -> float | None:
    """A StyleGAN's truncation psi, from the request's parameters ({"parameters": {"psi": 0.7}})."""
    psi = _object(request.get("parameters"), "parameters").get("psi")
    if psi is not None and (isinstance(psi, bool) or not isinstance(psi, (int, float))):
        raise HTTPError(400, "parameters.psi must be a number (the truncation of StyleGAN-family models)")
    return psi


def request_json(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    """(the JSON object, the binary data after it) of an infer call's body; HTTPError 400/413 otherwise."""
    try:
        size = int(header_length) if header_length is not None else len(body)
        if not 0 <= size <= len(body):
            raise ValueError(f"{HEADER} {size} is not within the body")
    except ValueError as e:
        raise HTTPError(400, f"malformed inference request ({type(e).__name__}: {str(e)[:160]})") from e
    if size > MAX_JSON_REQUEST_BYTES:
        raise HTTPError(413, f"the request's JSON is {size:,} bytes, over the {MAX_JSON_REQUEST_BYTES >> 20} MiB this "
                             f"server parses; send large tensors as binary data (the binary tensor data extension, "
                             f"what tritonclient sends), or GET /v1/models/NAME/sample.npy for seeded images")
    try:
        request = json.loads(body[:size])
    except RecursionError:
        raise HTTPError(400, "malformed inference request (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"malformed inference request ({type(e).__name__}: {str(e)[:160]})") from e
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise HTTPError(400, "malformed inference request: an object with a list of inputs is needed")
    return request, memoryview(body)[size:]


def parse_infer(body: bytes, header_length: str | None, g: OnnxGenerator, limit: int) -> InferRequest:
    """The checked request of an infer call; HTTPError 400/413 for anything else."""
    request, binary = request_json(body, header_length)
    tensors, offset = {}, 0
    for entry in request["inputs"]:
        name, array, offset = _tensor(entry, binary, offset, g, limit)
        if name in tensors:
            raise HTTPError(400, f"input {name!r} is given twice")
        tensors[name] = array
    if NOISE not in tensors:
        raise HTTPError(400, "the request lacks the input 'noise'")
    psi: float | np.ndarray | None = request_psi(request)
    if PSI in tensors:
        if psi is not None:
            raise HTTPError(400, "psi is given twice, as an input and as a parameter; give one")
        psi = tensors[PSI].reshape(-1)
    try:
        feeds = g.check_inputs(tensors[NOISE], tensors.get(LABELS), psi)
    except ModelError as e:
        raise HTTPError(400, str(e)) from e
    request_id = request.get("id")
    binary_output = _binary_output(request)
    if not binary_output:
        check_json_reply(len(feeds[NOISE]), g)
    return InferRequest(feeds, len(feeds[NOISE]), request_id if isinstance(request_id, str) else None,
                        binary_output)


def check_json_reply(count: int, g: OnnxGenerator) -> None:
    """A reply of `count` images as JSON text fits MAX_JSON_REPLY_BYTES, or the request is refused (413)
    before anything runs, saying how to ask for the same images in binary."""
    values = count * math.prod(g.info.image_shape)
    if values * JSON_VALUE_BYTES > MAX_JSON_REPLY_BYTES:
        fits = max(1, MAX_JSON_REPLY_BYTES // (JSON_VALUE_BYTES * math.prod(g.info.image_shape)))
        raise HTTPError(413, f"{count} images as JSON would be up to {values * JSON_VALUE_BYTES / 2**20:,.0f} MiB of "
                             f"text, over the {MAX_JSON_REPLY_BYTES >> 20} MiB this server writes as JSON (at most "
                             f"{fits} of these images); ask for binary data, the binary tensor data extension "
                             f"(\"parameters\": {{\"binary_data_output\": true}}, what tritonclient does), or "
                             f"GET /v1/models/NAME/sample.npy for seeded images")


def infer_response(name: str, request: InferRequest, parts: list[np.ndarray]) -> tuple[Iterator[bytes], dict, int]:
    """(body chunks, headers, body length) of the reply carrying the images of `parts` (the calls'
    outputs, in order): JSON, or a JSON header then raw bytes when the client asked for binary data.
    Binary chunks are made as they are sent, a part at a time; JSON is encoded here, a chunk at a time."""
    count = sum(len(part) for part in parts)
    output: dict = {"name": IMAGES, "datatype": "FP32", "shape": [count, *parts[0].shape[1:]]}
    reply: dict = {"model_name": name, "model_version": "1", "outputs": [output]}
    if request.id is not None:
        reply["id"] = request.id
    if not request.binary_output:
        output["data"] = None
        before, after = json.dumps(reply).encode().split(b'"data": null', 1)
        chunks = [before, b'"data": [', *json_numbers(parts), b"]", after]
        return iter(chunks), {"content-type": "application/json"}, sum(map(len, chunks))
    size = sum(part.size for part in parts) * 4
    output["parameters"] = {"binary_data_size": size}
    head = json.dumps(reply).encode()
    raw = (np.ascontiguousarray(part, dtype="<f4").tobytes() for part in parts)
    return itertools.chain([head], raw), {"content-type": "application/octet-stream", HEADER: str(len(head))}, \
        len(head) + size


def json_numbers(parts: list[np.ndarray]) -> Iterator[bytes]:
    """The images' values as the body of a JSON list, a chunk at a time: no list of every value as
    Python floats, and the lock that other threads (the event loop) need is let go between chunks."""
    first = True
    for part in parts:
        flat = part.reshape(-1)
        for start in range(0, len(flat), JSON_CHUNK_VALUES):
            text = json.dumps(flat[start:start + JSON_CHUNK_VALUES].tolist()).encode()[1:-1]
            yield text if first else b", " + text
            first = False


@dataclass(frozen=True)
class SampleQuery:
    """GET /v1/models/NAME/sample.{png,npy}?n=16&seed=1&label=3&truncation=0.7 (&psi=0.7 for a
    StyleGAN), checked."""

    n: int
    seed: int
    label: int | None
    truncation: float | None
    psi: float | None = None

    @classmethod
    def parse(cls, query, limit: int) -> "SampleQuery":
        try:
            n = int(query.get("n", 16))
            seed = int(query.get("seed", 0))
            label = int(query["label"]) if "label" in query else None
            truncation = float(query["truncation"]) if "truncation" in query else None
            psi = float(query["psi"]) if "psi" in query else None
        except ValueError as e:
            raise HTTPError(400, f"n, seed and label are integers, truncation and psi numbers ({e})") from e
        if not 1 <= n <= limit:
            raise HTTPError(413 if n > 0 else 400, f"n must be in 1..{limit}, not {n}")
        return cls(n, seed, label, truncation, psi)

    def feeds(self, g: OnnxGenerator) -> dict[str, np.ndarray]:
        """The generator's checked feeds: the portable noise of (seed, 0..n-1), the label or every class."""
        if self.label is not None and not g.info.conditional:
            raise HTTPError(400, "this model is unconditional (num_classes 0): drop label")
        try:
            labels = g.resolve_labels(self.n, self.label) if g.info.conditional else None
            return g.check_inputs(g.noise(self.n, self.seed, truncation=self.truncation), labels, self.psi)
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

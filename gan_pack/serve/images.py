"""`ganpack serve` for image models (upscalers, restorers): their Open Inference Protocol metadata and
infer requests (an `image` tensor in, `images` out, padded to the model's size rules and cropped back),
and POST /v1/models/NAME/apply, which takes PNG/JPEG/WebP bytes and answers a PNG, tiled on the server
and encoded band by band so its memory stays bounded whatever the image. numpy only.
"""

from __future__ import annotations

import asyncio
import math
from typing import Iterator

import numpy as np

from gan_pack.contract.names import IMAGE
from gan_pack.core.image_files import ImageFileError, png_stream, read_image
from gan_pack.errors import ConfigError
from gan_pack.runtime.image_model import ImageModel, pad_to
from gan_pack.serve.protocol import (
    HTTPError,
    InferRequest,
    _binary_output,
    _tensor,
    infer_response,
    request_json,
    spec_metadata,
)

MAX_INFER_PIXELS = 1 << 22          # input pixels of one infer request (e.g. 4 images of 1024x1024): untiled
MAX_APPLY_PIXELS = 1 << 24          # input pixels of one apply request (4096x4096): tiled


def image_model_metadata(name: str, model: ImageModel) -> dict:
    spec = model.spec
    return {**spec_metadata(name, spec),  # type: ignore[arg-type]
            "parameters": {"kind": "image-model", "architecture": spec.arch, "scale": spec.scale,
                           "size_rule": spec.size_rule(), "tiling": spec.tiling,
                           "apply": f"/v1/models/{name}/apply"}}


def parse_image_infer(body: bytes, header_length: str | None, model: ImageModel, limit: int) -> tuple:
    """(image (B, C, H, W) float32, id, binary_output) of an infer call; HTTPError 400/413 otherwise."""
    request, binary = request_json(body, header_length)
    if len(request["inputs"]) != 1:
        raise HTTPError(400, f"malformed inference request: one input, {IMAGE!r}, is needed")
    _, array, _ = _tensor(request["inputs"][0], binary, 0, model, limit)
    spec = model.spec
    if array.ndim != 4 or array.shape[1] != spec.in_channels or min(array.shape[2:]) < 1:
        raise HTTPError(400, f"input {IMAGE!r} must be [batch, {spec.in_channels}, height, width], not "
                             f"{list(array.shape)}")
    if math.prod(array.shape[:1] + array.shape[2:]) > MAX_INFER_PIXELS:
        raise HTTPError(413, f"{list(array.shape)} is over the {MAX_INFER_PIXELS:,} pixels one infer request may "
                             f"have; send PNG bytes to /v1/models/NAME/apply, which tiles")
    if spec.fixed and max(array.shape[2:]) > spec.fixed:
        raise HTTPError(400, f"{spec.arch} takes images of at most {spec.fixed}x{spec.fixed}")
    if not np.isfinite(array).all():
        raise HTTPError(400, f"input {IMAGE!r} holds NaN or infinite values")
    request_id = request.get("id")
    return np.clip(array, 0.0, 1.0), request_id if isinstance(request_id, str) else None, _binary_output(request)


def run_padded(model: ImageModel, image: np.ndarray) -> np.ndarray:
    """The model on (B, C, H, W) of any size: padded to its rules (reflect) and cropped back."""
    h, w = image.shape[2:]
    s = model.scale
    return model.run(pad_to(image, *model.spec.padded(h, w)))[:, :, :h * s, :w * s]


def apply_png(model: ImageModel, body: bytes) -> tuple[Iterator[bytes], int, int]:
    """(PNG chunks, width, height) of the model on the image in `body`: tiled, encoded as it is made."""
    try:
        image = read_image(body, "the request body", MAX_APPLY_PIXELS)
    except ImageFileError as e:
        status = 413 if "over the" in str(e) else 400
        raise HTTPError(status, str(e)) from None
    try:
        tiling = model.tiling()
        channels = model.output_channels(image)
    except ConfigError as e:
        raise HTTPError(400, str(e)) from None
    s = model.scale
    height, width = image.shape[0] * s, image.shape[1] * s
    return png_stream(model.bands(image, tiling), height, width, channels), width, height


async def image_infer(server, name: str, body: bytes, header: str | None):
    """POST /v2/models/NAME/infer on an image model: (status, body chunks, headers, length)."""
    g = server.image_model(name)
    loop = asyncio.get_running_loop()
    image, request_id, binary = await loop.run_in_executor(
        server.parser, parse_image_infer, body, header, g, server.options.max_images_per_request)
    async with server.gates[name]:
        out = await loop.run_in_executor(server.executor, run_padded, g, image)
    request = InferRequest({}, len(out), request_id, binary)
    return 200, *await loop.run_in_executor(server.parser, infer_response, name, request, [out])


async def apply_body(server, name: str, body: bytes) -> Iterator[bytes]:
    """POST /v1/models/NAME/apply: the PNG's chunks (made as they are sent; see gated)."""
    g = server.image_model(name)
    chunks, _, _ = await asyncio.get_running_loop().run_in_executor(server.parser, apply_png, g, body)
    return chunks


async def gated(gate: asyncio.Semaphore, chunks: Iterator[bytes]):
    """The PNG's chunks, each made in a worker thread, with the model's gate held while they are made."""
    loop = asyncio.get_running_loop()
    async with gate:
        while True:
            chunk = await loop.run_in_executor(None, next, chunks, None)
            if chunk is None:
                return
            yield chunk

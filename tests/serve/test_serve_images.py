"""ganpack serve with an image model on 127.0.0.1: Triton's own client sends an `image` tensor to infer,
plain HTTP posts PNG bytes to /v1/models/NAME/apply and gets a PNG, and the bad requests get 4xx."""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import serving, shipped

httpclient = pytest.importorskip("tritonclient.http")
pytestmark = pytest.mark.slow           # a server and an exported model


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_infer_and_apply_match_the_runtime(image_models):
    from gan_pack.runtime.image_model import ImageModel

    model = ImageModel(image_models["compact"])
    rgba = np.random.default_rng(0).integers(0, 256, (30, 20, 4), dtype=np.uint8)
    with serving([image_models["compact"], shipped("mnist-gan.onnx")]) as address:
        client = httpclient.InferenceServerClient(address)
        meta = client.get_model_metadata("compact")
        assert meta["inputs"][0]["name"] == "image" and meta["inputs"][0]["shape"] == [-1, 3, -1, -1]
        x = np.random.default_rng(1).random((2, 3, 7, 9), dtype=np.float32)
        tensor = httpclient.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        out = client.infer("compact", [tensor]).as_numpy("images")
        assert out.shape == (2, 3, 14, 18) and np.abs(out - model.run(x)).max() <= 1e-6
        status, body = post(f"http://{address}/v1/models/compact/apply", png(rgba))
        assert status == 200
        served = np.asarray(Image.open(io.BytesIO(body)))
        assert np.array_equal(served, model.apply(rgba))
        for url, payload, code, words in (
                ("compact/apply", b"not an image", 400, "not an image"),
                ("compact/apply", png(rgba)[:120], 400, "truncated"),
                ("mnist-gan/apply", png(rgba), 400, "generator"),
                ("compact/sample.png", None, 400, "image model")):
            if payload is None:
                try:
                    urllib.request.urlopen(f"http://{address}/v1/models/{url}", timeout=30)
                    status, body = 200, b""
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read()
            else:
                status, body = post(f"http://{address}/v1/models/{url}", payload)
            assert status == code and words in body.decode(), (url, status, body[:200])

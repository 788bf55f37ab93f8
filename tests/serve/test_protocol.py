"""The Open Inference Protocol encoding on its own, with no app and no server: requests parsed and
checked into feeds (JSON and binary tensors), replies encoded, sample queries read."""

import json

import numpy as np
import pytest

from conftest import shipped
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.serve.protocol import HEADER, HTTPError, SampleQuery, infer_response, model_metadata, parse_infer


@pytest.fixture(scope="module")
def cgan():
    return OnnxGenerator(shipped("mnist-cgan.onnx"))


def request(inputs, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def noise_entry(noise: np.ndarray, binary: bool = False) -> dict:
    entry = {"name": "noise", "datatype": "FP32", "shape": list(noise.shape)}
    if binary:
        entry["parameters"] = {"binary_data_size": noise.nbytes}
    else:
        entry["data"] = noise.reshape(-1).tolist()
    return entry


def test_json_and_binary_tensors_give_the_same_feeds(cgan):
    noise = cgan.noise(3, seed=5)
    labels = {"name": "labels", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]}
    _, feeds, count = parse_infer(request([noise_entry(noise), labels]), None, cgan, 16)
    head = request([noise_entry(noise, binary=True), labels])
    _, binary_feeds, _ = parse_infer(head + noise.astype("<f4").tobytes(), str(len(head)), cgan, 16)
    assert count == 3 and feeds["labels"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(feeds["noise"], noise)
    np.testing.assert_array_equal(binary_feeds["noise"], noise)


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "malformed inference request"),
    (request([{"name": "noise", "datatype": "INT64", "shape": [1, 100], "data": [0] * 100}]), 400, "must be FP32"),
    (request([{"name": "z", "datatype": "FP32", "shape": [1], "data": [0]}]), 400, "unexpected input 'z'"),
    (request([{"name": "noise", "datatype": "FP32", "shape": [2, 100], "data": [0] * 100}]), 400, "100 values"),
    (request([{"name": "noise", "datatype": "FP32", "shape": [17, 100], "data": [0] * 1700}]), 413, "at most 16"),
    (request([{"name": "labels", "datatype": "INT64", "shape": [1], "data": [0]}]), 400, "lacks the input 'noise'"),
    (request([{"name": "noise", "datatype": "FP32", "shape": [1, 100], "data": [0] * 100},
              {"name": "labels", "datatype": "INT64", "shape": [1], "data": [10]}]), 400, "out of range"),
])
def test_bad_requests_are_4xx_naming_the_problem(cgan, body, status, words):
    with pytest.raises(HTTPError, match=words) as caught:
        parse_infer(body, None, cgan, 16)
    assert caught.value.status == status


def test_replies_in_json_or_binary_as_asked():
    images = np.linspace(-1, 1, 2 * 4, dtype=np.float32).reshape(2, 1, 2, 2)
    body, headers = infer_response("m", {"id": "7"}, images)
    reply = json.loads(body)
    assert reply["id"] == "7" and reply["outputs"][0]["data"] == images.reshape(-1).tolist()
    body, headers = infer_response("m", {"outputs": [{"name": "images", "parameters": {"binary_data": True}}]}, images)
    size = int(headers[HEADER])
    assert json.loads(body[:size])["outputs"][0]["parameters"]["binary_data_size"] == images.nbytes
    np.testing.assert_array_equal(np.frombuffer(body[size:], "<f4").reshape(images.shape), images)


def test_sample_query_is_seeded_like_the_cli(cgan):
    query = SampleQuery.parse({"n": "4", "seed": "9", "label": "3"}, 16)
    feeds = query.feeds(cgan)
    np.testing.assert_array_equal(feeds["noise"], cgan.noise(4, seed=9))
    assert feeds["labels"].tolist() == [3] * 4
    with pytest.raises(HTTPError, match="n must be in 1..16") as caught:
        SampleQuery.parse({"n": "17"}, 16)
    assert caught.value.status == 413
    with pytest.raises(HTTPError, match="integers"):
        SampleQuery.parse({"seed": "x"}, 16)
    with pytest.raises(HTTPError, match="label 12 is out of range"):
        SampleQuery.parse({"label": "12"}, 16).feeds(cgan)


def test_metadata_names_the_contract(cgan):
    meta = model_metadata("mnist-cgan", cgan)
    assert [i["name"] for i in meta["inputs"]] == ["noise", "labels"]
    assert meta["outputs"][0]["shape"] == [-1, 1, 28, 28] and meta["parameters"]["num_classes"] == 10

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
    parsed = parse_infer(request([noise_entry(noise), labels]), None, cgan, 16)
    head = request([noise_entry(noise, binary=True), labels])
    binary = parse_infer(head + noise.astype("<f4").tobytes(), str(len(head)), cgan, 16)
    assert parsed.count == 3 and parsed.feeds["labels"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(parsed.feeds["noise"], noise)
    np.testing.assert_array_equal(binary.feeds["noise"], noise)


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


ONE_NOISE = {"name": "noise", "datatype": "FP32", "shape": [1, 100], "data": [0.5] * 100}


def labels_of(data) -> dict:
    return {"name": "labels", "datatype": "INT64", "shape": [1], "data": data}


@pytest.mark.parametrize("body, header, words", [
    (request([ONE_NOISE, labels_of([1.5])]), None, "data must be a list of integers"),
    (request([ONE_NOISE, labels_of(["1"])]), None, "data must be a list of integers"),
    (request([ONE_NOISE, labels_of([True])]), None, "data must be a list of integers"),
    (request([ONE_NOISE, labels_of([2 ** 63])]), None, "out of range"),
    (request([ONE_NOISE, ONE_NOISE, labels_of([1])]), None, "given twice"),
    (request([{**ONE_NOISE, "shape": [1, 1e400]}, labels_of([1])]).replace(b"Infinity", b"1e400"), None,
     "shape must be a list"),
    (request([ONE_NOISE, labels_of([1])], outputs="images"), None, "outputs must be a list of objects"),
    (request([ONE_NOISE, labels_of([1])], outputs=[{"name": "logits"}]), None, "one output, images"),
    (request([{**ONE_NOISE, "data": None, "parameters": {"binary_data_size": "400"}}, labels_of([1])]), None,
     "binary_data_size must be a byte count"),
    (request([{**ONE_NOISE, "data": None, "parameters": {"binary_data_size": 10 ** 9}}, labels_of([1])]), None,
     "binary_data_size must be a byte count"),
    (request([ONE_NOISE, labels_of([1])]), "\u00e9", "malformed inference request"),
    (request([ONE_NOISE, labels_of([1])]), "99999", "is not within the body"),
    (b"[" * 100_000 + b"]" * 100_000, None, "nested too deeply"),
    (b'{"inputs": "noise"}', None, "a list of inputs"),
    (b'[1, 2]', None, "a list of inputs"),
    (request(["noise"]), None, "each input must be an object"),
    (request([{**ONE_NOISE, "data": [[0.5] * 50, [0.5] * 49]}, labels_of([1])]), None, "not a (nested) list"),
])
def test_the_weak_spots_are_400(cgan, body, header, words):
    with pytest.raises(HTTPError, match=words.replace("(", "\\(").replace(")", "\\)")) as caught:
        parse_infer(body, header, cgan, 16)
    assert caught.value.status == 400


def test_replies_in_json_or_binary_as_asked(cgan):
    images = np.linspace(-1, 1, 2 * 4, dtype=np.float32).reshape(2, 1, 2, 2)
    noise = cgan.noise(2, seed=0)
    labels = {"name": "labels", "datatype": "INT64", "shape": [2], "data": [0, 1]}
    as_json = parse_infer(request([noise_entry(noise), labels], id="7"), None, cgan, 16)
    chunks, headers, length = infer_response("m", as_json, [images[:1], images[1:]])
    body = b"".join(chunks)
    reply = json.loads(body)
    assert len(body) == length
    assert reply["id"] == "7" and reply["outputs"][0]["data"] == images.reshape(-1).tolist()
    binary = parse_infer(request([noise_entry(noise), labels],
                                 outputs=[{"name": "images", "parameters": {"binary_data": True}}]), None, cgan, 16)
    chunks, headers, length = infer_response("m", binary, [images[:1], images[1:]])
    body = b"".join(chunks)
    size = int(headers[HEADER])
    assert len(body) == length
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

"""The infer request parser against generated input: whatever the body and header, the outcome is a
checked request or an HTTPError with a 4xx status, never another exception (which would be a 500)."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shipped
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.serve.protocol import HTTPError, InferRequest, parse_infer

FUZZ = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LIMIT = 8

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
numbers = st.one_of(st.integers(-3, 12), st.floats(-4, 4), st.booleans(), st.text(max_size=2), st.none())


@st.composite
def valid_request(draw) -> tuple[dict, bytes]:
    """A request the contract accepts (but for its size): noise and labels, as JSON or binary."""
    rows = draw(st.integers(1, LIMIT + 2))                      # past LIMIT: 413
    noise = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).standard_normal(rows * 100).tolist()
    labels = draw(st.lists(st.integers(0, 9), min_size=rows, max_size=rows))
    entries = [{"name": "noise", "datatype": "FP32", "shape": [rows, 100]},
               {"name": "labels", "datatype": "INT64", "shape": [rows], "data": labels}]
    binary = b""
    if draw(st.booleans()):
        binary = np.asarray(noise, dtype="<f4").tobytes()
        entries[0]["parameters"] = {"binary_data_size": len(binary)}
    else:
        entries[0]["data"] = noise
    return {"inputs": entries}, binary


def mutate(draw, request: dict) -> dict:
    """One change a careless or hostile client makes: a key dropped, a value replaced by any JSON."""
    inputs = request.get("inputs")
    entries = [e for e in inputs if isinstance(e, dict)] if isinstance(inputs, list) else []
    entry = draw(st.sampled_from([request, *entries]))
    key = draw(st.sampled_from(sorted(entry) + ["outputs", "id", "parameters", "data"]))
    if draw(st.booleans()) and key in entry:
        del entry[key]
    else:
        entry[key] = draw(json_values | numbers | st.sampled_from(
            [[2 ** 63], [1, 1e300], [{"name": "images"}], "images", [1.5], [True], {"binary_data_size": -1}]))
    return request


@st.composite
def bodies(draw):
    request, binary = draw(valid_request())
    for _ in range(draw(st.integers(0, 2))):
        request = mutate(draw, request)
    head = json.dumps(request).encode()
    header = str(len(head)) if binary else draw(st.sampled_from([None, str(len(head)), "-1", "x", "\u00e9"]))
    binary += draw(st.binary(max_size=64)) if draw(st.booleans()) else b""
    return head + binary, header


@pytest.fixture(scope="module")
def cgan():
    return OnnxGenerator(shipped("mnist-cgan.onnx"))


def outcome(body: bytes, header, g) -> str:
    try:
        assert isinstance(parse_infer(body, header, g, LIMIT), InferRequest)
        return "ok"
    except HTTPError as e:
        assert e.status in (400, 413), e.status
        return str(e.status)


@pytest.mark.slow                       # 2,000 requests: the full suite
@FUZZ
@given(case=bodies())
def test_structured_requests_are_a_request_or_a_4xx(cgan, case):
    outcome(*case, cgan)


@pytest.mark.slow                       # 2,000 requests: the full suite
@FUZZ
@given(body=st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode()),
       header=st.none() | st.text(max_size=6))
def test_any_bytes_are_a_request_or_a_4xx(cgan, body, header):
    outcome(body, header, cgan)


@pytest.mark.parametrize("result", ["ok", "400", "413"])
def test_the_generated_requests_reach_every_outcome(cgan, result):
    """The fuzzing is not all noise: among the generated requests are valid ones, and each 4xx."""
    from hypothesis import find

    find(bodies(), lambda case: outcome(*case, cgan) == result, settings=settings(
        max_examples=2000, database=None, derandomize=True, suppress_health_check=list(HealthCheck)))

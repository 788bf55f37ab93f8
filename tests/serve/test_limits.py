"""ganpack serve against clients that misbehave on purpose, over real sockets: bodies too large
(declared or streamed), bodies and headers that never finish, a request far larger than a call,
an address that cannot be had. Each gets its 4xx, a closed connection or one line and exit 2;
the server goes on answering others."""

import json
import socket
import threading
import time

import numpy as np
import pytest

from conftest import EXPORTED, one_error_line, run_cli, shipped
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.serve.layout import ServeOptions, load_models

from .test_app import Server, http

LIMIT = 1 << 20


@pytest.fixture(scope="module")
def server():
    models = load_models([shipped("mnist-gan.onnx"), shipped("mnist-cgan-mlp.onnx")], "cpu")
    running = Server(models, ServeOptions(max_body_bytes=LIMIT, read_timeout_s=1.0, max_images_per_request=4096))
    yield running
    running.stop()


def raw(server, data: bytes, wait: float = 5.0) -> bytes:
    """The server's first response to these bytes on one connection (or what came before it closed
    the connection, or `wait` s passed)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                                        # refused before all of it was sent
        reply = b""
        try:
            while not complete(reply) and (chunk := sock.recv(65536)):
                reply += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return reply


def complete(reply: bytes) -> bool:
    head, found, body = reply.partition(b"\r\n\r\n")
    lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return bool(found and lengths and len(body) >= lengths[0])


def post_head(path: str, length: int | None) -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{size}\r\n".encode()


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(server):
    reply = raw(server, post_head("/v2/models/mnist-gan/infer", 100 << 20))
    assert reply.startswith(b"HTTP/1.1 413") and b"--max-body-mb" in reply


def test_a_streamed_body_over_the_limit_is_413_while_it_arrives(server):
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 2)) + b"0\r\n\r\n"
    reply = raw(server, post_head("/v2/models/mnist-gan/infer", None) + body)
    assert reply.startswith(b"HTTP/1.1 413") and b"over 1048576 bytes" in reply


def test_a_body_that_stops_coming_is_408(server):
    reply = raw(server, post_head("/v2/models/mnist-gan/infer", 100) + b'{"inputs": [')
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in reply


def test_headers_that_stop_coming_close_the_connection(server):
    """A client trickling its headers is cut off at the read timeout, not held for ever."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        closed = None
        while closed is None and time.monotonic() - started < 8:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - started
        assert closed is not None               # a server without the deadline keeps it open past 8 s


def test_others_are_answered_while_a_large_body_is_refused(server):
    sender = threading.Thread(target=raw, args=(server, post_head("/v2/models/mnist-gan/infer", None)
                                                 + b"ffff\r\n" + b"x" * 0xffff + b"\r\n"), daemon=True)
    sender.start()
    code, _, content = http(server, "/v2/health/live")
    sender.join(timeout=10)
    assert code == 200 and json.loads(content) == {"live": True}


def test_a_request_larger_than_a_call_runs_as_several_and_gets_its_images(server):
    """4096 DCGAN images: the server runs them in calls that fit its memory budget (of 32), not one."""
    code, _, content = http(server, "/v1/models/mnist-gan/sample.npy?n=4096&seed=2")
    import io

    images = np.load(io.BytesIO(content))
    expected = OnnxGenerator(shipped("mnist-gan.onnx")).sample(64, seed=2)
    assert code == 200 and images.shape == (4096, 1, 28, 28)
    np.testing.assert_allclose(images[:64], expected, atol=1e-5)


def test_a_label_for_an_unconditional_model_is_400(server):
    code, _, content = http(server, "/v1/models/mnist-gan/sample.png?label=3")
    assert code == 400 and "unconditional" in json.loads(content)["error"]


def test_a_port_in_use_or_an_unknown_host_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["serve", shipped("mnist-gan.onnx"), "--port", port], capsys)
        one_error_line(code, err, f"port {port} on 127.0.0.1 is in use")
    code, _, err = run_cli(["serve", shipped("mnist-gan.onnx"), "--host", "no-such-host.invalid"], capsys)
    one_error_line(code, err, "cannot resolve --host 'no-such-host.invalid'")



@pytest.fixture(scope="module")
def emoji_server():
    models = load_models([EXPORTED / "emoji-cgan"], "cpu") if (EXPORTED / "emoji-cgan").is_dir() else None
    if models is None:
        pytest.skip("the shipped emoji-cgan package is not in this checkout")
    running = Server(models, ServeOptions())
    yield running
    running.stop()


def json_infer_body(rows: int, seed: int = 0, binary: bool = False, labels: bool = False) -> bytes:
    noise = np.random.default_rng(seed).standard_normal((rows, 100)).astype(np.float32)
    inputs = [{"name": "noise", "datatype": "FP32", "shape": [rows, 100], "data": noise.reshape(-1).tolist()}]
    if labels:
        inputs.append({"name": "labels", "datatype": "INT64", "shape": [rows], "data": [i % 9 for i in range(rows)]})
    request: dict = {"inputs": inputs}
    if binary:
        request["parameters"] = {"binary_data_output": True}
    return json.dumps(request).encode()


def test_a_json_reply_over_its_budget_is_413_naming_binary_data_and_sample_npy(emoji_server):
    """100 64 px RGBA images as JSON text would be up to 39 MiB: refused before the model runs; the
    same request asking for binary data gets its images."""
    code, _, content = http(emoji_server, "/v2/models/emoji-cgan/infer", json_infer_body(100, labels=True))
    error = json.loads(content)["error"]
    assert code == 413 and "binary_data_output" in error and "sample.npy" in error, error
    assert "at most 81 of these images" in error
    code, _, content = http(emoji_server, "/v2/models/emoji-cgan/infer",
                            json_infer_body(100, labels=True, binary=True))
    assert code == 200 and len(content) > 100 * 4 * 64 * 64 * 4


def test_a_json_reply_of_many_chunks_holds_every_value(server):
    """A reply longer than one encoding chunk (65536 values) joins its chunks into one valid list."""
    rows = 100                                                  # 78,400 values
    code, _, content = http(server, "/v2/models/mnist-gan/infer", json_infer_body(rows, seed=3))
    reply = json.loads(content)
    noise = np.random.default_rng(3).standard_normal((rows, 100)).astype(np.float32)
    expected = OnnxGenerator(shipped("mnist-gan.onnx")).generate(noise)
    data = np.asarray(reply["outputs"][0]["data"], dtype=np.float32)
    assert code == 200 and data.shape == (rows * 784,)
    np.testing.assert_allclose(data.reshape(expected.shape), expected, atol=1e-5)


def test_a_json_request_over_what_is_parsed_is_413_naming_binary_data(emoji_server):
    """4096 rows of noise as JSON (8 MB): Python's parser would hold the server for 130 ms; refused
    unparsed, naming the binary extension and sample.npy; health still answers."""
    code, _, content = http(emoji_server, "/v2/models/emoji-cgan/infer", json_infer_body(4096, labels=True))
    error = json.loads(content)["error"]
    assert code == 413 and "binary data" in error and "sample.npy" in error, error
    assert http(emoji_server, "/v2/health/live")[0] == 200

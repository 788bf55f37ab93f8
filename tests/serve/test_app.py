"""ganpack serve on 127.0.0.1, driven by Triton's own client (tritonclient.http) and plain HTTP."""

import asyncio
import concurrent.futures
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException

from conftest import EXPORTED, one_error_line, run_cli, shipped
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.serve.app import create_app, listen, make_server
from gan_pack.serve.batcher import Batcher
from gan_pack.serve.layout import COMPUTE_NICENESS, ServeOptions, load_models, load_served, worker_layout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The server `ganpack serve` runs (its socket, protocol and limits), in a thread, on a free port
    of 127.0.0.1."""

    def __init__(self, models, options):
        sock = listen("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.server = make_server(create_app(models, options), options.read_timeout_s)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.02)
        self.url = f"127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def server():
    models = load_models([EXPORTED / "mnist-cgan", shipped("mnist-gan.onnx")], "cpu")
    running = Server(models, ServeOptions(max_images_per_request=256, max_queue=64))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    return httpclient.InferenceServerClient(server.url)


def infer(client, name, noise, labels=None, binary=True):
    inputs = [httpclient.InferInput("noise", list(noise.shape), "FP32")]
    inputs[0].set_data_from_numpy(noise, binary_data=binary)
    if labels is not None:
        inputs.append(httpclient.InferInput("labels", list(labels.shape), "INT64"))
        inputs[1].set_data_from_numpy(labels, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("images", binary_data=binary)]
    return client.infer(name, inputs, outputs=outputs).as_numpy("images")


def test_liveness_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist-cgan") and client.is_model_ready("mnist-gan")
    meta = client.get_model_metadata("mnist-cgan")
    assert [i["name"] for i in meta["inputs"]] == ["noise", "labels"]
    assert meta["inputs"][0]["shape"] == [-1, 100] and meta["outputs"][0]["shape"] == [-1, 1, 28, 28]
    assert client.get_server_metadata()["name"] == "gan_pack"


@pytest.mark.parametrize("binary", [True, False])
def test_infer_equals_onnxgenerator(client, binary):
    cgan, gan = OnnxGenerator(shipped("mnist-cgan.onnx")), OnnxGenerator(shipped("mnist-gan.onnx"))
    noise, labels = cgan.noise(5, seed=3), np.array([0, 3, 5, 7, 9], dtype=np.int64)
    np.testing.assert_array_equal(infer(client, "mnist-cgan", noise, labels, binary), cgan.generate(noise, labels))
    np.testing.assert_array_equal(infer(client, "mnist-gan", noise, binary=binary), gan.generate(noise))


def test_concurrent_requests_are_batched_and_each_gets_its_own_images(server):
    """24 requests from 8 threads (a client each: tritonclient's is not thread-safe) of 1-3 images."""
    g = OnnxGenerator(shipped("mnist-cgan.onnx"))
    requests = [(g.noise(1 + i % 3, seed=i), np.full(1 + i % 3, i % 10, dtype=np.int64)) for i in range(24)]
    local = threading.local()

    def ask(request):
        if not hasattr(local, "client"):
            local.client = httpclient.InferenceServerClient(server.url)
        return infer(local.client, "mnist-cgan", *request)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, requests))
    for (noise, labels), images in zip(requests, answers):
        np.testing.assert_array_equal(images, g.generate(noise, labels))


def test_two_workers_split_the_batch_and_lose_no_request():
    """Two onnxruntime calls in flight with --max-batch 4: each call holds at most 4 / 2 = 2 images
    (a larger request runs alone), requests that do not fit are carried over to a worker's next
    call, every one of 48 requests gets its own images, and the calls run at a lower CPU priority
    than the event loop."""
    models = load_models([EXPORTED / "mnist-cgan"], "cpu", threads=1)
    g = models["mnist-cgan"]
    calls, priorities, run_checked = [], set(), g.run_checked

    def recorded(feeds):
        calls.append(len(feeds["noise"]))
        priorities.add(os.getpriority(os.PRIO_PROCESS, 0))     # this worker thread's nice value
        return run_checked(feeds)

    g.run_checked = recorded
    running = Server(models, ServeOptions(max_batch=4, max_delay_ms=1, workers=2))
    try:
        reference = OnnxGenerator(shipped("mnist-cgan.onnx"))
        sizes = [1, 2, 5]
        requests = [(reference.noise(sizes[i % 3], seed=i), np.full(sizes[i % 3], i % 10, dtype=np.int64))
                    for i in range(48)]
        local = threading.local()

        def ask(request):
            if not hasattr(local, "client"):
                local.client = httpclient.InferenceServerClient(running.url, network_timeout=30)
            return infer(local.client, "mnist-cgan", *request)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, requests))
        for (noise, labels), images in zip(requests, answers):
            np.testing.assert_allclose(images, reference.generate(noise, labels), atol=1e-5)
    finally:
        running.stop()
    assert sum(calls) == sum(len(noise) for noise, _ in requests)
    assert set(calls) <= {1, 2, 5}, f"a call merged past its share of --max-batch: {sorted(set(calls))}"
    assert priorities == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + COMPUTE_NICENESS)}


def test_waiting_requests_are_shared_among_free_workers():
    """8 requests of 2 images reach 4 free workers at once: each worker's call takes its share, 4
    images, rather than the first taking all 16 while three cores idle."""
    g = load_models([shipped("mnist-cgan-mlp.onnx")], "cpu", threads=1)["mnist-cgan-mlp"]
    calls, run_checked = [], g.run_checked

    def recorded(feeds):
        calls.append(len(feeds["noise"]))
        return run_checked(feeds)

    g.run_checked = recorded
    requests = [(g.noise(2, seed=i), np.full(2, i, dtype=np.int64)) for i in range(8)]

    async def serve_all():
        with ThreadPoolExecutor(4) as executor:
            batcher = Batcher(g, ServeOptions(), executor, workers=4)
            tasks = [asyncio.create_task(batcher.run()) for _ in range(4)]
            await asyncio.sleep(0)                                  # every worker waits for requests
            answers = await asyncio.gather(*(batcher.submit(g.check_inputs(*r), 2) for r in requests))
            for task in tasks:
                task.cancel()
            return answers

    answers = asyncio.run(serve_all())
    assert sorted(calls) == [4, 4, 4, 4]
    reference = OnnxGenerator(shipped("mnist-cgan-mlp.onnx"))
    for (noise, labels), images in zip(requests, answers):
        np.testing.assert_allclose(images, reference.generate(noise, labels), atol=1e-5)


def test_worker_layout():
    """The CLI's defaults: on a CPU one single-threaded worker per core and one more, unless the
    cores at the model's rate outrun what the event loop can feed (then 2 workers sharing the cores);
    on a GPU one worker; a single worker leaves a core for HTTP; explicit values win."""
    assert worker_layout(gpu=False, cores=2, workers=None, threads=None) == (3, 1)
    assert worker_layout(gpu=False, cores=16, workers=None, threads=None) == (17, 1)
    assert worker_layout(gpu=False, cores=128, workers=None, threads=None) == (64, 2)      # MAX_WORKERS
    assert worker_layout(gpu=False, cores=16, workers=None, threads=None, rate=700) == (17, 1)      # a DCGAN
    assert worker_layout(gpu=False, cores=16, workers=None, threads=None, rate=32_000) == (2, 8)    # an MLP
    assert worker_layout(gpu=False, cores=2, workers=None, threads=None, rate=32_000) == (3, 1)
    assert worker_layout(gpu=True, cores=16, workers=None, threads=None) == (1, 15)
    assert worker_layout(gpu=False, cores=8, workers=1, threads=None) == (1, 7)
    assert worker_layout(gpu=False, cores=8, workers=2, threads=None) == (2, 4)
    assert worker_layout(gpu=False, cores=2, workers=4, threads=2) == (4, 2)


@pytest.mark.parametrize("feed_rate, workers", [(1.0, 2), (1e12, 3)])
def test_load_served_times_each_model_for_its_layout(feed_rate, workers):
    """Each model is loaded single-threaded and timed on real onnxruntime calls: with a loop that
    feeds 1 image/s every model outruns it (2 workers), with one that feeds 10^12 none does."""
    models = [EXPORTED / "mnist-cgan", shipped("mnist-cgan-mlp.onnx")]
    generators, counts = load_served(models, "cpu", cores=2, feed_rate=feed_rate)
    assert counts == {"mnist-cgan": workers, "mnist-cgan-mlp": workers}
    assert {g.session.get_session_options().intra_op_num_threads for g in generators.values()} == {1}
    generators, counts = load_served(models, "cpu", cores=2, workers=2, feed_rate=1.0)      # explicit: no probe
    assert counts == {"mnist-cgan": 2, "mnist-cgan-mlp": 2}


def test_serving_a_folder_skips_what_is_not_a_generator_but_a_named_file_must_load(capsys, tmp_path):
    """A folder with a classifier beside a generator serves the generator only. A missing path, or
    a file named on the command line that is no generator, is one error line before any server."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("mnist-gan.onnx", "mnist-classifier.onnx"):
        shutil.copy(shipped(name), folder / name)
    assert list(load_models([folder], "cpu")) == ["mnist-gan"]
    code, _, err = run_cli(["serve", shipped("mnist-gan.onnx"), str(tmp_path / "nope.onnx")], capsys)
    one_error_line(code, err, "nope.onnx does not exist")
    code, _, err = run_cli(["serve", shipped("mnist-gan.onnx"), str(EXPORTED / "mnist-classifier.onnx")], capsys)
    one_error_line(code, err, "mnist-classifier.onnx")


@pytest.mark.parametrize("workers", ["0", "65"])
def test_workers_out_of_range(capsys, workers):
    code, _, err = run_cli(["serve", shipped("mnist-gan.onnx"), "--workers", workers], capsys)
    one_error_line(code, err, "--workers must be")


def http(server, path, body=None, method=None):
    request = urllib.request.Request(f"http://{server.url}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def body(inputs):
    return json.dumps({"inputs": inputs}).encode()


NOISE_1 = {"name": "noise", "shape": [1, 100], "datatype": "FP32", "data": [0.0] * 100}


@pytest.mark.parametrize("path, payload, status, words", [
    ("/v2/models/nope/infer", body([NOISE_1]), 404, "unknown model 'nope'"),
    ("/v2/models/mnist-cgan/infer", body([NOISE_1]), 400, "conditional: give labels"),
    ("/v2/models/mnist-cgan/infer", body([NOISE_1, {"name": "labels", "shape": [1], "datatype": "INT64",
                                                    "data": [10]}]), 400, "label 10 is out of range"),
    ("/v2/models/mnist-gan/infer", body([{**NOISE_1, "datatype": "FP64"}]), 400, "must be FP32"),
    ("/v2/models/mnist-gan/infer", body([{**NOISE_1, "shape": [1, 99], "data": [0.0] * 99}]), 400,
     "noise must have shape (batch, 100)"),
    ("/v2/models/mnist-gan/infer", body([{**NOISE_1, "data": [float("nan")] * 100}]).replace(b"NaN", b"NaN"), 400,
     "NaN"),
    ("/v2/models/mnist-gan/infer", body([{**NOISE_1, "shape": [300, 100], "data": [0.0] * 30000}]), 413,
     "at most 256"),
    ("/v2/models/mnist-gan/infer", b"{not json", 400, "malformed inference request"),
    # 4 x (2^62 + 25) values wrap to 100 in int64: a size that large is refused before any count
    ("/v2/models/mnist-gan/infer", body([{**NOISE_1, "shape": [4, 2 ** 62 + 25]}]), 400,
     "shape must be a list of 1 to 4 sizes of at most 16777216"),
    ("/v2/models/mnist-gan/infer", body([{"name": "extra", "shape": [1], "datatype": "FP32", "data": [0]}]), 400,
     "unexpected input 'extra'"),
    ("/v1/models/mnist-gan/sample.png?n=100000", None, 413, "n must be in 1..256"),
    ("/v1/models/mnist-cgan/sample.png?label=12", None, 400, "out of range"),
    ("/v1/models/mnist-cgan/sample.gif", None, 404, "sample.png"),
])
def test_bad_requests_get_their_status_and_message(server, path, payload, status, words):
    code, _, content = http(server, path, payload, "POST" if payload is not None else "GET")
    assert code == status and words in json.loads(content)["error"], content


def test_bad_request_through_tritonclient(client):
    with pytest.raises(InferenceServerException, match="out of range"):
        infer(client, "mnist-cgan", np.zeros((1, 100), np.float32), np.array([11], dtype=np.int64))


def test_png_and_npy_endpoints_are_seeded_like_ganpack_sample(server):
    from io import BytesIO

    from PIL import Image

    code, headers, content = http(server, "/v1/models/mnist-cgan/sample.png?n=16&label=3&seed=1")
    assert code == 200 and headers["content-type"] == "image/png" and content[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(BytesIO(content)).size == (122, 122)
    code, _, content = http(server, "/v1/models/mnist-cgan/sample.npy?n=4&label=3&seed=1&truncation=0.7")
    expected = OnnxGenerator(shipped("mnist-cgan.onnx")).sample(4, labels=3, seed=1, truncation=0.7)
    assert code == 200 and np.array_equal(np.load(BytesIO(content)), expected)


def test_sample_endpoint_uses_a_packages_default_truncation():
    """emoji-cgan carries truncation 2: the sample endpoint draws with it, &truncation=0 without."""
    from io import BytesIO

    running = Server(load_models([EXPORTED / "emoji-cgan"], "cpu"), ServeOptions())
    try:
        code, _, content = http(running, "/v2/models/emoji-cgan")
        assert code == 200 and json.loads(content)["parameters"]["truncation"] == 2.0
        g = OnnxGenerator(EXPORTED / "emoji-cgan")
        for query, truncation in (("", None), ("&truncation=0", 0), ("&truncation=2.5", 2.5)):
            code, _, content = http(running, f"/v1/models/emoji-cgan/sample.npy?n=3&label=6&seed=2{query}")
            expected = g.sample(3, labels=6, seed=2, truncation=truncation)
            assert code == 200 and np.array_equal(np.load(BytesIO(content)), expected)
        assert not np.array_equal(g.sample(3, labels=6, seed=2), g.sample(3, labels=6, seed=2, truncation=0))
    finally:
        running.stop()


def test_a_full_queue_answers_503():
    models = load_models([EXPORTED / "mnist-cgan"], "cpu")
    running = Server(models, ServeOptions(max_queue=1, max_delay_ms=200))
    try:
        statuses = []
        payload = body([{"name": "noise", "shape": [256, 100], "datatype": "FP32", "data": [0.1] * 25600},
                        {"name": "labels", "shape": [256], "datatype": "INT64", "data": [1] * 256}])
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(lambda _: http(running, "/v2/models/mnist-cgan/infer", payload, "POST")[0],
                                     range(12)))
        assert 503 in statuses and 200 in statuses
    finally:
        running.stop()


@pytest.mark.onnx
def test_triton_repository_parses_with_tritons_schema(tmp_path, capsys):
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    from conftest import run_cli

    code, out, err = run_cli(["pack", shipped("mnist-cgan.onnx"), "-o", tmp_path / "dist" / "mnist-cgan",
                              "--triton", tmp_path / "models"], capsys)
    assert code == 0, err
    entry = tmp_path / "models" / "mnist-cgan"
    config = text_format.Parse((entry / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "mnist-cgan" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 1024
    assert [(i.name, list(i.dims)) for i in config.input] == [("noise", [100]), ("labels", [1])]
    assert list(config.input[1].reshape.shape) == [] and config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert [(o.name, list(o.dims)) for o in config.output] == [("images", [1, 28, 28])]
    assert config.HasField("dynamic_batching") and len(config.instance_group) == 1
    packed = tmp_path / "dist" / "mnist-cgan" / "mnist-cgan.onnx"
    assert (entry / "1" / "model.onnx").read_bytes() == packed.read_bytes()


def test_the_default_largest_call_is_1024_images_on_a_cpu():
    g = load_models([shipped("mnist-cgan-mlp.onnx")], "cpu")["mnist-cgan-mlp"]
    assert Batcher(g, ServeOptions(), None).call_limit == min(1024, g.batch_size)
    assert Batcher(g, ServeOptions(max_batch=8), None).call_limit == 8
    assert Batcher(g, ServeOptions(max_batch=8), None, workers=3).call_limit == 3

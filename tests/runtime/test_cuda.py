"""The CUDA path on a machine that has it (onnxruntime-gpu and a GPU; skipped elsewhere): the
package's CUDA variant chosen and run with its provider options, images left on the GPU and handed
on through DLPack, GPU inputs taken as they are, and a package made with --variants cuda."""

import json

import numpy as np
import pytest

from conftest import EXPORTED, run_cli, shipped
from gan_pack.runtime.session import cuda_available

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="needs onnxruntime's CUDA provider")]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from gan_pack.package.pack import PackOptions, pack

    return pack(EXPORTED / "mnist-cgan", tmp_path_factory.mktemp("pkg") / "mnist-cgan", PackOptions(variants=("cuda",)))


def test_pack_makes_proves_and_times_the_cuda_variant(package, capsys):
    files = json.loads((package / "mnist-cgan.json").read_text())["files"]
    entry = {e["path"]: e for e in files}["mnist-cgan.cuda.onnx"]
    assert entry["provider"] == "cuda" and entry["precision"] == "fp16" and entry["parity"]["ok"]
    assert entry["speed"]["images_per_s"] > 0 and entry["speed"]["main_images_per_s"] > 0
    code, out, err = run_cli(["verify", package, "--device", "cuda"], capsys)
    assert code == 0 and out.count(" ok") == 8, err


def test_the_runtime_runs_the_cuda_variant_with_its_options(package):
    from gan_pack.runtime.generator import OnnxGenerator

    g = OnnxGenerator(package, device="cuda")
    assert (g.variant, g.chosen, g.providers[0]) == ("cuda", "made for CUDA", "CUDAExecutionProvider")
    assert g.session.get_provider_options()["CUDAExecutionProvider"]["prefer_nhwc"] == "1"
    reference = OnnxGenerator(shipped("mnist-cgan.onnx")).sample(64, seed=3)
    assert np.abs(g.sample(64, seed=3) - reference).max() <= 2e-2


def test_images_stay_on_the_gpu_and_gpu_inputs_are_taken_as_they_are(package):
    torch = pytest.importorskip("torch")
    from gan_pack.runtime.generator import OnnxGenerator

    g = OnnxGenerator(package, device="cuda", variant="main")
    noise, labels = g.noise(512, seed=1), np.arange(512) % 10
    on_host = g.generate(noise, labels)
    images = g.generate(noise, labels, output="device")
    tensor = torch.from_dlpack(images)
    assert tensor.is_cuda and tuple(tensor.shape) == (512, 1, 28, 28)
    np.testing.assert_allclose(tensor.cpu().numpy(), on_host, atol=1e-6)
    from_gpu = g.generate(torch.from_numpy(noise).cuda(), torch.from_numpy(labels).cuda(), output="device")
    np.testing.assert_allclose(torch.from_dlpack(from_gpu).cpu().numpy(), on_host, atol=1e-6)


def test_streaming_on_the_gpu_gives_the_cpu_images(tmp_path, capsys):
    code, _, err = run_cli(["sample", shipped("mnist-cgan.onnx"), "--device", "cuda", "-n", 20000, "--seed", 0, "-o",
                            tmp_path / "x.npy"], capsys)
    assert code == 0, err
    from gan_pack.runtime.generator import OnnxGenerator

    expected = OnnxGenerator(shipped("mnist-cgan.onnx")).sample(2000, seed=0)
    # the lone fp32 file runs on TF32 tensor cores, as PyTorch's convolutions do: about 2e-3
    np.testing.assert_allclose(np.load(tmp_path / "x.npy", mmap_mode="r")[:2000], expected, atol=1e-2)


def test_serve_on_the_gpu_runs_the_cuda_variant_in_gpu_sized_calls(package):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    import threading
    import time
    import urllib.request
    from io import BytesIO

    from gan_pack.serve.app import create_app, listen, make_server
    from gan_pack.serve.batcher import Batcher
    from gan_pack.serve.layout import ServeOptions, load_models

    models = load_models([package], "cuda")
    g = models["mnist-cgan"]
    assert g.variant == "cuda" and g.batch_size > 1024
    options = ServeOptions()
    assert Batcher(g, options, None).call_limit == g.batch_size
    sock = listen("127.0.0.1", 0)
    server = make_server(create_app(models, options), options.read_timeout_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/models/mnist-cgan/sample.npy?n=4096&label=3&seed=1"
        with urllib.request.urlopen(url, timeout=60) as response:
            images = np.load(BytesIO(response.read()))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    from gan_pack.runtime.generator import OnnxGenerator

    expected = OnnxGenerator(shipped("mnist-cgan.onnx")).sample(4096, labels=3, seed=1)
    assert images.shape == (4096, 1, 28, 28) and np.abs(images - expected).max() <= 2e-2

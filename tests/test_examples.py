"""The Node.js example against Python's onnxruntime on the same noise (`make test-examples`)."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, shipped
from gan_pack.images import to_uint8
from gan_pack.runtime import OnnxGenerator

NODE_EXAMPLE = ROOT / "examples" / "node"


@pytest.fixture(scope="module")
def node_ready():
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    if not (NODE_EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        pytest.skip("examples/node has no node_modules: run `make test-examples` (npm ci)")


def test_node_sample_matches_python(node_ready, tmp_path):
    model = shipped("mnist-cgan.onnx")
    g = OnnxGenerator(model)
    noise, labels = g.noise(5, seed=11), np.array([0, 3, 5, 7, 9])
    (tmp_path / "noise.json").write_text(json.dumps(noise.tolist()))
    out = tmp_path / "strip.pgm"
    result = subprocess.run(["node", "sample.js", "--model", str(model), "--noise", str(tmp_path / "noise.json"),
                             "--labels", "0,3,5,7,9", "--out", str(out)],
                            cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    node_pixels = np.asarray(Image.open(out)).astype(int)                        # (28, 5 * 28)
    python = to_uint8(g.generate(noise, labels))[:, :, :, 0]                     # (5, 28, 28)
    python_strip = np.concatenate(list(python), axis=1).astype(int)
    assert node_pixels.shape == python_strip.shape
    assert np.abs(node_pixels - python_strip).max() <= 1


def test_node_seeded_noise_draws_digits(node_ready, tmp_path):
    out = tmp_path / "sevens.pgm"
    result = subprocess.run(["node", "sample.js", "--model", str(shipped("mnist-cgan.onnx")), "--label", "7",
                             "--count", "4", "--seed", "1", "--out", str(out)],
                            cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (28, 112) and pixels.std() > 30


WEB_EXAMPLE = ROOT / "examples" / "web"


@pytest.fixture(scope="module")
def web_ready():
    import os

    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    if not os.path.exists(os.environ.get("CHROMIUM", "/usr/bin/chromium")):
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    if not (WEB_EXAMPLE / "node_modules" / "playwright-core").is_dir():
        pytest.skip("examples/web has no node_modules: run `make test-examples` (npm ci)")


@pytest.fixture()
def server():
    """The repository served on localhost, as `npm run serve` does."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(ROOT)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_web_page_canvas_matches_python(web_ready, server, tmp_path):
    g = OnnxGenerator(shipped("mnist-cgan.onnx"))
    noise, labels = g.noise(6, seed=5), np.array([1, 2, 3, 4, 5, 6])
    noise_file = WEB_EXAMPLE / ".test-noise.json"
    noise_file.write_text(json.dumps(noise.tolist()))
    try:
        url = f"{server}/examples/web/index.html?noise=.test-noise.json&labels=1,2,3,4,5,6"
        result = subprocess.run(["node", "drive.mjs", url, str(tmp_path / "canvas.json"), str(tmp_path / "page.png")],
                                cwd=WEB_EXAMPLE, capture_output=True, text=True, timeout=180)
    finally:
        noise_file.unlink()
    assert result.returncode == 0, result.stderr
    canvas = json.loads((tmp_path / "canvas.json").read_text())
    pixels = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"])
    python = np.concatenate(list(to_uint8(g.generate(noise, labels))[:, :, :, 0]), axis=1)
    assert pixels.shape == python.shape == (28, 6 * 28)
    assert np.abs(pixels - python.astype(int)).max() <= 1
    assert Image.open(tmp_path / "page.png").size == (900, 420)


def test_web_page_samples_an_imported_tutorial_generator(web_ready, server, tmp_path, tiny_idx):
    """The tutorial's generator.pth, exported with --from tutorial-cgan, in the page (?model=)."""
    import sys

    from conftest import ganpack_process

    script = ROOT / "examples" / "tutorial" / "cgan_tutorial.py"
    trained = subprocess.run([sys.executable, script, "--data-dir", tiny_idx, "--out", tmp_path / "generator.pth"],
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    model = WEB_EXAMPLE / ".test-tutorial.onnx"
    noise_file = WEB_EXAMPLE / ".test-noise.json"
    try:
        exported = ganpack_process("export", tmp_path / "generator.pth", "--from", "tutorial-cgan", "-o", model)
        assert exported.returncode == 0, exported.stderr
        g = OnnxGenerator(model)
        noise, labels = g.noise(4, seed=9), np.array([7, 1, 0, 4])
        noise_file.write_text(json.dumps(noise.tolist()))
        url = f"{server}/examples/web/index.html?model=.test-tutorial.onnx&noise=.test-noise.json&labels=7,1,0,4"
        result = subprocess.run(["node", "drive.mjs", url, str(tmp_path / "canvas.json")],
                                cwd=WEB_EXAMPLE, capture_output=True, text=True, timeout=180)
        python = np.concatenate(list(to_uint8(g.generate(noise, labels))[:, :, :, 0]), axis=1)
    finally:
        for path in (model, noise_file, model.with_name(".test-tutorial.parity.json")):
            path.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr
    canvas = json.loads((tmp_path / "canvas.json").read_text())
    pixels = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"])
    assert pixels.shape == python.shape == (28, 4 * 28)
    assert np.abs(pixels - python.astype(int)).max() <= 1

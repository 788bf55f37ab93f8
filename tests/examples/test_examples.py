"""The Node.js and browser examples against Python's onnxruntime on the same noise (`make test-examples`),
on packaged models: the MNIST cGAN, the Fashion-MNIST cGAN (its class names), a 3-channel generator
packed from a tiny run, and the tutorial's generator.pth exported and packed. Both examples read what
a model needs from its manifest."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import EXPORTED, HAS_TORCH, ROOT, ganpack_process
from gan_pack.core.images import to_uint8
from gan_pack.runtime.generator import OnnxGenerator

NODE_EXAMPLE, WEB_EXAMPLE = ROOT / "examples" / "node", ROOT / "examples" / "web"
pytestmark = pytest.mark.slow           # Node processes and a headless browser


def package(name: str):
    path = EXPORTED / name / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    return path


@pytest.fixture(scope="module")
def rgb_package(tmp_path_factory, tiny_idx):
    """A 3-channel generator: a tiny run on MNIST read as RGB, packed (inside the repository, so the
    page's server can reach it)."""
    if not HAS_TORCH:
        pytest.skip("needs the [train] extra (torch)")
    from conftest import tiny_config
    from gan_pack.pytorch.train import train

    run = tmp_path_factory.mktemp("rgb") / "run"
    train(tiny_config(run, tiny_idx, channels=3, image_size=16))
    out = WEB_EXAMPLE / ".test-rgb"
    shutil.rmtree(out, ignore_errors=True)
    packed = ganpack_process("pack", run, "-o", out)
    assert packed.returncode == 0, packed.stderr
    yield out / ".test-rgb.onnx"
    shutil.rmtree(out, ignore_errors=True)


def python_strip(model, noise, labels) -> np.ndarray:
    """(H, count * W, C) uint8, as the examples lay their images out."""
    return np.concatenate(list(to_uint8(OnnxGenerator(model).generate(noise, labels))), axis=1)


@pytest.fixture(scope="module")
def node_ready():
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    if not (NODE_EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        pytest.skip("examples/node has no node_modules: run `make test-examples` (npm ci)")


def node_sample(tmp_path, model, noise, labels, out_name):
    (tmp_path / "noise.json").write_text(json.dumps(noise.tolist()))
    args = ["node", "sample.js", "--model", str(model), "--noise", str(tmp_path / "noise.json"),
            "--out", str(tmp_path / out_name)]
    if labels is not None:
        args += ["--labels", ",".join(map(str, labels))]
    result = subprocess.run(args, cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return np.asarray(Image.open(tmp_path / out_name)).astype(int), result.stdout


@pytest.mark.parametrize("name, labels, words", [
    ("mnist-cgan", [0, 3, 5, 7, 9], "1x28x28: 0, 3, 5, 7, 9"),
    ("fashion-mnist-cgan", [0, 9, 7], "T-shirt/top, Ankle boot, Sneaker"),
    ("mnist-gan", None, "image(s) of 1x28x28)"),
])
def test_node_sample_matches_python(node_ready, tmp_path, name, labels, words):
    model = package(name)
    noise = OnnxGenerator(model).noise(len(labels or [0, 0]), seed=11)
    pixels, said = node_sample(tmp_path, model, noise, labels, "strip.pgm")
    python = python_strip(model, noise, None if labels is None else np.array(labels))[:, :, 0].astype(int)
    assert pixels.shape == python.shape and np.abs(pixels - python).max() <= 1
    assert words in said


def test_node_writes_rgb_for_a_3_channel_package(node_ready, rgb_package, tmp_path):
    noise, labels = OnnxGenerator(rgb_package).noise(3, seed=2), [1, 4, 8]
    pixels, _ = node_sample(tmp_path, rgb_package, noise, labels, "strip.ppm")
    python = python_strip(rgb_package, noise, np.array(labels)).astype(int)
    assert pixels.shape == python.shape == (16, 48, 3) and np.abs(pixels - python).max() <= 1


@pytest.mark.parametrize("args, words", [
    (["--model", "{alone}"], "ganpack pack"),
    ([], "--model PATH.onnx is required"),
    (["--model", "{cgan}", "--label", "12"], "label 12 is out of range"),
    (["--model", "{cgan}", "--truncation", "0.05"], "truncation must be a number >= 0.1 (or 0 for none)"),
    (["--model", "{forged}"], "the manifest's truncation \"1.5\" is not a number >= 0.1"),
    (["--model", "{huge}"], "the manifest's truncation Infinity is not a number >= 0.1"),
    (["--model", "{wide}"], "noise_dim is not a whole number in 1..65536"),
    (["--model", "{cgan}", "--seed", "abc"], "--seed must be a whole number in 0..4294967295, not \"abc\""),
    (["--model", "{cgan}", "--seed", "-1"], "--seed must be a whole number"),
    (["--model", "{cgan}", "--count", "0"], "--count must be a whole number in 1..1024"),
    (["--model", "{cgan}", "--count", "1e7"], "--count must be a whole number in 1..1024"),
    (["--model", "{cgan}", "--truncation", "0x10"], "truncation must be a number >= 0.1 (or 0 for none), not 0x10"),
    (["--model", "{cgan}", "--label", "seven"], "label \"seven\" is neither a class index nor a class name"),
    (["--model", "{cgan}", "--psi", " "], "--psi is for StyleGAN-family packages"),
    (["--model", "{cgan}", "--colour", "red"], "unknown option --colour"),
    (["--model", "{cgan}", "--count"], "--count needs a value"),
    (["--model", "{gan}", "--label", "3"], "unconditional"),
])
def test_node_mistakes_are_one_line_and_exit_2(node_ready, tmp_path, args, words):
    """A model without its manifest, a missing flag, a label out of range, numbers that are not
    numbers, a bad truncation (given, or in a manifest someone edited), a manifest whose noise_dim
    would hang: one line, no stack trace."""
    shutil.copy(package("mnist-gan"), tmp_path / "alone.onnx")
    manifest = json.loads(package("mnist-gan").with_suffix(".json").read_text())
    for name, change in (("forged", {"truncation": "1.5"}), ("wide", {"noise_dim": 10**9})):
        shutil.copy(package("mnist-gan"), tmp_path / f"{name}.onnx")
        (tmp_path / f"{name}.json").write_text(json.dumps({**manifest, **change}))
    shutil.copy(package("mnist-gan"), tmp_path / "huge.onnx")
    (tmp_path / "huge.json").write_text(json.dumps(manifest)[:-1] + ', "truncation": 1e400}')
    paths = {"{alone}": str(tmp_path / "alone.onnx"), "{cgan}": str(package("mnist-cgan")),
             "{forged}": str(tmp_path / "forged.onnx"), "{huge}": str(tmp_path / "huge.onnx"),
             "{wide}": str(tmp_path / "wide.onnx"), "{gan}": str(package("mnist-gan"))}
    result = subprocess.run(["node", "sample.js", *[paths.get(a, a) for a in args], "--out", str(tmp_path / "x.pgm")],
                            cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], lines


def test_node_seeded_noise_draws_digits(node_ready, tmp_path):
    out = tmp_path / "sevens.pgm"
    result = subprocess.run(["node", "sample.js", "--model", str(package("mnist-cgan")), "--label", "7",
                             "--count", "4", "--seed", "1", "--out", str(out)],
                            cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (28, 112) and pixels.std() > 30


@pytest.fixture(scope="module")
def web_ready():
    import os

    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    if not os.path.exists(os.environ.get("CHROMIUM", "/usr/bin/chromium")):
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    if not (WEB_EXAMPLE / "node_modules" / "playwright-core").is_dir():
        pytest.skip("examples/web has no node_modules: run `make test-examples` (npm ci)")


def example_server():
    """examples/web/serve.py, the server of `npm run serve`, on a free port."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("web_serve", WEB_EXAMPLE / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_server(port=0)


@pytest.fixture()
def server():
    """The example's own server on localhost, as `npm run serve` starts it."""
    import threading

    httpd = example_server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def drive_page(url: str, tmp_path) -> dict:
    """The page at `url` in Chromium, drawn; what its canvas holds (pixels, size, channels, classNames)."""
    result = subprocess.run(["node", "drive.mjs", url, str(tmp_path / "canvas.json")], cwd=WEB_EXAMPLE,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "canvas.json").read_text())


def open_page(server, tmp_path, model, noise, labels, screenshot=None) -> dict:
    """The page on `model` (None: its default) with this noise; what its canvas holds."""
    noise_file = WEB_EXAMPLE / ".test-noise.json"
    noise_file.write_text(json.dumps(noise.tolist()))
    query = "noise=.test-noise.json" + (f"&labels={','.join(map(str, labels))}" if labels is not None else "")
    if model is not None:                 # a path relative to the page
        query += f"&model={model.relative_to(WEB_EXAMPLE) if model.is_relative_to(WEB_EXAMPLE) else '../..'}"
        query += "" if model.is_relative_to(WEB_EXAMPLE) else f"/{model.relative_to(ROOT)}"
    try:
        args = ["node", "drive.mjs", f"{server}/examples/web/index.html?{query}", str(tmp_path / "canvas.json")]
        result = subprocess.run(args + ([str(screenshot)] if screenshot else []), cwd=WEB_EXAMPLE,
                                capture_output=True, text=True, timeout=180)
    finally:
        noise_file.unlink()
    assert result.returncode == 0, result.stderr
    canvas = json.loads((tmp_path / "canvas.json").read_text())
    canvas["array"] = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"], canvas["channels"])
    return canvas


def test_web_page_canvas_matches_python(web_ready, server, tmp_path):
    model = package("mnist-cgan")
    noise, labels = OnnxGenerator(model).noise(6, seed=5), [1, 2, 3, 4, 5, 6]
    canvas = open_page(server, tmp_path, None, noise, labels, tmp_path / "page.png")     # the default model
    python = python_strip(model, noise, np.array(labels)).astype(int)
    assert canvas["array"].shape == python.shape == (28, 6 * 28, 1)
    assert np.abs(canvas["array"] - python).max() <= 1
    assert Image.open(tmp_path / "page.png").size == (900, 420)


def test_web_page_shows_the_fashion_class_names(web_ready, server, tmp_path):
    model = package("fashion-mnist-cgan")
    noise, labels = OnnxGenerator(model).noise(3, seed=1), [9, 0, 5]
    canvas = open_page(server, tmp_path, model, noise, labels)
    assert canvas["classNames"][9] == "Ankle boot" and canvas["classNames"][0] == "T-shirt/top"
    python = python_strip(model, noise, np.array(labels)).astype(int)
    assert np.abs(canvas["array"] - python).max() <= 1


def test_web_page_draws_a_3_channel_package(web_ready, server, tmp_path, rgb_package):
    noise, labels = OnnxGenerator(rgb_package).noise(4, seed=3), [0, 2, 4, 6]
    canvas = open_page(server, tmp_path, rgb_package, noise, labels)
    python = python_strip(rgb_package, noise, np.array(labels)).astype(int)
    assert canvas["array"].shape == python.shape == (16, 64, 3)
    assert np.abs(canvas["array"] - python).max() <= 1


def test_web_page_samples_an_imported_tutorial_generator(web_ready, server, tmp_path, tiny_idx):
    """The tutorial's generator.pth, exported with --from tutorial-cgan and packed, in the page."""
    script = ROOT / "examples" / "tutorial" / "cgan_tutorial.py"
    trained = subprocess.run([sys.executable, script, "--data-dir", tiny_idx, "--out", tmp_path / "generator.pth"],
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    exported = ganpack_process("export", tmp_path / "generator.pth", "--from", "tutorial-cgan", "-o",
                               tmp_path / "tutorial.onnx")
    assert exported.returncode == 0, exported.stderr
    out = WEB_EXAMPLE / ".test-tutorial"
    shutil.rmtree(out, ignore_errors=True)
    try:
        packed = ganpack_process("pack", tmp_path / "tutorial.onnx", "-o", out)
        assert packed.returncode == 0, packed.stderr
        model = out / ".test-tutorial.onnx"
        noise, labels = OnnxGenerator(model).noise(4, seed=9), [7, 1, 0, 4]
        canvas = open_page(server, tmp_path, model, noise, labels)
        python = python_strip(model, noise, np.array(labels)).astype(int)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert canvas["array"].shape == python.shape == (28, 4 * 28, 1)
    assert np.abs(canvas["array"] - python).max() <= 1


# ---------------------------------------------------------------- one seed, one image, everywhere

def test_node_noise_is_the_portable_noise(node_ready):
    """The JavaScript module gives the golden numbers that pin the definition in Python."""
    from core.test_noise import GOLDEN

    keys = json.dumps([list(key) for key in GOLDEN])
    script = ("import('../shared/samples.mjs').then((m) => console.log(JSON.stringify("
              f"{keys}.map(([s, k]) => Array.from(m.portableNoise(s, k, 1, 4))))))")
    result = subprocess.run(["node", "-e", script], cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.float32(json.loads(result.stdout)), np.float32(list(GOLDEN.values())))


@pytest.mark.parametrize("truncation", [None, 0.7])
def test_node_seed_gives_pythons_images(node_ready, tmp_path, truncation):
    model = package("mnist-cgan")
    args = ["node", "sample.js", "--model", str(model), "--seed", "7", "--label", "3", "--count", "4",
            "--out", str(tmp_path / "s.pgm")] + (["--truncation", str(truncation)] if truncation else [])
    result = subprocess.run(args, cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    python = np.concatenate(list(to_uint8(OnnxGenerator(model).sample(4, labels=3, seed=7, truncation=truncation))),
                            axis=1)[:, :, 0].astype(int)
    assert np.abs(np.asarray(Image.open(tmp_path / "s.pgm")).astype(int) - python).max() <= 1


def test_web_seed_gives_pythons_images(web_ready, server, tmp_path):
    model = package("fashion-mnist-cgan")
    url = f"{server}/examples/web/index.html?model=../../exported/fashion-mnist-cgan/fashion-mnist-cgan.onnx" \
          "&seed=7&label=3&count=4&truncation=0.7"
    canvas = drive_page(url, tmp_path)
    pixels = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"])
    python = np.concatenate(list(to_uint8(OnnxGenerator(model).sample(4, labels=3, seed=7, truncation=0.7))),
                            axis=1)[:, :, 0].astype(int)
    assert pixels.shape == python.shape and np.abs(pixels - python).max() <= 1


def test_web_walk_frame_is_pythons(web_ready, server, tmp_path):
    from gan_pack.runtime.walk import loop_noise

    model = package("mnist-cgan")
    url = f"{server}/examples/web/index.html?walk=10&seed=2"
    canvas = drive_page(url, tmp_path)
    pixels = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"])
    g = OnnxGenerator(model)
    z = loop_noise(g, 4, 60, 2)[10]
    python = np.concatenate(list(to_uint8(g.generate(np.repeat(z[None], 10, 0), np.arange(10)))), axis=1)
    assert pixels.shape == (28, 280) and np.abs(pixels - python[:, :, 0].astype(int)).max() <= 1


def test_the_example_server_serves_the_page_and_packages_only():
    """Bound to 127.0.0.1; the page, onnxruntime-web and the packages are there, nothing else is."""
    import threading
    import urllib.error
    import urllib.request

    httpd = example_server()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host, port = httpd.server_address[:2]
    try:
        def status(path: str) -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
                    return reply.status
            except urllib.error.HTTPError as e:
                return e.code
        assert host == "127.0.0.1"
        for path in ("/examples/web/index.html", "/examples/web/main.js", "/examples/shared/samples.mjs",
                     "/exported/mnist-cgan/mnist-cgan.json"):
            assert status(path) == 200, path
        for path in ("/README.md", "/pyproject.toml", "/gan_pack/cli/app.py", "/examples/web/../../Makefile",
                     "/examples/web/%2e%2e/%2e%2e/Makefile", "/.git/config", "/examples/web/node_modules/.package-lock.json"):
            assert status(path) == 404, path
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def stylegan_packages(tmp_path_factory):
    """Two StyleGAN2 packages inside the page's folder: stylegan2-torch's (32 px, one channel) and the
    clean-room conditional RGB generator of the test zoo (16 px), both exported with psi."""
    if not HAS_TORCH:
        pytest.skip("needs the [train] extra (torch)")
    import importlib.util

    if importlib.util.find_spec("stylegan2_torch") is None:
        pytest.skip("needs stylegan2-torch (the [dev] extra)")
    import torch

    from gan_pack.pytorch.importer import load_class
    from gan_pack.pytorch.stylegan2_ops import stylegan2_torch_generator

    scratch = tmp_path_factory.mktemp("stylegan")
    init = {"resolution": 32, "latent_dim": 64, "n_mlp": 2, "channels": {"4": 64, "8": 64, "16": 32, "32": 16}}
    torch.manual_seed(0)
    g = stylegan2_torch_generator()(32, 64, 2, channels={int(k): v for k, v in init["channels"].items()})
    with torch.no_grad():
        for rgb in g.to_rgbs:
            rgb.weight.mul_(0.2)
    torch.save({"g_ema": g.state_dict()}, scratch / "G.pt")
    zoo = ROOT / "tests" / "pytorch" / "zoo_stylegan.py"
    torch.save(load_class(f"{zoo}:Generator")(c_dim=3).state_dict(), scratch / "nv.pth")
    outs = {"mono": WEB_EXAMPLE / ".test-sg2-mono", "rgb": WEB_EXAMPLE / ".test-sg2-rgb"}
    steps = [("export", scratch / "G.pt", "--from", "stylegan2-torch", "--init", json.dumps(init),
              "-o", scratch / "mono.onnx"),
             ("export", scratch / "nv.pth", "--module", f"{zoo}:Generator", "--init", '{"c_dim": 3}', "--noise-dim",
              "32", "--num-classes", "3", "--label-input", "onehot", "--class-names", "circle,square,star",
              "-o", scratch / "rgb.onnx"),
             ("pack", scratch / "mono.onnx", "-o", outs["mono"]), ("pack", scratch / "rgb.onnx", "-o", outs["rgb"])]
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)
    for step in steps:
        done = ganpack_process(*step)
        assert done.returncode == 0, done.stderr
    yield {key: out / f"{out.name}.onnx" for key, out in outs.items()}
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)


def test_node_psi_gives_pythons_stylegan_images(node_ready, stylegan_packages, tmp_path):
    model = stylegan_packages["mono"]
    args = ["node", "sample.js", "--model", str(model), "--seed", "7", "--count", "4", "--psi", "0.6",
            "--out", str(tmp_path / "s.pgm")]
    result = subprocess.run(args, cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    python = np.concatenate(list(to_uint8(OnnxGenerator(model, psi=0.6).sample(4, seed=7))), axis=1)[:, :, 0]
    plain = np.concatenate(list(to_uint8(OnnxGenerator(model).sample(4, seed=7))), axis=1)[:, :, 0]
    pixels = np.asarray(Image.open(tmp_path / "s.pgm")).astype(int)
    assert np.abs(pixels - python.astype(int)).max() <= 1 and np.abs(pixels - plain.astype(int)).max() > 5
    refused = subprocess.run(["node", "sample.js", "--model", str(package("mnist-cgan")), "--psi", "0.6", "--out",
                              str(tmp_path / "x.pgm")], cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "no psi input" in refused.stderr


def test_web_page_draws_an_rgb_stylegan_with_psi(web_ready, server, stylegan_packages, tmp_path):
    model = stylegan_packages["rgb"]
    url = (f"{server}/examples/web/index.html?model={model.relative_to(WEB_EXAMPLE)}"
           f"&seed=7&label=2&count=4&psi=0.6")
    canvas = drive_page(url, tmp_path)
    pixels = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"], canvas["channels"])
    python = np.concatenate(list(to_uint8(OnnxGenerator(model, psi=0.6).sample(4, labels=2, seed=7))), axis=1)
    assert pixels.shape == python.shape == (16, 64, 3) and np.abs(pixels - python.astype(int)).max() <= 1
    assert canvas["classNames"] == ["circle", "square", "star"]


@pytest.fixture(scope="module")
def rgba_package(tmp_path_factory):
    """A 4-channel (RGBA) generator: a tiny run on transparent PNGs, packed inside the page's folder."""
    if not HAS_TORCH:
        pytest.skip("needs the [train] extra (torch)")
    from conftest import tiny_config, write_rgba_folder
    from gan_pack.pytorch.train import train

    root = tmp_path_factory.mktemp("rgba")
    train(tiny_config(root / "run", write_rgba_folder(root / "stickers"), dataset="folder", arch="dcgan",
                      image_size=32, channels=4, batch_size=4))
    out = WEB_EXAMPLE / ".test-rgba"
    shutil.rmtree(out, ignore_errors=True)
    packed = ganpack_process("pack", root / "run", "-o", out)
    assert packed.returncode == 0, packed.stderr
    yield out / ".test-rgba.onnx"
    shutil.rmtree(out, ignore_errors=True)


def test_node_writes_rgba_png_with_pythons_alpha(node_ready, rgba_package, tmp_path):
    noise, labels = OnnxGenerator(rgba_package).noise(3, seed=4), [0, 1, 0]
    pixels, _ = node_sample(tmp_path, rgba_package, noise, labels, "strip.png")
    python = python_strip(rgba_package, noise, np.array(labels)).astype(int)
    assert Image.open(tmp_path / "strip.png").mode == "RGBA"
    assert pixels.shape == python.shape == (32, 96, 4) and np.abs(pixels - python).max() <= 1
    assert python[..., 3].min() < 250                       # the alpha is not all opaque
    (tmp_path / "noise.json").write_text(json.dumps(noise.tolist()))
    refused = subprocess.run(["node", "sample.js", "--model", str(rgba_package), "--noise", str(tmp_path / "noise.json"),
                              "--labels", "0,1,0", "--out", str(tmp_path / "x.ppm")],
                             cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "need --out NAME.png" in refused.stderr


def test_web_page_draws_rgba_with_pythons_alpha(web_ready, server, tmp_path, rgba_package):
    """The canvas keeps colours premultiplied by alpha, so they read back exactly only where the alpha is
    high: the alpha is compared as it is, the colours as drawn (premultiplied)."""
    noise, labels = OnnxGenerator(rgba_package).noise(4, seed=3), [0, 1, 1, 0]
    canvas = open_page(server, tmp_path, rgba_package, noise, labels)
    python = python_strip(rgba_package, noise, np.array(labels)).astype(int)
    page = canvas["array"]
    assert page.shape == python.shape == (32, 128, 4) and np.abs(page[..., 3] - python[..., 3]).max() <= 1
    premultiplied = np.abs(page[..., :3] * page[..., 3:] - python[..., :3] * python[..., 3:]) / 255
    assert premultiplied.max() <= 2


def test_node_draws_the_shipped_emoji_with_category_names(node_ready, tmp_path):
    """The shipped RGBA emoji generator: Node writes a PNG with Python's pixels and alpha, and names
    the categories from the manifest."""
    model = package("emoji-cgan")
    noise, labels = OnnxGenerator(model).noise(3, seed=6), [6, 2, 5]
    pixels, said = node_sample(tmp_path, model, noise, labels, "emoji.png")
    python = python_strip(model, noise, np.array(labels)).astype(int)
    assert pixels.shape == python.shape == (64, 192, 4) and np.abs(pixels - python).max() <= 1
    assert python[..., 3].min() == 0 and python[..., 3].max() == 255     # transparent and opaque parts
    assert "smileys-emotion, flags, people-body" in said


@pytest.mark.parametrize("truncation", [None, "0", "2.5"])
def test_node_samples_with_the_packages_truncation(node_ready, tmp_path, truncation):
    """The emoji package records truncation 2: Node draws its seeds with it, as Python does,
    unless told another (0: none)."""
    model = package("emoji-cgan")
    given = [] if truncation is None else ["--truncation", truncation]
    result = subprocess.run(["node", "sample.js", "--model", str(model), "--seed", "4", "--label", "6", "--count",
                             "3", "--out", str(tmp_path / "s.png"), *given], cwd=NODE_EXAMPLE, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    g = OnnxGenerator(model)
    assert g.info.truncation == 2.0
    python = np.concatenate(list(to_uint8(g.sample(3, labels=6, seed=4, truncation=None if truncation is None
                                                   else float(truncation)))), axis=1).astype(int)
    assert np.abs(np.asarray(Image.open(tmp_path / "s.png")).astype(int) - python).max() <= 1


def test_web_page_samples_with_the_packages_truncation(web_ready, server, tmp_path):
    model = package("emoji-cgan")
    url = f"{server}/examples/web/index.html?model=../../exported/emoji-cgan/emoji-cgan.onnx&seed=4&label=6&count=3"
    canvas = drive_page(url, tmp_path)
    page = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"], 4)
    python = np.concatenate(list(to_uint8(OnnxGenerator(model).sample(3, labels=6, seed=4))), axis=1).astype(int)
    assert page.shape == python.shape and np.abs(page[..., 3] - python[..., 3]).max() <= 1
    assert (np.abs(page[..., :3] * page[..., 3:] - python[..., :3] * python[..., 3:]) / 255).max() <= 2


def test_web_page_draws_the_shipped_emoji_with_alpha(web_ready, server, tmp_path):
    model = package("emoji-cgan")
    noise, labels = OnnxGenerator(model).noise(4, seed=8), [0, 3, 6, 8]
    canvas = open_page(server, tmp_path, model, noise, labels)
    assert canvas["classNames"][6] == "smileys-emotion"
    python = python_strip(model, noise, np.array(labels)).astype(int)
    page = canvas["array"]
    assert page.shape == python.shape == (64, 256, 4) and np.abs(page[..., 3] - python[..., 3]).max() <= 1
    premultiplied = np.abs(page[..., :3] * page[..., 3:] - python[..., :3] * python[..., 3:]) / 255
    assert premultiplied.max() <= 2


def rgba_picture(h: int, w: int) -> np.ndarray:
    from gan_pack.core.test_images import picture_like

    image = (picture_like(1, 4, h, w, seed=2)[0].transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    image[:, : w // 3, 3] = 0                                   # a transparent band
    return image


def test_node_apply_matches_ganpack_apply(node_ready, tmp_path):
    from gan_pack.runtime.image_model import ImageModel

    model = package("emoji-sr-x4")
    Image.fromarray(rgba_picture(37, 50), "RGBA").save(tmp_path / "in.png")
    result = subprocess.run(["node", "apply.js", "--model", str(model), "--image", str(tmp_path / "in.png"),
                             "--out", str(tmp_path / "out.png"), "--tile", "16", "--overlap", "4"],
                            cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    node = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    python = ImageModel(model).apply(rgba_picture(37, 50), tile=16, overlap=4)
    assert node.shape == python.shape == (148, 200, 4) and np.abs(node - python).max() <= 1
    (tmp_path / "bad.png").write_bytes((tmp_path / "in.png").read_bytes()[:60])
    result = subprocess.run(["node", "apply.js", "--model", str(model), "--image", str(tmp_path / "bad.png")],
                            cwd=NODE_EXAMPLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error:") and "truncated" in result.stderr


def test_web_page_upscales_in_tiles_like_ganpack_apply(web_ready, server, tmp_path):
    from gan_pack.runtime.image_model import ImageModel

    model = package("emoji-sr-x4")
    picture = WEB_EXAMPLE / ".test-upscale.png"
    Image.fromarray(rgba_picture(24, 30), "RGBA").save(picture)
    try:
        canvas = drive_page(f"{server}/examples/web/upscale.html?image=.test-upscale.png&tile=16", tmp_path)
    finally:
        picture.unlink()
    pixels = np.array(canvas["pixels"]).reshape(canvas["height"], canvas["width"], canvas["channels"])
    python = ImageModel(model).apply(rgba_picture(24, 30), tile=16, overlap=4)
    assert pixels.shape == python.shape == (96, 120, 4)
    assert np.abs(pixels - python.astype(int)).max() <= 1

"""The ready-to-sample packages in exported/: they load, carry their metadata, sample every label and verify."""

import json

import numpy as np
import pytest

from conftest import EXPORTED, run_cli, shipped
from gan_pack.core.files import file_sha256
from gan_pack.runtime.generator import OnnxGenerator

GENERATORS = {
    "mnist-cgan.onnx": ("cgan", "mnist", 10, (1, 28, 28)),
    "mnist-gan.onnx": ("gan", "mnist", 0, (1, 28, 28)),
    "mnist-cgan-mlp.onnx": ("cgan", "mnist", 10, (1, 28, 28)),
    "fashion-mnist-cgan.onnx": ("cgan", "fashion-mnist", 10, (1, 28, 28)),
    "emoji-cgan.onnx": ("cgan", "emoji", 9, (4, 64, 64)),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_shipped_generator(name):
    model, dataset, classes, shape = GENERATORS[name]
    g = OnnxGenerator(shipped(name))
    assert (g.info.model, g.info.dataset, g.info.num_classes) == (model, dataset, classes)
    assert g.info.image_shape == shape and g.info.parity["ok"] and g.info.weights == "ema"
    labels = np.arange(classes) if classes else None
    images = g.sample(max(classes, 4), labels=labels, seed=0)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1
    evaluation = json.loads(shipped(name).with_suffix(".eval.json").read_text())
    assert evaluation["n"] == 10000 and evaluation["model_sha256"]


def test_fashion_class_names():
    g = OnnxGenerator(shipped("fashion-mnist-cgan.onnx"))
    assert g.info.class_names[0] == "T-shirt/top" and g.info.class_names[9] == "Ankle boot"


def test_emoji_package_keeps_alpha_and_its_data_notice():
    """The RGBA emoji generator: category names, transparent backgrounds (alpha near 0 in the
    corners, near 1 in the middle of most images), the data's licenses and Twemoji attribution in
    its card, and fp32 weights under 10 MB."""
    g = OnnxGenerator(shipped("emoji-cgan.onnx"))
    assert g.info.class_names[0] == "activities" and g.info.class_names[-1] == "travel-places"
    images = g.sample(90, labels=np.arange(90) % 9, seed=0)
    alpha = (images[:, 3] + 1) / 2
    corners, middles = alpha[:, :4, :4].mean(axis=(1, 2)), alpha[:, 28:36, 28:36].mean(axis=(1, 2))
    assert np.median(corners) < 0.05 and np.median(middles) > 0.9     # keycap symbols fill their corners
    card = (EXPORTED / "emoji-cgan" / "README.md").read_text()
    assert "CC-BY 4.0" in card and "Twemoji" in card and "Apache" in card
    assert shipped("emoji-cgan.onnx").stat().st_size < 10e6
    # it samples at its packed truncation, and its evaluation was made at the same one
    evaluation = json.loads(shipped("emoji-cgan.onnx").with_suffix(".eval.json").read_text())
    assert g.info.truncation == evaluation["truncation"] == 2.0 and "truncate the noise at 2:" in card
    assert np.abs(g.noise(90, seed=0)).max() <= 2.0


def test_exported_folder_holds_each_model_once():
    """Each generator is stored once, as its package; exported/ holds nothing else but classifiers."""
    loose = sorted(p.name for p in EXPORTED.iterdir() if p.is_file() and not p.name.endswith("-classifier.onnx"))
    assert loose == []
    total = sum(p.stat().st_size for p in EXPORTED.rglob("*") if p.is_file())
    assert total < 48e6                 # the tracked tree stays under 50 MB with every package in it


# The mean of 4 images from seed 0, and one pixel of each: if a shipped file, the noise stream or
# the runtime's label defaults change, these move.
GOLDEN = {
    "mnist-cgan.onnx": (-0.71463, [-1.0, -0.89834, 0.9514, 0.99144]),
    "mnist-gan.onnx": (-0.78295, [0.3755, -0.9572, -0.99998, -1.0]),
    "mnist-cgan-mlp.onnx": (-0.73786, [-0.99929, -0.98929, -0.25042, 0.99363]),
    "fashion-mnist-cgan.onnx": (-0.4696, [0.49812, 0.04651, -0.55419, 0.60985]),
}
PIXELS = ((14, 14), (10, 12), (20, 8), (12, 16))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_pixels_for_fixed_noise(name):
    mean, pixels = GOLDEN[name]
    images = OnnxGenerator(shipped(name)).sample(4, seed=0)
    got = [float(images[i, 0, y, x]) for i, (y, x) in enumerate(PIXELS)]
    assert float(images.mean()) == pytest.approx(mean, abs=1e-4)
    assert got == pytest.approx(pixels, abs=1e-3)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_each_evaluation_names_the_file_beside_it(name):
    evaluation = json.loads(shipped(name).with_suffix(".eval.json").read_text())
    assert evaluation["model_sha256"] == file_sha256(shipped(name))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_each_shipped_generator_is_a_verified_package(name, capsys):
    """exported/NAME/ is the package of NAME.onnx, and it verifies here."""
    from conftest import run_cli

    stem = name.removesuffix(".onnx")
    package = EXPORTED / stem
    assert json.loads((package / f"{stem}.json").read_text())["name"] == stem
    code, out, err = run_cli(["verify", package], capsys)
    assert code == 0, err
    models = [f for f in json.loads((package / f"{stem}.json").read_text())["files"] if "precision" in f]
    assert out.count(" ok") == 4 * len(models) and "verified" in out


def test_the_shipped_upscaler_verifies_describes_itself_and_beats_bicubic(capsys):
    """exported/emoji-sr-x4: a verified image package whose card and evaluation hold its figures."""

    package = shipped("emoji-sr-x4.onnx").parent
    code, out, err = run_cli(["verify", package], capsys)
    assert code == 0 and "golden" not in err, out + err
    code, out, err = run_cli(["info", package], capsys)
    assert code == 0 and "image model: Compact, 4x, 4 -> 4 channels" in out, out + err
    evaluation = json.loads((package / "emoji-sr-x4.eval.json").read_text())
    assert evaluation["images"] == 796 and min(evaluation["gain_db"].values()) >= 2.0
    card = (package / "README.md").read_text()
    assert "Twemoji" in card and "CC-BY 4.0" in card and f"{evaluation['psnr_db']['model_rgb']:.2f}" in card

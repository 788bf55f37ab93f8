"""Transparent images end to end: an RGBA folder trains a 4-channel generator whose exports, grids,
GIFs and packages keep the alpha; --channels 1 or 3 composite the same folder over --background."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from PIL import Image

from conftest import one_error_line, run_cli, tiny_config, write_rgba_folder
from gan_pack.runtime.generator import OnnxGenerator


@pytest.fixture(scope="module")
def rgba_run(tmp_path_factory):
    from gan_pack.pytorch.train import train

    root = tmp_path_factory.mktemp("rgba")
    data = write_rgba_folder(root / "stickers")
    train(tiny_config(root / "run", data, dataset="folder", arch="dcgan", image_size=32, channels=4,
                      batch_size=4, augment="translation,cutout"))
    return root


@pytest.mark.parametrize("channels, background, hidden", [(4, "white", [0, 0, 0, 0]), (3, "white", [255, 255, 255]),
                                                          (3, "#102030", [16, 32, 48]), (1, "black", [0])])
def test_transparent_pixels_take_the_background_not_their_hidden_colour(tmp_path, channels, background, hidden):
    from gan_pack.pytorch.config import TrainConfig
    from gan_pack.pytorch.data import load_dataset

    data = write_rgba_folder(tmp_path / "stickers", per_class=2)
    config = TrainConfig.from_dict(dict(dataset="folder", data_dir=str(data), image_size=32, channels=channels,
                                        background=background, out=str(tmp_path / "run")))
    images, labels, info = load_dataset(config.recipe, str(data))
    assert tuple(images.shape) == (4, channels, 32, 32) and info.image_shape == (channels, 32, 32)
    source = np.asarray(Image.open(data / "discs" / "0.png"))
    corner = images[0, :, 0, 0].tolist()                         # (0, 0) is transparent in every image
    assert source[0, 0].tolist() == [255, 0, 0, 0] and corner == hidden


@pytest.mark.slow                       # a whole RGBA pipeline
def test_rgba_export_sample_gif_pack_and_verify(rgba_run, tmp_path, capsys):
    run = rgba_run / "run"
    assert Image.open(run / "samples" / sorted(p.name for p in (run / "samples").glob("*.png"))[-1]).mode == "RGBA"
    code, _, err = run_cli(["export", run, "-o", tmp_path / "s.onnx"], capsys)
    assert code == 0, err
    g = OnnxGenerator(tmp_path / "s.onnx")
    assert g.info.image_shape == (4, 32, 32) and g.info.raw["Image.BitmapPixelFormat"] == "Rgba8"
    assert g.info.dataset == "stickers"                  # a folder data set is named after its folder
    code, _, err = run_cli(["sample", tmp_path / "s.onnx", "--per-class", "3", "-o", tmp_path / "grid.png"], capsys)
    assert code == 0, err
    grid = Image.open(tmp_path / "grid.png")
    assert grid.mode == "RGBA" and grid.size == (3 * 34 + 2, 2 * 34 + 2)
    code, _, err = run_cli(["interpolate", tmp_path / "s.onnx", "--gif", tmp_path / "w.gif", "--frames", "4"], capsys)
    assert code == 0, err
    assert Image.open(tmp_path / "w.gif").n_frames == 4
    (tmp_path / "NOTICE.md").write_text("Shapes drawn for the tests; CC0.\n")
    code, _, err = run_cli(["pack", tmp_path / "s.onnx", "-o", tmp_path / "pkg", "--data-notice",
                            tmp_path / "NOTICE.md", "--license", "cc0-1.0"], capsys)
    assert code == 0, err
    card = (tmp_path / "pkg" / "README.md").read_text()
    assert "## Training data: licenses and attribution\n\nShapes drawn for the tests; CC0." in card
    assert "4x32x32 stickers images" in card and 'datasets:\n  - "stickers"' in card
    import json

    manifest = json.loads((tmp_path / "pkg" / "pkg.json").read_text())
    assert manifest["alpha"] is True and manifest["image_shape"] == [4, 32, 32]
    assert Image.open(tmp_path / "pkg" / "pkg.png").mode == "RGBA"
    code, out, err = run_cli(["verify", tmp_path / "pkg"], capsys)
    assert code == 0 and "verified" in out, err


@pytest.mark.parametrize("args, words", [
    (["--channels", "4"], ["--channels 4", "--dataset folder"]),
    (["--dataset", "folder", "--channels", "3", "--background", "pink"], ["--background", "not a color"]),
])
def test_bad_channels_and_backgrounds_are_one_line(tmp_path, capsys, tiny_idx, args, words):
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "run", *args], capsys)
    one_error_line(code, err, *words)


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    write_rgba_folder(root / "train", per_class=16)
    write_rgba_folder(root / "test", per_class=6, seed=1)
    return root


@pytest.mark.slow                       # a whole RGBA pipeline
def test_a_folder_classifier_reads_rgba_over_its_background_and_evaluates(rgba_run, split_folder, tmp_path, capsys):
    import json

    from gan_pack.evaluate.classifier import OnnxClassifier

    code, out, err = run_cli(["train-classifier", "--dataset", "folder", "--data-dir", split_folder, "--image-size",
                              "32", "--channels", "4", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                              "-o", tmp_path / "c.onnx"], capsys)
    assert code == 0, err
    classifier = OnnxClassifier(tmp_path / "c.onnx")
    assert classifier.image_shape == (4, 32, 32) and classifier.class_names == ["discs", "squares"]
    assert len(classifier.per_class_test_accuracy) == 2
    images = np.random.default_rng(0).uniform(-1, 1, (5, 4, 32, 32)).astype(np.float32)
    images[:, 3, :16] = -1.0                                   # top half fully transparent ...
    recoloured = images.copy()
    recoloured[:, :3, :16] = 0.3                               # ... whatever colour it hides
    assert np.abs(classifier.run(images)[1] - classifier.run(recoloured)[1]).max() < 1e-5
    code, _, err = run_cli(["export", rgba_run / "run", "-o", tmp_path / "g.onnx"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", tmp_path / "g.onnx", "--classifier", tmp_path / "c.onnx", "--data-dir",
                              split_folder, "-n", "32", "--k", "3", "--json", tmp_path / "e.json"], capsys)
    assert code == 0, err
    assert "classifier on real test images" in out and "lowest class accuracy" in out
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["class_names"] == ["discs", "squares"] and len(report["per_class_real_test_accuracy"]) == 2
    assert 0 <= report["conditional_accuracy"] <= 1 and report["fcd_floor_train_vs_test"] > 0


def test_a_folder_without_its_splits_is_one_line(tmp_path, capsys):
    write_rgba_folder(tmp_path / "flat", per_class=2)
    code, _, err = run_cli(["train-classifier", "--dataset", "folder", "--data-dir", tmp_path / "flat",
                            "--image-size", "32", "--channels", "4", "-o", tmp_path / "c.onnx"], capsys)
    one_error_line(code, err, "no train/ folder", "test/")


@pytest.mark.slow                       # a whole RGBA pipeline
def test_a_run_from_before_folder_names_exports_with_its_folders_name(rgba_run, tmp_path, capsys):
    import torch

    ckpt = torch.load(rgba_run / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["dataset"]["name"] == "stickers"
    ckpt["dataset"]["name"] = "folder"                      # what runs recorded before
    torch.save(ckpt, tmp_path / "old.pt")
    code, _, err = run_cli(["export", tmp_path / "old.pt", "-o", tmp_path / "old.onnx"], capsys)
    assert code == 0, err
    assert OnnxGenerator(tmp_path / "old.onnx").info.dataset == "stickers"


def test_folder_dataset_names(tmp_path):
    from gan_pack.core.folder import folder_dataset_name

    (tmp_path / "my icons").mkdir()
    assert folder_dataset_name(tmp_path / "my icons") == "my icons"
    assert folder_dataset_name(str(tmp_path / "my icons") + "/") == "my icons"
    assert folder_dataset_name(None) == folder_dataset_name(tmp_path / ".hidden") == "folder"
    assert folder_dataset_name(tmp_path / ("x" * 65)) == folder_dataset_name(tmp_path / "mnist") == "folder"


def test_a_split_folder_trains_on_its_train_half(split_folder, tmp_path):
    from gan_pack.pytorch.config import TrainConfig
    from gan_pack.pytorch.data import load_dataset

    config = TrainConfig.from_dict(dict(model="cgan", dataset="folder", data_dir=str(split_folder), image_size=32,
                                        channels=4, out=str(tmp_path / "run")))
    images, _, info = load_dataset(config.recipe, str(split_folder))
    assert len(images) == 32 and info.class_names == ["discs", "squares"]        # train/: 2 x 16


@pytest.mark.slow                       # a whole RGBA pipeline
def test_serve_gives_rgba_pngs(rgba_run, tmp_path, capsys):
    pytest.importorskip("starlette")
    import io
    import urllib.request

    from conftest import serving
    from gan_pack.core.images import make_grid

    code, _, err = run_cli(["export", rgba_run / "run", "-o", tmp_path / "stickers.onnx"], capsys)
    assert code == 0, err
    with serving([tmp_path / "stickers.onnx"]) as url:
        with urllib.request.urlopen(f"http://{url}/v1/models/stickers/sample.png?n=4&seed=2&label=1") as r:
            picture = Image.open(io.BytesIO(r.read()))
    g = OnnxGenerator(tmp_path / "stickers.onnx")
    assert picture.mode == "RGBA"
    assert np.array_equal(np.asarray(picture), make_grid(g.generate(g.noise(4, 2), np.ones(4, np.int64))))


def test_a_data_notice_that_is_not_text_is_one_line(rgba_run, tmp_path, capsys):
    (tmp_path / "notice.bin").write_bytes(b"\xff\xfe\x00binary")
    code, _, err = run_cli(["pack", rgba_run / "run", "-o", tmp_path / "pkg", "--data-notice", tmp_path / "notice.bin"],
                           capsys)
    one_error_line(code, err, "not UTF-8 text")
    assert not (tmp_path / "pkg").exists()

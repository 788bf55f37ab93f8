"""`ganpack apply` and ImageModel.apply on real exported upscalers: tiles against the whole image, alpha
kept, gray and RGB inputs, size rules padded and cropped, files, folders and globs, the PNG written band
by band, and every bad input refused in one line with nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("spandrel")

from conftest import one_error_line, run_cli, shipped  # noqa: E402
from gan_pack.core.test_images import picture_like  # noqa: E402
from gan_pack.runtime.image_model import ImageModel, axis_tiles, ramp  # noqa: E402


@pytest.fixture
def upscalers(image_models):
    return image_models


def picture(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return (picture_like(1, c, h, w, seed=seed)[0].transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def test_tiles_weights_cover_every_pixel_once():
    spans = axis_tiles(100, 32, 8)
    assert spans[0] == (0, 32) and spans[-1][1] == 100
    total = np.zeros(100 * 2)
    for i, (a, b) in enumerate(spans):
        total[a * 2:b * 2] += ramp(spans, i, 2)
    assert np.allclose(total, 1.0)


@pytest.mark.slow
def test_tile_32_differs_from_the_whole_image_by_under_one_level(upscalers):
    model = ImageModel(upscalers["compact"])
    image = picture(77, 93, 3, seed=3)
    whole, tiled = model.apply(image, tile=0), model.apply(image, tile=32)
    assert whole.shape == tiled.shape == (154, 186, 3)
    assert np.abs(whole.astype(float) - tiled).mean() <= 1.0          # at most 1/255 mean on 8-bit output


@pytest.mark.slow
def test_rgba_through_an_rgb_model_keeps_its_alpha_and_gray_becomes_rgb(upscalers):
    model = ImageModel(upscalers["compact"])
    rgba = picture(20, 30, 4)
    rgba[:, :15, 3] = 0
    out = model.apply(rgba, tile=16, overlap=4)
    assert out.shape == (40, 60, 4)
    assert out[:, :26, 3].max() <= 40 and out[:, 34:, 3].min() >= 0   # transparent stays transparent
    alone = model.apply(np.repeat(rgba[:, :, 3:], 3, axis=2), tile=16, overlap=4)
    assert np.abs(out[:, :, 3].astype(int) - alone.mean(axis=2)).max() <= 1       # alpha ran as gray RGB
    assert model.apply(picture(9, 11, 1), tile=0).shape == (18, 22, 3)


@pytest.mark.slow
def test_sizes_the_model_cannot_take_are_padded_and_cropped(upscalers):
    model = ImageModel(upscalers["safmn"])
    assert model.spec.multiple_of == 8
    out = model.apply(picture(13, 21, 3), tile=0)
    assert out.shape == (26, 42, 3)


@pytest.mark.slow
def test_cli_applies_files_folders_and_globs_to_pngs(upscalers, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(picture(24, 16, 4), "RGBA").save(inputs / "a.png")
    Image.fromarray(picture(10, 12, 3)).save(inputs / "b.jpg")
    Image.fromarray(picture(8, 8, 3)).save(inputs / "c.webp")
    code, out, err = run_cli(["apply", upscalers["compact"], inputs, "-o", tmp_path / "out", "--tile", "16"], capsys)
    assert code == 0, err
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir()}
    assert sizes == {"a.png": (32, 48), "b.png": (24, 20), "c.png": (16, 16)}
    assert Image.open(tmp_path / "out" / "a.png").mode == "RGBA"
    code, out, err = run_cli(["apply", upscalers["compact"], str(inputs / "*.jpg"), "-o", tmp_path / "one.png"],
                             capsys)
    assert code == 0 and Image.open(tmp_path / "one.png").size == (24, 20), err
    expected = ImageModel(upscalers["compact"]).apply(np.asarray(Image.open(inputs / "b.jpg")))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), expected)


@pytest.mark.slow
def test_bad_inputs_get_one_line_and_nothing_is_written(upscalers, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(picture(16, 16, 3)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "text.png"
    text.write_text("not an image")
    model = upscalers["safmn"]
    out = tmp_path / "out"
    cases = [
        (["apply", model, good, truncated, "-o", out], "truncated"),
        (["apply", model, text, "-o", out / "x.png"], "not an image"),
        (["apply", model, good, "-o", out / "x.png", "--tile", "4"], "--tile 4"),
        (["apply", model, good, "-o", out / "x.png", "--tile", "100000000"], "over 4096"),
        (["apply", model, tmp_path / "missing.png", "-o", out / "x.png"], "does not exist"),
        (["apply", shipped("mnist-gan.onnx"), good, "-o", out / "x.png"], "takes noise"),
        (["sample", model, "-n", "2", "-o", out / "s.png"], "ganpack apply"),
        (["apply", upscalers["root"] / "weights.pth", good, "-o", out / "x.png"], "export it first"),
    ]
    for args, words in cases:
        code, _, err = run_cli(args, capsys)
        one_error_line(code, err, words)
        assert not out.exists(), args


def test_an_image_over_the_pixel_cap_is_refused_before_it_is_decoded(tmp_path):
    from gan_pack.core.image_files import ImageFileError, read_image

    big = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(big)
    with pytest.raises(ImageFileError, match="over the 1,000,000 pixels"):
        read_image(big, max_pixels=1_000_000)

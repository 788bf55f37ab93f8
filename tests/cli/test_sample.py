"""Sampling controls: one image per seed, truncation through every command, and animated walks."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import one_error_line, run_cli, shipped, write_tiny_idx
from gan_pack.core.images import to_uint8
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.walk import loop_noise, walk_frames


def test_seeds_give_image_0_of_each_seed(tmp_path, capsys):
    model = shipped("mnist-cgan.onnx")
    code, out, _ = run_cli(["sample", model, "--seeds", "3,7-9", "--label", "5", "--out-dir", tmp_path / "s"], capsys)
    assert code == 0 and "seedNNNN" in out
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["seed0003.png", "seed0007.png", "seed0008.png",
                                                                  "seed0009.png"]
    g = OnnxGenerator(model)
    expected = to_uint8(g.sample(1, labels=5, seed=8))[0, :, :, 0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s" / "seed0008.png")), expected)
    code, _, _ = run_cli(["sample", model, "--seeds", "0-19", "-o", tmp_path / "grid.png"], capsys)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert code == 0 and grid.shape[1] > 10 * 28 and (grid[28:40] > 0).any()          # captions under the tiles


def test_seeds_mistakes(tmp_path, capsys):
    model = shipped("mnist-cgan.onnx")
    for args, words in ((["--seeds", "0-3", "--per-class", "2"], "not --per-class"), (["--seeds", "x"], "--seeds"),
                        (["--truncation", "0.01"], "--truncation must be a number >= 0.1")):
        code, _, err = run_cli(["sample", model, *args, "-o", tmp_path / "x.png"], capsys)
        one_error_line(code, err, words)


def test_truncation_in_sample_and_its_batches(tmp_path, capsys):
    model = shipped("mnist-cgan-mlp.onnx")
    code, _, _ = run_cli(["sample", model, "-n", 30, "--truncation", "0.5", "-o", tmp_path / "t.npy"], capsys)
    g = OnnxGenerator(model)
    expected = g.sample(30, seed=0, truncation=0.5)
    assert code == 0 and np.array_equal(np.load(tmp_path / "t.npy"), expected)
    np.testing.assert_array_equal(g.sample(30, seed=0, truncation=0.5, batch_size=7), expected)
    assert not np.array_equal(g.sample(30, seed=0), expected)
    assert np.abs(g.noise(30, seed=0, truncation=0.5)).max() <= 0.5


def test_evaluate_records_truncation(tmp_path, capsys):
    data = write_tiny_idx(tmp_path / "data")
    code, out, _ = run_cli(["evaluate", shipped("mnist-cgan.onnx"), "--classifier", shipped("mnist-classifier.onnx"),
                            "--data-dir", data, "-n", 40, "--truncation", "0.7", "--json", tmp_path / "e.json"], capsys)
    result = json.loads((tmp_path / "e.json").read_text())
    assert code == 0 and result["truncation"] == 0.7 and result["noise"] == "portable" and "truncation 0.7" in out


def test_gif_walk_frames_decode_to_the_walk(tmp_path, capsys):
    model = shipped("mnist-cgan.onnx")
    code, out, err = run_cli(["interpolate", model, "--gif", tmp_path / "w.gif", "--points", 3, "--frames", 12,
                              "--fps", 10, "--seed", 4], capsys)
    assert code == 0, err
    gif = Image.open(tmp_path / "w.gif")
    assert gif.n_frames == 12 and gif.info["loop"] == 0 and gif.info["duration"] == 100
    g = OnnxGenerator(model)
    frames = walk_frames(g, loop_noise(g, 3, 12, 4))
    decoded = []
    for i in range(12):
        gif.seek(i)
        decoded.append(np.asarray(gif.convert("L")))
    expected0 = np.kron(frames[0][:, :, 0], np.ones((2, 2), np.uint8))                # 2x, nearest
    assert decoded[0].shape == expected0.shape and np.abs(decoded[0].astype(int) - expected0).max() <= 1
    assert np.abs(decoded[6].astype(int) - decoded[0]).mean() > 1                     # it moves
    walk = loop_noise(g, 3, 12, 4)
    np.testing.assert_allclose(walk[0], g.noise(3, seed=4)[0], atol=1e-6)           # frame 0 is point 0
    np.testing.assert_allclose(walk[4], g.noise(3, seed=4)[1], atol=1e-6)           # and 12/3 frames on, point 1


@pytest.mark.parametrize("args, words", [
    (["--points", "1"], "--points must be in 2.."),
    (["--frames", "2", "--points", "4"], "--frames must be in 4"),
    (["--fps", "0"], "--fps must be in 1..60"),
    (["-o", "x.png"], "not both"),
])
def test_gif_mistakes(tmp_path, capsys, args, words):
    args = [str(tmp_path / a) if a.endswith(".png") else a for a in args]
    code, _, err = run_cli(["interpolate", shipped("mnist-gan.onnx"), "--gif", tmp_path / "w.gif", *args], capsys)
    one_error_line(code, err, words)
    assert not (tmp_path / "w.gif").exists()


def test_gif_extension_and_unconditional_walk(tmp_path, capsys):
    code, _, err = run_cli(["interpolate", shipped("mnist-gan.onnx"), "--gif", tmp_path / "w.png"], capsys)
    one_error_line(code, err, "must end in .gif")
    code, _, _ = run_cli(["interpolate", shipped("mnist-gan.onnx"), "--gif", tmp_path / "w.gif", "--frames", 8],
                         capsys)
    assert code == 0 and Image.open(tmp_path / "w.gif").size == (2 * 32, 2 * 32)


def test_a_label_by_class_name_is_the_label_by_index(tmp_path, capsys):
    from conftest import EXPORTED

    package = EXPORTED / "emoji-cgan"
    if not package.is_dir():
        pytest.skip("the shipped emoji-cgan package is not in this checkout")
    names = OnnxGenerator(package).info.class_names
    index = names.index("smileys-emotion")
    for label, out in (("smileys-emotion", "named.npy"), (str(index), "index.npy")):
        code, _, err = run_cli(["sample", package, "-n", 3, "--label", label, "-o", tmp_path / out], capsys)
        assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "named.npy"), np.load(tmp_path / "index.npy"))
    code, _, err = run_cli(["sample", package, "-n", 2, "--labels", "flags,smileys-emotion", "-o", tmp_path / "l.npy"],
                           capsys)
    assert code == 0, err
    code, _, err = run_cli(["sample", package, "--label", "dinosaurs", "-o", tmp_path / "x.png"], capsys)
    one_error_line(code, err, "--label takes a class index or a class name (", "'dinosaurs'")

"""`ganpack train --model sr` on a folder of transparent PNGs: a few steps of the compact upscaler, its
run folder, its export detected as spandrel's Compact with the data set's name, its RGBA output; and the
recipes it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("spandrel")

from conftest import one_error_line, run_cli, write_rgba_folder  # noqa: E402
from gan_pack.pytorch.sr_train import degrade, premultiply  # noqa: E402
from gan_pack.runtime.image_model import ImageModel  # noqa: E402


def test_degrade_makes_small_8bit_images_that_keep_transparent_areas_transparent():
    hr = torch.zeros(4, 4, 32, 32)
    hr[:, :, 8:24, 8:24] = 1.0
    lr = degrade(hr, 4, torch.Generator().manual_seed(0))
    assert lr.shape == (4, 4, 8, 8)
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4)
    assert float(lr[:, 3, 0, 0].max()) <= 2 / 255 and float(premultiply(lr)[:, :3, 0, 0].max()) <= 2 / 255


@pytest.mark.slow
def test_train_sr_export_and_apply(tmp_path, capsys):
    data = tmp_path / "stickers"
    write_rgba_folder(data / "train", per_class=4, side=32)
    write_rgba_folder(data / "test", per_class=2, side=32, seed=1)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--model", "sr", "--dataset", "folder", "--channels", "4", "--image-size", "32",
                            "--scale", "4", "--width", "8", "--convs", "2", "--d-width", "8", "--batch-size", "4",
                            "--epochs", "2", "--adv-weight", "0.01", "--data-dir", data, "--device", "cpu",
                            "--out", run], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["adversarial"]
    assert (run / "samples" / "final.png").is_file()
    code, out, err = run_cli(["export", run, "-o", tmp_path / "sr.onnx"], capsys)
    assert code == 0, err
    model = ImageModel(tmp_path / "sr.onnx")
    assert model.spec.scale == 4 and model.spec.in_channels == 4 and model.spec.alpha
    assert model.info.raw["dataset"] == "stickers" and model.info.raw["arch"] == "Compact"
    out = model.apply(np.full((8, 8, 4), 200, np.uint8))
    assert out.shape == (32, 32, 4)


def test_sr_run_writes_its_generator_every_save_every_epochs_and_after_the_last(tmp_path):
    """--save-every 2 over 3 epochs: a run stopped during epoch 2 has written nothing yet; a whole
    one ends with generator.pth (the last epoch is always written)."""
    from conftest import tiny_config
    from gan_pack.pytorch.sr_train import GENERATOR_FILE, train_sr

    write_rgba_folder(tmp_path / "data" / "train", per_class=2, side=16)
    write_rgba_folder(tmp_path / "data" / "test", per_class=1, side=16, seed=1)
    settings = dict(model="sr", dataset="folder", channels=4, image_size=16, scale=2, width=8, convs=1,
                    batch_size=4, epochs=3, save_every=2)

    def stop_at_epoch_2(line):
        if line.startswith("epoch 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sr(tiny_config(tmp_path / "cut", tmp_path / "data", **settings), log=stop_at_epoch_2)
    assert (tmp_path / "cut" / "metrics.jsonl").is_file() and not (tmp_path / "cut" / GENERATOR_FILE).exists()
    whole = train_sr(tiny_config(tmp_path / "whole", tmp_path / "data", **settings), log=lambda line: None)
    assert (whole / GENERATOR_FILE).is_file()


@pytest.mark.parametrize("flags, words", [
    (["--dataset", "mnist"], "--dataset folder"),
    (["--dataset", "folder", "--scale", "5"], "--scale"),
    (["--dataset", "folder", "--image-size", "30"], "--image-size"),
])
def test_sr_recipes_it_refuses(tmp_path, capsys, flags, words):
    code, _, err = run_cli(["train", "--model", "sr", *flags, "--data-dir", tmp_path, "--out", tmp_path / "r"], capsys)
    one_error_line(code, err, words)
    assert not (tmp_path / "r").exists()

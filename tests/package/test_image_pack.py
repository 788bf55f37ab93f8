"""pack and verify of an image model: the package's files, its golden images checked anywhere, a
changed file found, the int8 variant judged by PSNR (and refused under its floor, nothing written),
--eval against bicubic on a folder's test images, and the model card's figures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import one_error_line, run_cli

pytestmark = pytest.mark.slow           # whole packs: exports, quantization, evaluation


def test_pack_verify_and_a_changed_file(image_models, tmp_path, capsys):
    test = tmp_path / "data" / "test" / "shapes"
    test.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(test / f"{i}.png")
    out = tmp_path / "pkg" / "up"
    code, _, err = run_cli(["pack", image_models["compact"], "-o", out, "--variants", "int8", "--eval",
                            "--data-dir", tmp_path / "data"], capsys)
    assert code == 0, err
    facts = json.loads((out / "up.json").read_text())
    assert facts["format"] == "gan_pack.image-package/1" and facts["spec"]["scale"] == 2
    int8 = next(f for f in facts["files"] if f["path"] == "up.int8.onnx")
    assert int8["psnr_vs_fp32_db"] >= 35
    assert facts["evaluation"]["images"] == 4 and "bicubic_rgb" in facts["evaluation"]["psnr_db"]
    card = (out / "README.md").read_text()
    assert "ganpack apply up/" in card and "bicubic" in card
    code, text, err = run_cli(["verify", out], capsys)
    assert code == 0 and "image 2 up.int8.onnx" in text, text + err
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    golden = json.loads((tampered / "up.golden.json").read_text())
    golden["vectors"][0]["outputs"]["up.onnx"] = golden["vectors"][1]["outputs"]["up.onnx"]
    (tampered / "up.golden.json").write_text(json.dumps(golden))
    code, text, err = run_cli(["verify", tampered], capsys)
    assert code == 1 and "SHA256SUMS" in text + err


def test_a_variant_under_its_floor_is_refused_with_its_figure(image_models, tmp_path, capsys, monkeypatch):
    from gan_pack.onnx_tools import image_variants

    monkeypatch.setitem(image_variants.PSNR_FLOOR, "int8", 99.0)
    code, _, err = run_cli(["pack", image_models["compact"], "-o", tmp_path / "p", "--variants", "int8"], capsys)
    last = err.strip().splitlines()[-1]            # after pack's progress lines
    assert code == 2 and "Traceback" not in err and last.startswith("error:"), err
    assert "int8 variant" in last and " dB from the fp32 model" in last and "99 dB floor" in last
    assert not (tmp_path / "p").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".p.")]


@pytest.mark.parametrize("flags", [["--variants", "fp16"], ["--eval"], ["--truncation", "1"]])
def test_image_pack_refuses_what_a_generator_takes(image_models, tmp_path, capsys, flags):
    code, _, err = run_cli(["pack", image_models["compact"], "-o", tmp_path / "p", *flags], capsys)
    one_error_line(code, err)
    assert not (tmp_path / "p").exists()

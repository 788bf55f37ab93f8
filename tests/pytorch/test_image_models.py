"""Image-to-image models through spandrel: detection (bare, params_ema, .safetensors, the old and new
ESRGAN key layouts), export with dynamic batch/height/width proven against spandrel's forward at two
sizes and batch 2, the architectures refused by name, and the CLI's export and inspect. Every
checkpoint is a state dict of spandrel's own classes with seeded random weights, written by the test."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

spandrel = pytest.importorskip("spandrel")

from conftest import one_error_line, run_cli  # noqa: E402
from gan_pack.pytorch.image_export import write_image_model  # noqa: E402
from gan_pack.pytorch.image_models import exportable_spandrel  # noqa: E402
from gan_pack.runtime.image_model import ImageModel  # noqa: E402


def build(module: str, cls: str, **kwargs) -> dict:
    import importlib

    torch.manual_seed(0)
    return getattr(importlib.import_module(f"spandrel.architectures.{module}"), cls)(**kwargs).state_dict()


def new_esrgan_layout(state: dict) -> dict:
    """The old ESRGAN keys (model.N...) renamed to BasicSR's RRDBNet layout, as Real-ESRGAN ships them."""
    names = {"model.0": "conv_first", "model.3": "conv_up1", "model.6": "conv_up2", "model.8": "conv_hr",
             "model.10": "conv_last"}
    blocks = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.RDB", k)))
    out = {}
    for key, value in state.items():
        m = re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key)
        if m:
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
        elif key.startswith(f"model.1.sub.{blocks}."):
            out["conv_body." + key.rsplit(".", 1)[1]] = value
        else:
            prefix, leaf = key.rsplit(".", 1)
            out[f"{names[prefix]}.{leaf}"] = value
    return out


CASES = {
    "esrgan-x4-old": (lambda: build("ESRGAN", "ESRGAN", num_filters=8, num_blocks=1, scale=4), 4, 3),
    "esrgan-x4-new": (lambda: new_esrgan_layout(build("ESRGAN", "ESRGAN", num_filters=8, num_blocks=1, scale=4)),
                      4, 3),
    "esrgan-x2-unshuffle": (lambda: new_esrgan_layout(build("ESRGAN", "ESRGAN", in_nc=12, num_filters=8,
                                                            num_blocks=1, scale=4, shuffle_factor=2)), 2, 3),
    "esrgan-x1-unshuffle": (lambda: build("ESRGAN", "ESRGAN", in_nc=48, num_filters=8, num_blocks=1, scale=4,
                                          shuffle_factor=4), 1, 3),
    "compact": (lambda: {"params": build("Compact", "Compact", num_feat=8, num_conv=2)}, 4, 3),
    "swiftsrgan": (lambda: build("SwiftSRGAN", "SwiftSRGAN", num_channels=8, num_blocks=1), 4, 3),
    "realcugan-2x": (lambda: build("RealCUGAN", "UpCunet2x"), 2, 3),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_named_architectures_export_with_parity_at_two_sizes(case, tmp_path):
    make, scale, channels = CASES[case]
    exportable = exportable_spandrel(make(), f"{case}.pth")
    assert exportable.spec.scale == scale
    report = write_image_model(exportable, tmp_path / "m.onnx")
    sizes = {(b.batch, b.height, b.width) for b in report.batches}
    assert report.ok and len(sizes) == 2 and {b for b, _, _ in sizes} == {1, 2}
    assert any(h != w for _, h, w in sizes)
    if exportable.spec.multiple_of == 1:                         # odd sizes where the rules allow them
        assert any(h % 2 or w % 2 for _, h, w in sizes)
    assert max(b.max_abs for b in report.batches) <= 1e-4
    model = ImageModel(tmp_path / "m.onnx")
    x = np.random.default_rng(1).integers(0, 256, (17, 23, channels), dtype=np.uint8)
    assert model.apply(x, tile=0).shape == (17 * scale, 23 * scale, channels)


@pytest.mark.slow
def test_compact_exports_and_a_third_size_matches_pytorch(tmp_path):
    """The graph is not fixed to its trace: a size it was neither traced nor proven at, through the runtime."""
    state = build("Compact", "Compact", num_feat=8, num_conv=2, upscale=2)
    exportable = exportable_spandrel({"params_ema": state}, "compact.pth")
    write_image_model(exportable, tmp_path / "c.onnx")
    model = ImageModel(tmp_path / "c.onnx")
    x = np.random.default_rng(0).random((3, 3, 31, 9), dtype=np.float32)
    with torch.no_grad():
        expected = exportable.module()(torch.from_numpy(x)).numpy()
    assert np.abs(model.run(x) - expected).max() <= 1e-4
    meta = json.loads(model.info.raw["gan_pack.spec"])
    assert meta["scale"] == 2 and meta["parity_sizes"] and model.info.raw["Image.NominalPixelRange"] == "Normalized_0_1"


@pytest.mark.slow
def test_cli_export_detects_safetensors_and_inspect_names_the_architecture(tmp_path, capsys):
    from safetensors.torch import save_file

    save_file(build("SwiftSRGAN", "SwiftSRGAN", num_channels=8, num_blocks=1, upscale_factor=2),
              str(tmp_path / "swift.safetensors"))
    code, out, err = run_cli(["inspect", tmp_path / "swift.safetensors"], capsys)
    assert code == 0 and "spandrel" in out and "SwiftSRGAN" in out and "scale" in out, err
    code, out, err = run_cli(["export", tmp_path / "swift.safetensors", "-o", tmp_path / "swift.onnx"], capsys)
    assert code == 0, err
    assert ImageModel(tmp_path / "swift.onnx").scale == 2


@pytest.mark.slow                       # two exports of an upscaler; the generator twin is quick
def test_a_bound_below_fp32_rounding_is_named_and_the_named_bound_exports(tmp_path, capsys):
    """An image model that misses --atol by fp32's own rounding: the one error line measures
    spandrel's fp32 forward against float64 on the same input and names the bound that accepts it;
    nothing is written, and an export at that bound goes through."""
    torch.save(build("Compact", "Compact", num_feat=16, num_conv=4, upscale=2), tmp_path / "c.pth")
    output = tmp_path / "c.onnx"
    code, _, err = run_cli(["export", tmp_path / "c.pth", "-o", output, "--atol", "1e-12"], capsys)
    line = err.strip().splitlines()[-1]                                # after the progress lines
    assert code == 2 and "Traceback" not in err and line.startswith("error:") and "float64" in line, err
    assert not list(tmp_path.glob("c.*.json")) and not output.exists()
    words = line.split()
    assert "fp32 rounding" in line and "accepts" in words, line
    suggested = words[words.index("--atol") + 1]
    assert 1e-12 < float(suggested) < 1e-3
    code, _, err = run_cli(["export", tmp_path / "c.pth", "-o", output, "--atol", suggested], capsys)
    assert code == 0 and output.exists(), err


@pytest.mark.slow
def test_refused_architectures_name_the_construct_and_write_nothing(tmp_path, capsys):
    torch.save(build("FFTformer", "FFTformer", dim=8, num_blocks=[1, 1, 1], num_refinement_blocks=1),
               tmp_path / "fft.pth")
    code, _, err = run_cli(["export", tmp_path / "fft.pth", "-o", tmp_path / "fft.onnx"], capsys)
    one_error_line(code, err, "FFTformer", "fft")
    torch.save(build("LaMa", "LaMa"), tmp_path / "lama.pth")
    code, _, err = run_cli(["export", tmp_path / "lama.pth", "-o", tmp_path / "lama.onnx"], capsys)
    one_error_line(code, err, "LaMa", "mask")
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.parity.json"))


@pytest.mark.slow
def test_export_of_a_generator_is_not_taken_for_an_image_model(tmp_path, capsys):
    """A state dict spandrel does not know says why for every family, spandrel's included."""
    torch.save({"weight": torch.zeros(3, 3)}, tmp_path / "odd.pth")
    code, _, err = run_cli(["export", tmp_path / "odd.pth", "-o", tmp_path / "odd.onnx"], capsys)
    one_error_line(code, err, "spandrel:")


@pytest.mark.slow
def test_gfpgan_exports_at_512_with_its_noise_off(tmp_path):
    """GFPGAN's modulated convolutions (runtime weights) rewritten, its in-forward noise the stored one."""
    exportable = exportable_spandrel(build("GFPGAN", "GFPGAN"), "GFPGANv1.4.pth")
    assert exportable.spec.fixed == 512 and exportable.spec.scale == 1
    report = write_image_model(exportable, tmp_path / "gfpgan.onnx")
    assert report.ok and max(b.max_abs for b in report.batches) <= 1e-4
    assert {(b.height, b.width) for b in report.batches} == {(512, 512)}

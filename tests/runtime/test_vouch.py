"""A package folder runs only the model files it vouches for: a regular file of the folder, listed in
its manifest with the SHA-256 it has. A replaced, edited or linked model file is refused in one line
before onnxruntime reads it, whichever command or API opens the folder; a lone .onnx runs as before."""

import json
import shutil

import numpy as np
import pytest

from conftest import EXPORTED, one_error_line, run_cli
from gan_pack.errors import ModelError
from gan_pack.runtime.generator import OnnxGenerator

SOURCE = EXPORTED / "mnist-cgan"


@pytest.fixture
def package(tmp_path):
    if not (SOURCE / "mnist-cgan.cuda.onnx").is_file():
        pytest.skip("the shipped mnist-cgan package is not in this checkout")
    copy = tmp_path / "mnist-cgan"
    shutil.copytree(SOURCE, copy)
    return copy


def other_model(tmp_path):
    """A real generator that follows the same contract but draws something else."""
    other = EXPORTED / "fashion-mnist-cgan" / "fashion-mnist-cgan.onnx"
    if not other.is_file():
        pytest.skip(f"{other} is not in this checkout")
    return other


def test_an_intact_copy_runs_every_model_it_lists(package):
    for variant in ("main", "cuda"):
        g = OnnxGenerator(package, variant=variant)
        assert g.variant == variant and g.sample(2, labels=1, seed=0).shape == (2, 1, 28, 28)


def test_a_replaced_variant_is_refused_before_it_runs(package, tmp_path, capsys):
    shutil.copyfile(other_model(tmp_path), package / "mnist-cgan.cuda.onnx")
    out = tmp_path / "o.png"
    code, _, err = run_cli(["sample", package, "--variant", "cuda", "-n", 4, "--label", 1, "-o", out], capsys)
    one_error_line(code, err, "mnist-cgan.cuda.onnx", "SHA-256 does not match", "not run")
    assert not out.exists()
    # the files it did not touch still run
    assert OnnxGenerator(package, variant="main").sample(1, labels=0, seed=0).shape == (1, 1, 28, 28)


def test_an_edited_main_model_is_refused_by_every_opener(package, tmp_path, capsys):
    model = package / "mnist-cgan.onnx"
    data = bytearray(model.read_bytes())
    data[-1000] ^= 1                                   # one bit of a weight
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256 does not match"):
        OnnxGenerator(package)
    for args in (["info", package], ["interpolate", package, "--steps", 3, "-o", tmp_path / "w.png"],
                 ["sample", package, "-n", 2, "-o", tmp_path / "s.png"]):
        code, _, err = run_cli(args, capsys)
        one_error_line(code, err, "mnist-cgan.onnx", "SHA-256 does not match")
    assert not (tmp_path / "w.png").exists() and not (tmp_path / "s.png").exists()


def test_a_model_file_that_is_a_link_is_never_followed(package, tmp_path, capsys):
    outside = tmp_path / "elsewhere.onnx"
    shutil.copyfile(package / "mnist-cgan.cuda.onnx", outside)      # even the right bytes
    (package / "mnist-cgan.cuda.onnx").unlink()
    (package / "mnist-cgan.cuda.onnx").symlink_to(outside)
    code, _, err = run_cli(["sample", package, "--variant", "cuda", "-n", 2, "-o", tmp_path / "o.png"], capsys)
    one_error_line(code, err, "mnist-cgan.cuda.onnx", "symbolic link")


def test_a_fifo_in_place_of_a_model_does_not_hang(package, tmp_path, capsys):
    import os

    (package / "mnist-cgan.onnx").unlink()
    os.mkfifo(package / "mnist-cgan.onnx")
    code, _, err = run_cli(["info", package], capsys)
    one_error_line(code, err, "mnist-cgan.onnx", "not a regular file")


def test_a_folder_whose_manifest_is_gone_runs_nothing(package, tmp_path, capsys):
    (package / "mnist-cgan.json").unlink()
    code, _, err = run_cli(["sample", package, "-n", 2, "-o", tmp_path / "o.png"], capsys)
    one_error_line(code, err, "no readable manifest", "mnist-cgan.onnx")


def test_a_manifest_pointing_at_another_listed_file_as_the_variant_is_refused(package, tmp_path, capsys):
    """The manifest is the package's word: rewriting a digest there without the file is caught too."""
    manifest = json.loads((package / "mnist-cgan.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "mnist-cgan.cuda.onnx":
            entry["sha256"] = "0" * 64
    (package / "mnist-cgan.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="mnist-cgan.cuda.onnx: its SHA-256"):
        OnnxGenerator(package, variant="cuda")


def test_a_lone_onnx_runs_as_before(package, tmp_path):
    lone = tmp_path / "lone.onnx"
    shutil.copyfile(other_model(tmp_path), lone)
    images = OnnxGenerator(lone).sample(2, labels=3, seed=0)
    assert images.shape == (2, 1, 28, 28) and np.isfinite(images).all()


def test_pack_does_not_launder_a_tampered_package(package, tmp_path, capsys):
    """Packing a package again re-signs what it packs: a model the source does not vouch for is refused."""
    pytest.importorskip("onnx")
    model = package / "mnist-cgan.onnx"
    data = bytearray(model.read_bytes())
    data[-1000] ^= 1
    model.write_bytes(bytes(data))
    code, _, err = run_cli(["pack", package, "-o", tmp_path / "clean"], capsys)
    one_error_line(code, err, "mnist-cgan.onnx", "SHA-256 does not match")
    assert not (tmp_path / "clean").exists()

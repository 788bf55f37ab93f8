"""The torch-free commands (sample, interpolate, info) through the real entry point."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, one_error_line, run_cli, shipped


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("ganpack ")


@pytest.mark.parametrize("command", ["train", "export", "sample", "interpolate", "info", "evaluate",
                                     "train-classifier"])
def test_help_has_an_example(capsys, command):
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0 and "Example" in out


def test_sample_per_class_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, err = run_cli(["sample", shipped("mnist-cgan.onnx"), "--per-class", "3", "-o", out], capsys)
    assert code == 0, err
    image = np.asarray(Image.open(out))
    assert image.shape == (10 * 30 + 2, 3 * 30 + 2)             # 10 rows of 3, 28px + 2px padding


def test_sample_npy_matches_api(tmp_path, capsys):
    from gan_pack.runtime.generator import OnnxGenerator

    out = tmp_path / "x.npy"
    code, _, err = run_cli(["sample", shipped("mnist-cgan.onnx"), "-n", "6", "--labels", "1,2", "--seed", "4",
                            "--format", "npy", "-o", out], capsys)
    assert code == 0, err
    want = OnnxGenerator(shipped("mnist-cgan.onnx")).sample(6, [1, 2, 1, 2, 1, 2], seed=4)
    assert np.array_equal(np.load(out), want)


def test_sample_out_dir_streams_one_file_each(tmp_path, capsys):
    code, _, err = run_cli(["sample", shipped("mnist-gan.onnx"), "-n", "25", "--batch-size", "10",
                            "--out-dir", tmp_path / "imgs"], capsys)
    assert code == 0, err
    files = sorted((tmp_path / "imgs").iterdir())
    assert [f.name for f in files][:2] == ["000000.png", "000001.png"] and len(files) == 25
    assert np.asarray(Image.open(files[0])).shape == (28, 28)


def test_interpolate_rows_per_class(tmp_path, capsys):
    out = tmp_path / "walk.png"
    code, _, err = run_cli(["interpolate", shipped("mnist-cgan.onnx"), "--steps", "6", "-o", out], capsys)
    assert code == 0, err
    assert np.asarray(Image.open(out)).shape == (10 * 30 + 2, 6 * 30 + 2)


def test_info_prints_contract(capsys):
    code, out, _ = run_cli(["info", shipped("mnist-cgan.onnx")], capsys)
    assert code == 0
    for word in ("noise", "labels", "images", "'batch'", "parity", "providers", "MB", "noise_distribution"):
        assert word in out, word


@pytest.mark.parametrize("args,words", [
    (["sample", "missing.onnx", "-o", "{out}"], ["does not exist"]),
    (["sample", "{gan}", "--label", "3", "-o", "{out}"], ["unconditional"]),
    (["sample", "{cgan}", "--label", "10", "-o", "{out}"], ["out of range"]),
    (["sample", "{cgan}", "--labels", "1,x", "-o", "{out}"], ["--labels"]),
    (["sample", "{cgan}", "-n", "0", "-o", "{out}"], ["-n"]),
    (["sample", "{cgan}", "-n", "-3", "-o", "{out}"], ["-n"]),
    (["sample", "{cgan}", "--device", "tpu", "-o", "{out}"], ["device"]),
    (["sample", "{cgan}", "--label", "1", "--per-class", "2", "-o", "{out}"], ["only one"]),
    (["sample", "{cgan}", "--format", "jpg", "-o", "{out}"], ["--format"]),
    (["info", "{notonnx}"], ["not a loadable ONNX model"]),
    (["info", "{classifier}"], ["classifier"]),
    (["interpolate", "{gan}", "--label", "2", "-o", "{out}"], ["unconditional"]),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, args, words):
    (tmp_path / "notes.onnx").write_text("hello")
    paths = {"{gan}": str(shipped("mnist-gan.onnx")), "{cgan}": str(shipped("mnist-cgan.onnx")),
             "{notonnx}": str(tmp_path / "notes.onnx"), "{out}": str(tmp_path / "o.png"),
             "{classifier}": str(shipped("mnist-classifier.onnx"))}
    code, _, err = run_cli([paths.get(a, a) for a in args], capsys)
    one_error_line(code, err, *words)
    assert not (tmp_path / "o.png").exists()


def test_cuda_without_provider(tmp_path, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    code, _, err = run_cli(["sample", shipped("mnist-cgan.onnx"), "--device", "cuda", "-o", tmp_path / "o.png"], capsys)
    one_error_line(code, err, "onnxruntime-gpu")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path, capsys):  # pragma: no cover - CI runs as root
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run_cli(["sample", shipped("mnist-cgan.onnx"), "--out-dir", locked / "x"], capsys)
    one_error_line(code, err, "cannot create")


def test_output_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["sample", shipped("mnist-cgan.onnx"), "--out-dir", tmp_path / "file" / "imgs"], capsys)
    one_error_line(code, err, "cannot create")


def test_console_script_process(tmp_path):
    """`python -m gan_pack` as a whole process: exit codes and stderr as a user sees them."""
    bad = subprocess.run([sys.executable, "-m", "gan_pack", "sample", str(shipped("mnist-cgan.onnx")),
                          "--label", "99"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "out of range" in bad.stderr
    good = subprocess.run([sys.executable, "-m", "gan_pack", "sample", str(shipped("mnist-cgan.onnx")),
                           "-n", "4", "-o", str(tmp_path / "s.png")], capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0 and (tmp_path / "s.png").is_file()


def test_bare_command_prints_the_help(capsys):
    code, out, err = run_cli([], capsys)
    assert code == 0 and "Usage" in out and "sample" in out and not err


def test_train_help_groups_its_options_into_panels(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    panels = [out.index(p) for p in ("Start here", "Data", "Networks and loss", "Optimizer and EMA",
                                     "Where it runs", "In-training evaluation")]
    assert panels == sorted(panels) and out.index("--model") < panels[1] and out.index("--out") < panels[1]


@pytest.mark.parametrize("command", [["quantize"], ["optimize"], ["pack", "-o", "{tmp}/pkg"]])
def test_commands_that_write_onnx_say_when_onnx_is_missing(tmp_path, capsys, monkeypatch, command):
    """The runtime install has no onnx package: one line that names it, and nothing written."""
    monkeypatch.setitem(sys.modules, "onnx", None)                # `import onnx` raises ImportError
    args = [command[0], shipped("mnist-cgan.onnx"), *[a.replace("{tmp}", str(tmp_path)) for a in command[1:]]]
    if command[0] != "pack":
        args += ["-o", tmp_path / "x.onnx"]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, f"{command[0]} needs the onnx package")
    assert list(tmp_path.iterdir()) == []

"""Absurd or mistaken requests: output paths that are not regular files or whose extension lies,
numeric flags out of range, requests too large for memory, and streams that must stay bounded."""

import os
import pty
import stat
import subprocess
import tracemalloc

import numpy as np
import pytest

from conftest import ROOT, ganpack_command, one_error_line, run_cli, shipped
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.labels import LabelRequest

torch_needed = pytest.mark.torch


# ---------------------------------------------------------------- output paths

def test_symlink_output_is_refused_and_left_alone(tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "out.png"
    link.symlink_to(target)
    code, _, err = run_cli(["sample", shipped("mnist-gan.onnx"), "-n", 4, "-o", link], capsys)
    one_error_line(code, err, "symbolic link")
    assert link.is_symlink() and target.read_text() == "keep me"


def test_folder_fifo_and_device_outputs_are_refused(tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    (tmp_path / "dir.png").mkdir()
    outputs = [(tmp_path / "dir.png", "is a folder"), (fifo, "not a regular file")]
    try:
        os.mknod(tmp_path / "null.png", 0o666 | stat.S_IFCHR, os.makedev(1, 3))      # /dev/null's numbers
        outputs.append((tmp_path / "null.png", "not a regular file"))
    except PermissionError:
        pass
    for path, words in outputs:
        code, _, err = run_cli(["interpolate", shipped("mnist-gan.onnx"), "-o", path], capsys)
        one_error_line(code, err, words)
        assert not path.is_file()                                   # still what it was
    code, _, err = run_cli(["sample", shipped("mnist-gan.onnx"), "--out-dir", "/dev/null"], capsys)
    one_error_line(code, err, "not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write read-only files")
def test_read_only_output_is_refused(tmp_path, capsys):  # pragma: no cover - CI runs as root
    path = tmp_path / "ro.png"
    path.write_bytes(b"old")
    path.chmod(0o444)
    code, _, err = run_cli(["sample", shipped("mnist-gan.onnx"), "-o", path], capsys)
    one_error_line(code, err, "read-only")


@pytest.mark.parametrize("args, words", [
    (["sample", "{gan}", "-o", "x.jpg"], "must end in .png"),
    (["sample", "{gan}", "--format", "npy", "-o", "x.png"], "does not match"),
    (["interpolate", "{gan}", "-o", "walk.npy"], "must end in .png"),
    (["evaluate", "{gan}", "--classifier", "{gan}", "--data-dir", ".", "--json", "e.txt"], "must end in .json"),
    (["report", "{run}", "-o", "r.png"], "must end in .html"),
    (["report", "{run}", "--png", "r.jpg"], "must end in .png"),
    (["quantize", "{gan}", "-o", "q.int8"], "must end in .onnx"),
])
def test_extension_must_match_what_is_written(tmp_path, capsys, args, words):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    paths = {"{gan}": str(shipped("mnist-gan.onnx")), "{run}": str(tmp_path / "run")}
    args = [paths.get(a, a) for a in args]
    args = [str(tmp_path / a) if "." in a and not a.startswith("/") and a != "." else a for a in args]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, words)


def test_npy_extension_picks_the_format(tmp_path, capsys):
    code, _, err = run_cli(["sample", shipped("mnist-gan.onnx"), "-n", 3, "-o", tmp_path / "x.npy"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "x.npy").shape == (3, 1, 28, 28)


@torch_needed
def test_torch_commands_check_outputs_before_work(tmp_path, capsys, tiny_idx, trained_runs):
    (tmp_path / "c.onnx").mkdir()
    code, _, err = run_cli(["train-classifier", "--data-dir", tiny_idx, "-o", tmp_path / "c.onnx"], capsys)
    one_error_line(code, err, "is a folder")                    # one line: no epoch was trained
    code, _, err = run_cli(["export", trained_runs[("gan", "mlp")], "-o", tmp_path / "g.txt"], capsys)
    one_error_line(code, err, "must end in .onnx")
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "file"], capsys)
    one_error_line(code, err, "not a folder")


# ---------------------------------------------------------------- numeric flags

@pytest.mark.parametrize("args, words", [
    (["sample", "{gan}", "--threads", "1000"], "--threads must be in 1.."),
    (["sample", "{gan}", "--threads", "0"], "--threads must be in 1.."),
    (["sample", "{gan}", "--seed", "-1"], "--seed must be an integer in 0..4294967295"),
    (["sample", "{gan}", "--seed", "4294967296"], "--seed must be an integer in 0..4294967295"),
    (["sample", "{gan}", "--batch-size", "0"], "batch_size must be an integer in"),
    (["sample", "{gan}", "--batch-size", "4096", "-n", "8192", "-o", "x.npy"],
     "--batch-size 4096 would take about 2.4 GiB of activations"),    # mnist-gan: 320 KB an image
    (["sample", "{gan}", "--seeds", "0-3", "-n", "5"], "--seeds gives one image per seed: drop -n"),
    (["sample", "{gan}", "--seeds", "0-3", "--seed", "1"], "drop --seed"),
    (["sample", "{gan}", "--seeds", "1,,2"], "--seeds takes seeds and ranges"),
    (["sample", "{gan}", "-n", "1000000000", "-o", "big.png"], "GiB in one array"),
    (["sample", "{gan}", "-n", "100000000000", "-o", "big.npy"], "GiB free (the disk is full for it)"),
    (["sample", "{cgan}", "--per-class", "1000000000000"], "--per-class must be in"),
    (["sample", "{gan}", "--nrow", "0"], "--nrow must be in 1..10000"),
    (["sample", "{gan}", "--nrow", str(2**64)], "--nrow must be in 1..10000"),
    (["evaluate", "{cgan}", "--classifier", "{cls}", "--data-dir", ".", "--seed", "-1"],
     "--seed must be an integer in 0..4294967295"),
    (["sample", "{gan}", "--truncation", "1e400"], "--truncation must be a number >= 0.1"),
    (["interpolate", "{gan}", "--steps", "100000"], "--steps must be in 2..1000"),
    (["evaluate", "{cgan}", "--classifier", "{cls}", "--data-dir", ".", "-n", "2"], "-n must be in 16.."),
    (["evaluate", "{cgan}", "--classifier", "{cls}", "--data-dir", ".", "-n", "20", "--k", "20"],
     "--k must be in 1..19"),
    (["evaluate", "{cgan}", "--classifier", "{cls}", "--data-dir", ".", "--k", "0"], "--k must be in"),
    (["quantize", "{gan}", "--atol", "nan", "-o", "q.onnx"], "--atol must be a positive number"),
    pytest.param(["train", "--lr", "nan"], "--lr", marks=pytest.mark.torch),
    pytest.param(["train", "--lr", "inf"], "--lr must be a finite number", marks=pytest.mark.torch),
    pytest.param(["train", "--r1", "nan"], "--r1", marks=pytest.mark.torch),
    pytest.param(["train", "--seed", "-3"], "--seed must be in 0..", marks=pytest.mark.torch),
    pytest.param(["train", "--noise-dim", "1000000"], "--noise-dim must be at most 4096", marks=pytest.mark.torch),
    pytest.param(["train", "--batch-size", "10000000"], "--batch-size must be at most", marks=pytest.mark.torch),
    pytest.param(["train", "--epochs", "1000000000"], "--epochs must be at most", marks=pytest.mark.torch),
    pytest.param(["train", "--eval-n", "5"], "--eval-n must be at least 16", marks=pytest.mark.torch),
])
def test_numeric_flags_out_of_range(tmp_path, capsys, args, words):
    paths = {"{gan}": str(shipped("mnist-gan.onnx")), "{cgan}": str(shipped("mnist-cgan.onnx")),
             "{cls}": str(shipped("mnist-classifier.onnx"))}
    args = [paths.get(a, a) for a in args]
    args = [str(tmp_path / a) if a.endswith((".png", ".npy", ".onnx")) and "/" not in a else a for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, words)
    assert not (tmp_path / "run").exists() and not any(tmp_path.glob("big.*"))


# ---------------------------------------------------------------- bounded memory

def test_streaming_any_n_holds_one_batch(tmp_path):
    """2*10^8 images by --per-class: the first batches come without building 2*10^8 labels (1.6 GB)."""
    generator = OnnxGenerator(shipped("mnist-cgan.onnx"), batch_size=256)
    request = LabelRequest.parse(10, 0, per_class=20_000_000)
    tracemalloc.start()
    batches = generator.iter_batches(request.n, request.labels, seed=0)
    starts = [next(batches)[0] for _ in range(3)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert request.n == 200_000_000 and starts == [0, 256, 512]
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB"                 # one batch is 0.8 MiB of images


def test_per_class_labels_are_the_same_as_before(tmp_path):
    generator = OnnxGenerator(shipped("mnist-cgan.onnx"))
    request = LabelRequest.parse(10, 0, per_class=3)
    assert list(generator.resolve_labels(request.n, request.labels)) == [c for c in range(10) for _ in range(3)]
    cycled = LabelRequest.parse(10, 7, labels="4,2")
    assert list(generator.resolve_labels(7, cycled.labels)) == [4, 2, 4, 2, 4, 2, 4]
    a = generator.sample(30, request.labels, seed=1)
    b = generator.sample(30, np.repeat(np.arange(10), 3), seed=1)
    np.testing.assert_array_equal(a, b)


def test_out_dir_is_sharded_in_folders_of_1000(tmp_path, capsys):
    code, out, _ = run_cli(["sample", shipped("mnist-gan.onnx"), "-n", 1001, "--out-dir", tmp_path / "many"], capsys)
    assert code == 0 and "subfolders of 1000" in out
    assert len(list((tmp_path / "many" / "0000").glob("*.png"))) == 1000
    assert [p.name for p in (tmp_path / "many" / "0001").iterdir()] == ["001000.png"]
    code, _, _ = run_cli(["sample", shipped("mnist-gan.onnx"), "-n", 5, "--out-dir", tmp_path / "few"], capsys)
    assert sorted(p.name for p in (tmp_path / "few").iterdir()) == [f"{i:06d}.png" for i in range(5)]


@pytest.mark.slow                       # a real terminal (a pty) around a separate process
def test_progress_bar_on_a_terminal(tmp_path):
    leader, follower = pty.openpty()
    process = subprocess.Popen(ganpack_command("sample", shipped("mnist-gan.onnx"), "-n", 3000, "--out-dir",
                                               tmp_path / "imgs"), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=120) == 0
    assert b"/3000" in shown


# ---------------------------------------------------------------- wrong pairings

@pytest.mark.onnx
def test_classifier_of_another_data_set_is_refused(tmp_path, capsys):
    import onnx

    model = onnx.load(str(shipped("mnist-cgan.onnx")))
    for entry in model.metadata_props:
        if entry.key == "dataset":
            entry.value = "fashion-mnist"
    onnx.save(model, str(tmp_path / "fashion.onnx"))
    code, _, err = run_cli(["evaluate", tmp_path / "fashion.onnx", "--classifier", shipped("mnist-classifier.onnx"),
                            "--data-dir", tmp_path, "-n", 16], capsys)
    one_error_line(code, err, "trained on fashion-mnist but the classifier on mnist")


@torch_needed
def test_in_training_evaluation_with_another_data_sets_classifier(tmp_path, tiny_idx):
    from conftest import tiny_config
    from gan_pack.errors import ConfigError
    from gan_pack.pytorch.train import train

    config = tiny_config(tmp_path / "run", tiny_idx, dataset="fashion-mnist", eval_every=1,
                         classifier=str(shipped("mnist-classifier.onnx")))
    with pytest.raises(ConfigError, match="trained on mnist, but the run trains on fashion-mnist"):
        train(config)
    assert not (tmp_path / "run").exists()

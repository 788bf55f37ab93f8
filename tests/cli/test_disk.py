"""A full disk, for real: every command that writes runs against a small tmpfs filled to the last
byte (mounted in a private mount namespace with `unshare`, so the test needs no root and leaves
nothing mounted). Each must say so in one line, exit 2, leave older files byte for byte, leave no
temp file and no empty run folder."""

import shutil
import subprocess

import pytest

from conftest import ROOT, ganpack_command, shipped


def small_tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d"],
                           capture_output=True)
    return probe.returncode == 0


pytestmark = [pytest.mark.slow, pytest.mark.torch,
              pytest.mark.skipif(not small_tmpfs_available(),
                                 reason="cannot mount a tmpfs here (unshare -rm and mount -t tmpfs)")]


def test_every_writing_command_on_a_full_disk(tmp_path, trained_runs, tiny_idx):
    disk, results = tmp_path / "disk", tmp_path / "results"
    disk.mkdir()
    results.mkdir()
    model, classifier = shipped("mnist-cgan-mlp.onnx"), shipped("mnist-classifier.onnx")
    old = tmp_path / "old"                       # what lies on the disk before it fills up
    shutil.copytree(trained_runs[("cgan", "mlp")], old / "run")
    (old / "old.png").write_bytes(b"an older file")
    (old / "old.onnx").write_bytes(b"an older model")

    commands = {
        "train": ["train", "--model", "cgan", "--epochs", 1, "--batch-size", 16, "--width", 8, "--device", "cpu",
                  "--data-dir", tiny_idx, "--out", disk / "newrun"],
        "resume": ["train", "--resume", "--epochs", 2, "--out", disk / "run", "--data-dir", tiny_idx],
        "export": ["export", disk / "run", "-o", disk / "old.onnx"],
        "sample": ["sample", model, "-n", 16, "-o", disk / "old.png"],
        "sample_npy": ["sample", model, "-n", 16, "-o", disk / "new.npy"],
        "sample_dir": ["sample", model, "-n", 16, "--out-dir", disk / "images"],
        "interpolate": ["interpolate", model, "-o", disk / "walk.png"],
        "report": ["report", disk / "run", "-o", disk / "report.html"],
        "report_png": ["report", disk / "run", "-o", tmp_path / "report.html", "--png", disk / "summary.png"],
        "quantize": ["quantize", model, "-o", disk / "q.onnx"],
        "evaluate": ["evaluate", model, "--classifier", classifier, "--data-dir", tiny_idx, "-n", 16,
                     "--json", disk / "e.json"],
        "train_classifier": ["train-classifier", "--data-dir", tiny_idx, "--epochs", 1, "--batch-size", 16,
                             "--device", "cpu", "-o", disk / "c.onnx"],
    }
    lines = [f"mount -t tmpfs -o size=64m tmpfs {disk}", f"cp -r {old}/. {disk}/",
             f"dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null || true", f"cd {ROOT}"]
    for name, args in commands.items():
        command = " ".join(f"'{a}'" for a in ganpack_command(*args))
        lines.append(f"{command} >{results}/{name}.out 2>{results}/{name}.err; echo $? >{results}/{name}.rc")
    lines.append(f"ls -A {disk} > {results}/listing; ls -A {disk}/run > {results}/run_listing")
    lines.append(f"cmp {disk}/run/checkpoint.pt {old}/run/checkpoint.pt && echo same > {results}/checkpoint")
    lines.append(f"cmp {disk}/old.png {old}/old.png && cmp {disk}/old.onnx {old}/old.onnx && echo same > {results}/old")
    script = tmp_path / "full_disk.sh"
    script.write_text("set -u\n" + "\n".join(lines) + "\n")
    done = subprocess.run(["unshare", "-rm", "bash", str(script)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr

    for name in commands:
        rc, err = (results / f"{name}.rc").read_text().strip(), (results / f"{name}.err").read_text()
        assert rc == "2" and "Traceback" not in err, (name, rc, err)
        error = [line for line in err.strip().splitlines() if line.startswith("error:")]
        assert len(error) == 1 and "disk is full" in error[0], (name, err)
    listing = (results / "listing").read_text().split()
    assert sorted(listing) == sorted(["filler", "old.onnx", "old.png", "run"]), listing       # nothing new, no temps
    assert not [f for f in (results / "run_listing").read_text().split() if f.endswith(".tmp")]
    assert (results / "checkpoint").read_text().strip() == "same"
    assert (results / "old").read_text().strip() == "same"

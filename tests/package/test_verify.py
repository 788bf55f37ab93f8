"""verify against a forger: a shipped package copied, changed the way an attacker would (and re-signed
with fresh checksums, as a careful one would), and verified. Every change fails with exit 1 and one
line naming it; nothing outside the folder is opened. Base install only (no torch, no onnx)."""

import json
import os
import shutil

import pytest

from conftest import EXPORTED, one_error_line, run_cli, shipped
from gan_pack.contract.package_format import SUMS
from gan_pack.core.files import file_sha256
from gan_pack.package.manifest import write_sums

NAME = "mnist-gan"


@pytest.fixture
def package(tmp_path):
    folder = tmp_path / "pkg" / NAME
    shutil.copytree(EXPORTED / NAME, folder)
    return folder


def edit_json(path, change):
    """Change the JSON document in place (change mutates it)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def resign(folder):
    """What a forger does last: the manifest's own list of hashes, then SHA256SUMS, made anew."""
    manifest = folder / f"{NAME}.json"
    try:
        data = json.loads(manifest.read_text())
    except RecursionError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("files"), list):
        for entry in data["files"]:
            path = folder / str(entry.get("path")) if isinstance(entry, dict) else None
            if path is not None and path.is_file() and path.parent == folder:
                entry.update(bytes=path.stat().st_size, sha256=file_sha256(path))
        manifest.write_text(json.dumps(data))
    (folder / SUMS).unlink()
    write_sums(folder)


def files(data):
    return data["files"]


def main_entry(data):
    return next(e for e in data["files"] if e["path"] == f"{NAME}.onnx")


def swap_model(folder):
    """Another generator put in place of the model, dropped from the manifest so its hash is not checked."""
    shutil.copy(shipped("mnist-cgan-mlp.onnx"), folder / f"{NAME}.onnx")
    edit_json(folder / f"{NAME}.json", lambda d: d.update(files=[e for e in d["files"] if e["path"] != f"{NAME}.onnx"]))


FORGERIES = {
    "swap the model, drop it from the manifest": (swap_model, "must hold NAME.onnx"),
    "empty the file list": (lambda f: edit_json(f / f"{NAME}.json", lambda d: d.update(files=[])),
                            "files is not a list of 1..64"),
    "remove the precision": (lambda f: edit_json(f / f"{NAME}.json", lambda d: main_entry(d).pop("precision")),
                             ".precision must name the precision"),
    "a path out of the package": (lambda f: edit_json(f / f"{NAME}.json",
                                                      lambda d: d["files"].append({**files(d)[0], "path": "../x"})),
                                  "'../x' is not a plain file name"),
    "an absolute golden file": (lambda f: edit_json(f / f"{NAME}.json",
                                                    lambda d: d["golden"].update(file="/etc/passwd")),
                                "golden.file is not a plain file name"),
    "fields of the wrong type": (lambda f: edit_json(f / f"{NAME}.json", lambda d: d.update(noise_dim="100")),
                                 "noise_dim is not an integer"),
    "a manifest nested 100000 deep": (lambda f: (f / f"{NAME}.json").write_text("[" * 100_000 + "]" * 100_000),
                                      "the manifest (NAME.json, format gan_pack.package/N) is missing"),
    "a newer format": (lambda f: edit_json(f / f"{NAME}.json", lambda d: d.update(format="gan_pack.package/3")),
                       "made by a newer gan_pack"),
    "a missing golden metric": (lambda f: edit_json(f / f"{NAME}.golden.json",
                                                    lambda d: d["tolerance"][f"{NAME}.onnx"].pop("metric")),
                                "metric is not max_abs"),
    "a loosened tolerance": (lambda f: edit_json(f / f"{NAME}.golden.json",
                                                 lambda d: d["tolerance"][f"{NAME}.onnx"].update(bound=1e9)),
                             "bound is not a number in 0..0.001"),
    "10,000 golden vectors": (lambda f: edit_json(f / f"{NAME}.golden.json",
                                                  lambda d: d.update(vectors=d["vectors"] * 2500)),
                              "vectors is not a list of the 4 vectors"),
    "a label on an unconditional model": (lambda f: edit_json(f / f"{NAME}.golden.json",
                                                              lambda d: d["vectors"][0].update(label=3)),
                                          "vectors[0].label must be null"),
    "a short noise vector": (lambda f: edit_json(f / f"{NAME}.golden.json",
                                                 lambda d: d["vectors"][1].update(noise="AAAA")),
                             "vectors[1].noise is not 400 bytes"),
    "an extra ONNX file": (lambda f: shutil.copy(f / f"{NAME}.onnx", f / "spare.onnx"),
                           "spare.onnx: in the folder but not in the manifest"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_a_resigned_forgery_fails_naming_it(package, capsys, case):
    forge, words = FORGERIES[case]
    forge(package)
    resign(package)
    code, out, err = run_cli(["verify", package], capsys)
    assert code == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error:") and words in err, err
    assert "verified" not in out and " ok" not in out


def test_links_and_fifos_in_the_folder_are_refused_unopened(package, tmp_path, capsys):
    """A FIFO outside, named through a link inside: opening it would hang; it is never opened."""
    fifo = tmp_path / "outside.fifo"
    os.mkfifo(fifo)
    (package / f"{NAME}.eval.json").unlink()
    os.symlink(fifo, package / f"{NAME}.eval.json")
    code, _, err = run_cli(["verify", package], capsys)
    assert code == 1 and f"'{NAME}.eval.json' is not a regular file" in err
    (package / f"{NAME}.eval.json").unlink()
    os.mkfifo(package / f"{NAME}.eval.json")
    code, _, err = run_cli(["verify", package], capsys)
    assert code == 1 and f"'{NAME}.eval.json' is not a regular file" in err


def test_nothing_is_ok_before_the_checksums_hold(package, capsys):
    data = bytearray((package / f"{NAME}.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (package / f"{NAME}.onnx").write_bytes(bytes(data))
    code, out, err = run_cli(["verify", package], capsys)
    assert code == 1 and "SHA-256 does not match SHA256SUMS" in err
    assert " ok" not in out and "contract" not in out


def test_usage_mistakes_are_exit_2(tmp_path, capsys):
    code, _, err = run_cli(["verify", tmp_path / "nope"], capsys)
    one_error_line(code, err, "does not exist")
    code, _, err = run_cli(["verify", tmp_path], capsys)
    one_error_line(code, err, "is not a package")


def test_the_shipped_package_still_verifies(package, capsys):
    resign(package)                                 # re-signing alone changes nothing
    code, out, err = run_cli(["verify", package], capsys)
    assert code == 0, err
    assert out.count(" ok") == 4 and out.splitlines()[-1] == "verified: every check holds"

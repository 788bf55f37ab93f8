"""A run folder cut into parts and joined back: every byte proven before anything is written, and
a parts list from elsewhere may name nothing but run files."""

import json
import os

import pytest

from conftest import one_error_line, run_cli
from gan_pack.core.parts import MANIFEST, join_run, split_run
from gan_pack.errors import CheckpointError


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text('{"model": "gan"}\n')
    (folder / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (folder / "checkpoint.pt").write_bytes(os.urandom(3 * (1 << 20) + 12345))
    (folder / "samples").mkdir()
    (folder / "samples" / "epoch_001.png").write_bytes(b"png")
    return folder


def test_parts_are_bounded_and_join_back_byte_for_byte(run, tmp_path):
    manifest = split_run(run, tmp_path / "parts", part_mib=1)
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "parts").iterdir()}
    assert max(sizes.values()) <= 1 << 20 and len([n for n in sizes if n.startswith("checkpoint.pt.")]) == 4
    assert [entry["name"] for entry in manifest["files"]] == ["config.json", "metrics.jsonl", "checkpoint.pt"]
    # parts brought back in two batches, into two folders
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    for i, name in enumerate(sorted(sizes)):
        os.replace(tmp_path / "parts" / name, (first if i % 2 else second) / name)
    names = join_run([first, second], tmp_path / "back")
    assert sorted(names) == ["checkpoint.pt", "config.json", "metrics.jsonl"]
    for name in names:
        assert (tmp_path / "back" / name).read_bytes() == (run / name).read_bytes()


def test_a_damaged_or_missing_part_writes_nothing(run, tmp_path):
    split_run(run, tmp_path / "parts", part_mib=1)
    part = tmp_path / "parts" / "checkpoint.pt.002"
    data = bytearray(part.read_bytes())
    data[100] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checkpoint.pt.002 is damaged"):
        join_run([tmp_path / "parts"], tmp_path / "back")
    part.unlink()
    with pytest.raises(CheckpointError, match="part checkpoint.pt.002 .* is in none of"):
        join_run([tmp_path / "parts"], tmp_path / "back")
    assert not (tmp_path / "back").exists()


@pytest.mark.parametrize("change", [
    lambda m: m["files"][0].update(name="../../.bashrc"),
    lambda m: m["files"][0].update(name="evil.py"),
    lambda m: m["files"][2]["parts"][0].update(name="/etc/passwd"),
    lambda m: m["files"][2].update(bytes=1),
    lambda m: m.update(format="other/1"),
    lambda m: m.update(files="x"),
])
def test_a_parts_list_naming_anything_but_run_files_is_refused(run, tmp_path, change):
    split_run(run, tmp_path / "parts", part_mib=1)
    manifest = json.loads((tmp_path / "parts" / MANIFEST).read_text())
    change(manifest)
    (tmp_path / "parts" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="parts list"):
        join_run([tmp_path / "parts"], tmp_path / "back")
    assert not (tmp_path / "back").exists()


def test_the_commands_split_join_and_say_what_is_wrong_in_one_line(run, tmp_path, capsys):
    code, out, err = run_cli(["parts", "split", run, "-o", tmp_path / "p", "--part-mib", "2",
                              "--files", "config.json,checkpoint.pt"], capsys)
    assert code == 0 and "wrote 3 parts" in out, err
    code, out, err = run_cli(["parts", "join", tmp_path / "p", "-o", tmp_path / "r"], capsys)
    assert code == 0 and "ganpack train --resume --out" in out, err
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == (run / "checkpoint.pt").read_bytes()
    code, _, err = run_cli(["parts", "split", run, "-o", tmp_path / "q", "--files", "samples"], capsys)
    one_error_line(code, err, "'samples' is not a run file")
    code, _, err = run_cli(["parts", "split", tmp_path / "nothing", "-o", tmp_path / "q"], capsys)
    one_error_line(code, err, "is not a run folder")
    code, _, err = run_cli(["parts", "join", tmp_path / "q", "-o", tmp_path / "r2"], capsys)
    one_error_line(code, err, "no parts.json")
    assert not (tmp_path / "q").exists() and not (tmp_path / "r2").exists()


def test_join_does_not_write_under_a_training_that_holds_the_run(run, tmp_path):
    from gan_pack.core.runlog import lock_run
    from gan_pack.errors import GanPackError

    split_run(run, tmp_path / "parts", part_mib=1)
    target = tmp_path / "busy"
    target.mkdir()
    lock = lock_run(target)
    try:
        with pytest.raises(GanPackError, match="ganpack train"):
            join_run([tmp_path / "parts"], target)
    finally:
        lock.release()
    assert not (target / "checkpoint.pt").exists()
    assert join_run([tmp_path / "parts"], target)                 # free again: it joins


def test_links_and_oversized_lists_are_refused_before_they_are_read(run, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * 10)
    (run / "exports.jsonl").symlink_to(secret)
    with pytest.raises(CheckpointError, match="exports.jsonl is a symbolic link"):
        split_run(run, tmp_path / "refused", part_mib=1)
    assert not (tmp_path / "refused").exists()
    (run / "exports.jsonl").unlink()
    split_run(run, tmp_path / "parts", part_mib=1)
    part = tmp_path / "parts" / "config.json.000"
    part.rename(tmp_path / "real-part")
    part.symlink_to(tmp_path / "real-part")               # same bytes, behind a link
    with pytest.raises(CheckpointError, match="config.json.000 is a symbolic link"):
        join_run([tmp_path / "parts"], tmp_path / "back")
    assert not (tmp_path / "back").exists()
    (tmp_path / "parts" / MANIFEST).write_text(" " * (2 << 20) + "{}")
    with pytest.raises(CheckpointError, match="is not a parts list .*over the"):
        join_run([tmp_path / "parts"], tmp_path / "back")

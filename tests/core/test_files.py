"""files.py on its own: orphaned temps, the folder lock, the checks at rename time, appends."""

import os
import subprocess
import sys

import pytest

from gan_pack.core.files import FolderLock, append_line, atomic_path, orphan_temps, remove_orphans
from gan_pack.errors import OutputPathError


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_temps_of_dead_writers_are_orphans(tmp_path):
    target = tmp_path / "g.onnx"
    dead = tmp_path / f".g.onnx.{dead_pid()}.abc123_x.tmp"
    alive = tmp_path / f".g.onnx.{os.getpid()}.zzz999.tmp"
    old_style = tmp_path / ".g.onnx.k2j4h5g6.tmp"            # written before temps carried a pid
    other = tmp_path / f".g.onnx.parity.json.{dead_pid()}.abc.tmp"   # another file's temp
    for path in (dead, alive, old_style, other):
        path.write_bytes(b"x" * 100)
    assert sorted(orphan_temps(target)) == sorted([dead, old_style])
    assert remove_orphans(target) == 2
    assert alive.exists() and other.exists() and not dead.exists()
    assert remove_orphans(tmp_path, anywhere=True) == 1 and not other.exists() and alive.exists()


def test_a_write_removes_the_orphans_of_its_path(tmp_path):
    orphan = tmp_path / f".x.png.{dead_pid()}.abcdefgh.tmp"
    orphan.write_bytes(b"half")
    with atomic_path(tmp_path / "x.png") as tmp:
        tmp.write_bytes(b"whole")
    assert (tmp_path / "x.png").read_bytes() == b"whole" and not orphan.exists()


def test_a_target_that_became_a_link_during_the_write_is_not_replaced(tmp_path):
    target, elsewhere = tmp_path / "out.png", tmp_path / "elsewhere"
    elsewhere.write_text("keep")
    with pytest.raises(OutputPathError, match="symbolic link"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new")
            target.symlink_to(elsewhere)
    assert target.is_symlink() and elsewhere.read_text() == "keep"
    assert not list(tmp_path.glob(".out.png.*.tmp"))


def test_folder_lock_is_exclusive_and_names_its_holder(tmp_path):
    first = FolderLock(tmp_path / "run", "ganpack train").acquire()
    with pytest.raises(OutputPathError, match=rf"in use by ganpack train \(pid {os.getpid()}\)"):
        FolderLock(tmp_path / "run", "ganpack train").acquire()
    first.release()
    with FolderLock(tmp_path / "run", "ganpack train"):
        pass


def test_append_ends_a_cut_line_first(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"b"')
    append_line(path, '{"c": 3}')
    assert path.read_text().splitlines() == ['{"a": 1}', '{"b"', '{"c": 3}']
    append_line(tmp_path / "new.jsonl", "{}")
    assert (tmp_path / "new.jsonl").read_text() == "{}\n"

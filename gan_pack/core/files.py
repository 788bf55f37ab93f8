"""Writing files safely: atomic replacement, output-path checks, disk errors, orphans and locks.

- A write goes to a temp file beside the target and is renamed over it: a kill or a full disk
  leaves the old file or the new one, never half of one. The temp name carries the writer's pid,
  so the next write to that path removes temps whose writer is gone.
- Output paths are checked before any work and again at write time: only regular files are
  replaced (never a symlink, folder, FIFO or device), and the extension must match the format.
- A write that fails for lack of space or permission is an OutputPathError (one line), not an
  OSError traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from gan_pack.errors import OutputPathError

# Errors of the disk or its permissions, as opposed to bugs: the CLI reports these in one line.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 that names a file in evaluations, manifests and derived models."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def open_regular(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a file someone else may have written, for reading, only if it is a regular file: a
    symbolic link, FIFO or device is refused without waiting on it (ValueError says which)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        what = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be read ({e.strerror})"
        raise ValueError(what) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):        # before fdopen, which refuses a folder its own way
        os.close(fd)
        raise ValueError("is not a regular file (a folder, FIFO or device)")
    with os.fdopen(fd, "rb") as f:
        yield f


def regular_sha256(path: str | os.PathLike) -> str:
    """file_sha256 of a file someone else may have written (see open_regular), read through one
    buffer of 256 KiB: hashing a model before it is opened costs no memory to speak of."""
    digest, buffer = hashlib.sha256(), bytearray(256 << 10)
    view = memoryview(buffer)
    with open_regular(path) as f:
        while size := f.readinto(buffer):  # type: ignore[attr-defined]
            digest.update(view[:size])
    return digest.hexdigest()


def read_json(path: str | os.PathLike, max_bytes: int):
    """The JSON document in a file someone else may have written (see open_regular), of at most
    max_bytes, nested no deeper than the parser allows. Raises ValueError saying what it is not."""
    import json

    with open_regular(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"is over the {max_bytes} bytes this reader takes")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"is not readable JSON ({type(e).__name__})") from None


def write_failure(path: str | os.PathLike, e: OSError) -> OutputPathError:
    """The one-line message for a failed write."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputPathError(f"cannot write {path}: the disk is full ({e.strerror}); free some space or "
                               f"write elsewhere (any older file there is unchanged)")
    return OutputPathError(f"cannot write {path} ({e.strerror or e}); choose another output path")


def check_room(path: str | os.PathLike, needed: int) -> None:
    """A file of `needed` bytes fits on the disk of `path` before writing starts (streamed outputs
    are too large to find out half way)."""
    import shutil

    free = shutil.disk_usage(_existing_ancestor(Path(path))).free
    if needed > free:
        def size(n: int) -> str:
            return f"{n / 2**30:,.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.2f} MiB"
        raise OutputPathError(f"cannot write {path}: it needs {size(needed)} and its disk has {size(free)} free (the "
                              f"disk is full for it); free some space, write elsewhere, or ask for fewer images")


def _check_target(path: Path) -> None:
    """An existing output must be a regular, writable file: never replace a link, folder or device."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise OutputPathError(f"{path} is a symbolic link; gan_pack replaces only regular files: give the "
                              f"real path or another name")
    if stat.S_ISDIR(mode):
        raise OutputPathError(f"{path} is a folder; give a file name inside it (e.g. {path / 'out'}"
                              f"{path.suffix or '.png'})")
    if not stat.S_ISREG(mode):
        raise OutputPathError(f"{path} is not a regular file (a FIFO, socket or device); choose another "
                              f"output path")
    if not os.access(path, os.W_OK):
        raise OutputPathError(f"{path} is read-only; make it writable or choose another output path")


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def check_output_path(path: str | os.PathLike, suffix: str | Sequence[str] | None = None,
                      folder: bool = False) -> Path:
    """Refuse an output path before any work: a wrong extension, an existing link, folder or device,
    a read-only file, or a place that cannot be created or written. Creates nothing."""
    path = Path(path)
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix or ())
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"output {path} must end in {' or '.join(suffixes)} (the format written)")
    if folder:
        if path.exists() and not path.is_dir():
            raise OutputPathError(f"{path} exists and is not a folder; choose another output folder")
    else:
        _check_target(path)
    ancestor = _existing_ancestor(path if folder else path.parent)
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot create {path}: {ancestor} is not a folder; choose another output path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{ancestor} is not writable; choose another output path")
    return path


def make_folder(path: str | os.PathLike) -> Path:
    """mkdir -p, with a full disk or a read-only place as an OutputPathError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_failure(path, e) from e
    return path


# ---------------------------------------------------------------- atomic writes

def _temp_pattern(name: str) -> re.Pattern:
    # .NAME.PID.RANDOM.tmp (this version) or .NAME.RANDOM.tmp (older versions: no pid)
    return re.compile(rf"^\.{re.escape(name)}\.(?:(\d+)\.)?[a-z0-9_]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_temps(folder: Path, pattern: re.Pattern) -> list[Path]:
    """Files of `folder` named by `pattern` whose writer (group 1: its pid; none: an older version's
    temp, which named no writer) is gone."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return [entry for entry in entries
            if (match := pattern.match(entry.name)) and (match.group(1) is None or not _alive(int(match.group(1))))
            and entry.is_file()]


def orphan_temps(path: str | os.PathLike) -> list[Path]:
    """Temp files of earlier writes to `path` whose writing process is gone (killed mid-write)."""
    path = Path(path)
    return _dead_temps(path.parent, _temp_pattern(path.name))


def remove_orphans(path: str | os.PathLike, anywhere: bool = False) -> int:
    """Delete the orphaned temps of `path` (with anywhere=True: of any file in the folder `path`
    whose writer left its pid); returns how many."""
    removed = 0
    orphans = _dead_temps(Path(path), re.compile(r"^\..+\.(\d+)\.[a-z0-9_]+\.tmp$")) if anywhere \
        else orphan_temps(path)
    for orphan in orphans:
        with contextlib.suppress(OSError):
            orphan.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, clean: bool = True) -> Iterator[Path]:
    """Yield a temp path beside `path`; move it over `path` only if the block succeeds.

    Refuses a target that is not a regular file, removes orphaned temps of the same target (unless
    clean=False: a caller writing many files cleans their folder once), and turns a full disk or a
    read-only place into an OutputPathError (the temp is removed)."""
    path = Path(path)
    _check_target(path)
    make_folder(path.parent)
    if clean:
        remove_orphans(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_failure(path, e) from e
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        _check_target(path)               # still not a link or device at rename time
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            raise write_failure(path, e) from e
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, clean: bool = True) -> None:
    with atomic_path(path, clean) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line. If a killed writer left the last line cut short, end it first, so the cut
    line stays one unreadable line instead of swallowing this record."""
    path = Path(path)
    try:
        with open(path, "ab+") as f:
            if f.seek(0, os.SEEK_END):
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode("utf-8") + b"\n")
    except OSError as e:
        raise write_failure(path, e) from e


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- locks

class FolderLock:
    """An exclusive lock on a folder (flock on FOLDER/.lock), held while a process writes there.

    The lock file names its holder (pid, command). The kernel drops the lock when the holder
    exits, however it dies, so a killed run never leaves a stale lock behind."""

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike, what: str):
        self.folder, self.what = Path(folder), what
        self.fd: int | None = None

    def acquire(self) -> "FolderLock":
        import fcntl

        make_folder(self.folder)
        path = self.folder / self.NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise write_failure(path, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputPathError(f"{self.folder} is in use by {holder}; wait for it to finish or choose "
                                  f"another folder") from None
        with contextlib.suppress(OSError):       # the holder's name is a courtesy (a full disk may refuse it)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{self.what} (pid {os.getpid()})\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)          # closing drops the flock
            self.fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

"""Atomic file writing and output-path checks: a crash leaves the old file or the new one, never
half of one, and a path that cannot be written is refused before any work."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from gan_pack.errors import GanPackError


class OutputPathError(GanPackError):
    """An output path that cannot be written."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; move it over `path` only if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def check_output_path(path: str | os.PathLike, suffix: str | None = None, folder: bool = False) -> Path:
    """Refuse an output path before any work: a wrong suffix, a folder that cannot be made or
    written. Creates the parent folder (or, with folder=True, the folder itself)."""
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise OutputPathError(f"output {path} must end in {suffix}")
    target = path if folder else path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"cannot create {target} ({e.strerror}); choose another output path") from e
    if not os.access(target, os.W_OK):
        raise OutputPathError(f"{target} is not writable; choose another output path")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

"""A PyTorch checkpoint someone else made, checked before torch reads it: what it is on disk, and what
its zip directory says it unpacks to. Standard library only."""

from __future__ import annotations

import os
import stat

MAX_CHECKPOINT_BYTES = 2 << 30     # what a PyTorch checkpoint may unpack to (declared, checked before reading)


def check_checkpoint_file(path: str | os.PathLike, max_bytes: int = MAX_CHECKPOINT_BYTES) -> None:
    """A PyTorch checkpoint someone else made, checked before torch reads a byte of its tensors:
    a regular file (a link to one is fine; a folder, FIFO or device is not), and what it unpacks to,
    declared in its zip directory, at most `max_bytes`, its entries stored as torch.save writes them
    (a compressed entry would be inflated before anything could refuse it). ValueError says what."""
    import zipfile

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ValueError("does not exist") from None
    except OSError as e:
        raise ValueError(f"cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        raise ValueError("is a folder")
    if not stat.S_ISREG(mode):
        raise ValueError("is not a regular file (a FIFO or device)")
    size = os.path.getsize(path)
    if not zipfile.is_zipfile(path):
        if size > max_bytes:
            raise ValueError(f"is {size:,} bytes, over the {max_bytes:,} a checkpoint may take")
        return
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"is a damaged zip archive ({e})") from None
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > max_bytes:
        raise ValueError(f"unpacks to {unpacked:,} bytes by its own directory, over the {max_bytes:,} a checkpoint "
                         f"may take")
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise ValueError("holds compressed entries, which torch.save never writes (they would be inflated whole "
                         "before they could be refused)")

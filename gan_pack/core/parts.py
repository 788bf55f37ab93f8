"""A run folder cut into parts of bounded size, and put back together on another machine.

A GPU lent for minutes, a CI artifact or an attachment may move files of a few MiB each: `split_run`
writes a run's files (config, log, checkpoints) as numbered parts plus `parts.json` (each file's
size and sha256, each part's size and sha256); `join_run` reads parts from one or more folders,
proves every byte against `parts.json`, and only then writes the files into a run folder, each
atomically, so that `ganpack train --resume` continues there. `parts.json` and the parts are
untrusted: only the run files named below may be written, and nothing is written unless every
file is whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Iterable

from gan_pack.core.files import (
    FolderLock,
    atomic_path,
    check_output_path,
    make_folder,
    open_regular,
    read_json,
    write_text_atomic,
)
from gan_pack.core.runlog import is_run
from gan_pack.errors import CheckpointError, ConfigError

FORMAT = "gan_pack.run-parts/1"
MANIFEST = "parts.json"
RUN_FILES = ("config.json", "metrics.jsonl", "exports.jsonl", "checkpoint.pt", "checkpoint-best.pt")
MIB = 1 << 20
MAX_PART_MIB = 4096
MAX_FILE_BYTES = 64 << 30
MAX_PARTS = 10_000
CHUNK = 4 * MIB


def _chunks(path: Path):
    """A file someone else may have written (a regular file, not a link: open_regular), in chunks."""
    try:
        with open_regular(path) as f:
            while block := f.read(CHUNK):
                yield block
    except ValueError as e:
        raise CheckpointError(f"{path} {e}; give the files `ganpack parts split` wrote") from None


def _sha256_of(path: Path, whole: "hashlib._Hash") -> str:
    """The file's sha256, read in chunks that also go into `whole`."""
    digest = hashlib.sha256()
    for block in _chunks(path):
        digest.update(block)
        whole.update(block)
    return digest.hexdigest()


def split_run(run: str | Path, out: str | Path, part_mib: int = 15, files: Iterable[str] | None = None) -> dict:
    """Write run's files as parts of at most part_mib MiB into out, with out/parts.json; returns it."""
    run, names = Path(run), list(files or RUN_FILES)
    problems = [f"{name!r} is not a run file ({', '.join(RUN_FILES)})" for name in names if name not in RUN_FILES]
    if not 1 <= part_mib <= MAX_PART_MIB:
        problems.append(f"--part-mib must be in 1..{MAX_PART_MIB}, not {part_mib}")
    if problems:
        raise ConfigError("; ".join(problems))
    present = [name for name in names if (run / name).is_file()]     # regular files (or links to them)
    links = [name for name in present if (run / name).is_symlink()]
    if links:
        raise CheckpointError(f"{run / links[0]} is a symbolic link; split a run folder that `ganpack train` "
                              f"wrote, whose files are its own")
    if not present or not is_run(run):
        raise CheckpointError(f"{run} is not a run folder (no config.json, or none of {', '.join(names)}); "
                              f"give the --out folder of a `ganpack train`")
    out = check_output_path(out, folder=True)
    make_folder(out)
    manifest: dict = {"format": FORMAT, "part_bytes": part_mib * MIB, "files": []}
    for name in present:
        manifest["files"].append(_split_file(run / name, out, part_mib * MIB))
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _split_file(path: Path, out: Path, part_bytes: int) -> dict:
    """Copy path into parts of part_bytes, in chunks (a part is never held whole)."""
    entry: dict = {"name": path.name, "bytes": 0, "sha256": "", "parts": []}
    whole, size = hashlib.sha256(), path.stat().st_size
    with open(path, "rb") as source:
        for index in range(max(1, -(-size // part_bytes))):
            part, digest, written = f"{path.name}.{index:03d}", hashlib.sha256(), 0
            with atomic_path(out / part) as tmp, open(tmp, "wb") as f:
                while written < part_bytes and (block := source.read(min(CHUNK, part_bytes - written))):
                    f.write(block)
                    digest.update(block)
                    whole.update(block)
                    written += len(block)
            entry["bytes"] += written
            entry["parts"].append({"name": part, "bytes": written, "sha256": digest.hexdigest()})
    entry["sha256"] = whole.hexdigest()
    return entry


def read_manifest(folders: list[Path]) -> dict:
    """The first parts.json among folders, checked for shape (names, counts, sizes)."""
    found = [folder / MANIFEST for folder in folders if (folder / MANIFEST).is_file()]
    if not found:
        raise CheckpointError(f"no {MANIFEST} in {', '.join(map(str, folders))}; give the folder(s) that "
                              f"`ganpack parts split` wrote")
    try:
        manifest = read_json(found[0], MIB)
        entries = manifest["files"]
        ok = manifest.get("format") == FORMAT and isinstance(entries, list) and len(entries) <= len(RUN_FILES)
        for entry in entries if ok else []:
            parts = entry["parts"]
            ok &= entry["name"] in RUN_FILES and isinstance(parts, list) and 1 <= len(parts) <= MAX_PARTS
            ok &= isinstance(entry["bytes"], int) and 0 <= entry["bytes"] <= MAX_FILE_BYTES
            ok &= bool(re.fullmatch(r"[0-9a-f]{64}", str(entry["sha256"])))
            ok &= [p["name"] for p in parts] == [f"{entry['name']}.{i:03d}" for i in range(len(parts))]
            ok &= sum(int(p["bytes"]) for p in parts) == entry["bytes"]
    except (ValueError, KeyError, TypeError) as e:
        why = str(e) if isinstance(e, ValueError) else type(e).__name__
        raise CheckpointError(f"{found[0]} is not a parts list ({why}); split the run again") from e
    if not ok:
        raise CheckpointError(f"{found[0]} is not a {FORMAT} parts list of run files; split the run again")
    return manifest


def _find_part(folders: list[Path], part: dict) -> Path:
    for folder in folders:
        path = folder / part["name"]
        if path.is_file() and path.stat().st_size == part["bytes"]:
            return path
    raise CheckpointError(f"part {part['name']} ({part['bytes']} bytes) is in none of "
                          f"{', '.join(map(str, folders))}; bring it back and join again")


def join_run(folders: Iterable[str | Path], run: str | Path) -> list[str]:
    """Check every part against parts.json, then write the whole files into run (holding the run
    folder's lock, so a training there is not written under); returns their names."""
    places = [Path(f) for f in folders]
    manifest = read_manifest(places)
    located = []
    for entry in manifest["files"]:            # prove every byte before writing anything
        paths = [_find_part(places, part) for part in entry["parts"]]
        whole = hashlib.sha256()
        for path, part in zip(paths, entry["parts"]):
            digest = _sha256_of(path, whole)
            if digest != part["sha256"]:
                raise CheckpointError(f"part {path} is damaged (sha256 {digest[:12]}..., expected "
                                      f"{str(part['sha256'])[:12]}...); bring it back again")
        if whole.hexdigest() != entry["sha256"]:
            raise CheckpointError(f"{entry['name']} put together does not match its sha256; split the run again")
        located.append((entry["name"], paths))
    run = check_output_path(run, folder=True)
    make_folder(run)
    with FolderLock(run, "ganpack parts join"):
        # Checkpoints first, config and log last: a run folder that has a config has its checkpoints.
        for name, paths in sorted(located, key=lambda item: not item[0].endswith(".pt")):
            with atomic_path(run / name) as tmp, open(tmp, "wb") as f:
                for path in paths:
                    for block in _chunks(path):
                        f.write(block)
    return [name for name, _ in located]

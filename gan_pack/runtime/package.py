"""A package folder seen from the runtime: its manifest (read field by field, as verify reads it),
its model files, and the one to run on a device: the variant made for that device's provider when
the package has one, else NAME.onnx, which every runtime runs. The file chosen runs only if the
package vouches for it: a regular file of the folder (not a link), listed in the manifest, its
SHA-256 the manifest's. numpy only."""

from __future__ import annotations

import os
from pathlib import Path

from gan_pack.contract.package_format import PACKAGE_FORMATS, variant_key
from gan_pack.contract.package_schema import MAX_MANIFEST_BYTES, FileEntry, Manifest, read_manifest
from gan_pack.core.files import read_json, regular_sha256
from gan_pack.errors import ModelError


def read_package(folder: Path) -> Manifest | None:
    """The manifest of a package folder: NAME.json of NAME/, or the one .json of a package format;
    None for a folder that holds no readable manifest."""
    candidates = [folder / f"{folder.name}.json"] + sorted(folder.glob("*.json"))[:16]
    for path in dict.fromkeys(candidates):
        try:
            data = read_json(path, MAX_MANIFEST_BYTES)
        except (ValueError, OSError):
            continue
        if isinstance(data, dict) and data.get("format") in PACKAGE_FORMATS:
            manifest, _ = read_manifest(data, path.name)
            return manifest
    return None


def package_model(folder: Path) -> Path | None:
    """The generator every runtime runs, of a package folder: NAME/NAME.onnx, or the model its manifest
    names; None for a folder that is no package."""
    # anything by that name counts (a link or FIFO too): it is refused when it is run, not passed over
    main = folder / f"{folder.name}.onnx"
    if os.path.lexists(main):
        return main
    manifest = read_package(folder)
    if manifest is not None and os.path.lexists(folder / f"{manifest.name}.onnx"):
        return folder / f"{manifest.name}.onnx"
    return None


def choose_model(folder: Path, provider: str, variant: str | None = None) -> tuple[Path, str, str]:
    """(the model file of the package to run, its variant key, why): `variant` when asked for (main,
    cuda, fp16, int8), else the variant made for `provider` if the package has one, else its main model."""
    main = package_model(folder)
    if main is None:
        raise ModelError(f"{folder} is a folder that holds no package; give a package folder or an .onnx")
    manifest = read_package(folder)
    if manifest is None:
        raise ModelError(f"{folder} holds {main.name} but no readable manifest to vouch for it; give "
                         f"{main} itself to run the file as it is, or make a package of it with ganpack pack")
    keys = {variant_key(manifest.name, e.path): e for e in manifest.models}
    if variant is not None:
        if variant not in keys:
            have = ", ".join(sorted(keys))
            raise ModelError(f"{folder} has no variant {variant!r}; it has {have}")
        entry, why = keys[variant], f"asked for (--variant {variant})"
    else:
        made = [e for e in manifest.models if e.provider == provider]
        entry = made[0] if made else next(e for e in manifest.models if e.role == "model")
        why = f"made for {provider.upper()}" if made else "the package's model"
    return vouched(folder, entry), variant_key(manifest.name, entry.path), why


def vouched(folder: Path, entry: FileEntry) -> Path:
    """The model file of `entry`, checked before anything reads it as a model: a regular file of the
    package folder (never a link, FIFO or device, never followed), whose SHA-256 is the manifest's."""
    path = folder / entry.path
    try:
        digest = regular_sha256(path)
    except ValueError as e:
        raise ModelError(f"{path} {e}; a package runs only its own regular files (ganpack verify "
                         f"{folder} says what else is wrong)") from None
    if digest != entry.sha256:
        raise ModelError(f"{path}: its SHA-256 does not match the package's manifest (the file was changed or "
                         f"replaced); it was not run: unpack the package again, or ganpack verify {folder}")
    return path

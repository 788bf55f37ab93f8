"""A package folder seen from the runtime: its manifest (read field by field, as verify reads it),
its model files, and the one to run on a device: the variant made for that device's provider when
the package has one, else NAME.onnx, which every runtime runs. numpy only."""

from __future__ import annotations

from pathlib import Path

from gan_pack.contract.package_format import PACKAGE_FORMATS, variant_key
from gan_pack.contract.package_schema import MAX_MANIFEST_BYTES, Manifest, read_manifest
from gan_pack.core.files import read_json
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
    main = folder / f"{folder.name}.onnx"
    if main.is_file():
        return main
    manifest = read_package(folder)
    if manifest is not None and (folder / f"{manifest.name}.onnx").is_file():
        return folder / f"{manifest.name}.onnx"
    return None


def choose_model(folder: Path, provider: str, variant: str | None = None) -> tuple[Path, str, str]:
    """(the model file of the package to run, its variant key, why): `variant` when asked for (main,
    cuda, fp16, int8), else the variant made for `provider` if the package has one, else its main model."""
    main = package_model(folder)
    if main is None:
        raise ModelError(f"{folder} is a folder that holds no package; give a package folder or an .onnx")
    manifest = read_package(folder)
    entries = manifest.models if manifest is not None else []
    name = manifest.name if manifest is not None else main.stem
    keys = {variant_key(name, e.path): e for e in entries}
    if variant is not None:
        if variant == "main":
            return main, "main", "asked for (--variant main)"
        if variant not in keys:
            have = ", ".join(sorted({"main", *keys}))
            raise ModelError(f"{folder} has no variant {variant!r}; it has {have}")
        return folder / keys[variant].path, variant, f"asked for (--variant {variant})"
    made = [e for e in entries if e.provider == provider]
    if made:
        return folder / made[0].path, variant_key(name, made[0].path), f"made for {provider.upper()}"
    return main, "main", "the package's model"

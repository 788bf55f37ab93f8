"""`ganpack verify`: is this package (or lone .onnx) whole, and does it still give its images here?

Every file of the package is treated as hostile. In order, each step only on what the last proved:
1. the folder holds regular files only (no links, folders, FIFOs), each a plain name;
2. SHA256SUMS lists every file but itself, and each one's hash matches: nothing is reported ok,
   and no model is opened, before this holds;
3. the manifest (gan_pack.package/1) reads field by field (schema.py), lists every file of the folder
   but itself, README.md and SHA256SUMS, and holds NAME.onnx as its model;
4. each model entry loads with its contract (names, symbolic batch, dtypes, metadata against the graph)
   and the facts the manifest states;
5. the golden vectors (gan_pack.golden/1, at most 64) run as one batch on this machine's onnxruntime
   and provider, each model within its precision's tolerance (a file cannot loosen it).
Paths come only from the folder's own listing, never from a file's contents. No torch, no onnx.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_pack.contract.package_format import SUMS
from gan_pack.contract.package_schema import (
    MAX_MANIFEST_BYTES,
    FileEntry,
    Golden,
    Manifest,
    plain_name,
    read_golden,
    read_manifest,
)
from gan_pack.core.files import open_regular, read_json, regular_sha256
from gan_pack.errors import GanPackError, ModelError
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.onnxscan import model_metadata
from gan_pack.runtime.session import cuda_available

MAX_GOLDEN_BYTES = 64 << 20
MAX_SUMS_BYTES = 1 << 20
MAX_ENTRIES = 256
UNLISTED = ("README.md", SUMS)          # beside the manifest itself: written after it, so not in its list


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return ok


def list_folder(folder: Path, report: Report) -> list[str]:
    """The names of the folder's regular files; anything else there is a problem (never followed)."""
    with os.scandir(folder) as entries:
        found = sorted((e.name, e.stat(follow_symlinks=False).st_mode) for e in entries)
    report.check(len(found) <= MAX_ENTRIES, f"the folder holds {len(found)} entries; a package holds a few")
    names = []
    for name, mode in found[:MAX_ENTRIES]:
        if report.check(stat.S_ISREG(mode), f"{name!r} is not a regular file (a link, folder, FIFO or device); "
                                            f"a package holds regular files only"):
            report.check(plain_name(name), f"{name!r} is not a plain file name")
            names.append(name)
    return names


def check_sums(folder: Path, names: list[str], report: Report) -> bool:
    """SHA256SUMS lists every file but itself, by plain name, with its SHA-256."""
    if not report.check(SUMS in names, f"{SUMS} is missing"):
        return False
    try:
        text = read_text(folder / SUMS, MAX_SUMS_BYTES)
    except ValueError as e:
        return report.check(False, f"{SUMS} {e}")
    listed: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        ok = len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) and plain_name(name)
        if report.check(ok and name not in listed, f"{SUMS}: malformed or repeated line {line[:80]!r}"):
            listed[name] = digest
    for name, digest in listed.items():
        if report.check(name in names, f"{name} is listed in {SUMS} but missing"):
            report.check(regular_sha256(folder / name) == digest, f"{name}: SHA-256 does not match {SUMS} "
                                                                  f"(the file was changed)")
    extra = [n for n in names if n not in listed and n != SUMS]
    report.check(not extra, f"{', '.join(extra)}: not listed in {SUMS} (added after packing)")
    report.lines.append(f"checksums: {len(listed)} files against {SUMS}")
    return not report.problems


def read_text(path: Path, max_bytes: int) -> str:
    with open_regular(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"is over the {max_bytes} bytes this reader takes")
    return data.decode("utf-8", errors="replace")


def find_manifest(folder: Path, names: list[str], report: Report) -> Manifest | None:
    """The one .json whose format is a gan_pack package's, read and checked against the folder."""
    manifests = []
    for name in (n for n in names if n.endswith(".json")):
        try:
            data = read_json(folder / name, MAX_MANIFEST_BYTES)
        except ValueError:
            continue                               # other JSON files are checked where they are used
        if isinstance(data, dict) and str(data.get("format", "")).startswith(("gan_pack.package/",
                                                                              "gan_pack.image-package/")):
            manifests.append((name, data))
    if not report.check(len(manifests) == 1, "the manifest (NAME.json, format gan_pack.package/N) is missing"
                        if not manifests else f"{len(manifests)} manifests; a package has one"):
        return None
    source, data = manifests[0]
    manifest, problems = read_manifest(data, source)
    report.problems += problems
    if manifest is None:
        return None
    report.check(source == f"{manifest.name}.json",
                 f"{source}: the manifest of {manifest.name} is {manifest.name}.json")
    listed = {e.path for e in manifest.files}
    unlisted = sorted(set(names) - listed - {source, *UNLISTED})
    missing = sorted(listed - set(names))
    report.check(not unlisted, f"{', '.join(unlisted)}: in the folder but not in the manifest")
    report.check(not missing, f"{', '.join(missing)}: in the manifest but not in the folder")
    return manifest if not unlisted and not missing else None


FACTS = ("model", "dataset", "noise_dim", "num_classes", "class_names", "image_shape", "truncation")


def device_for(entry: FileEntry, device: str, report: Report) -> str:
    """Where to run a model file: a variant made for CUDA on CUDA where this machine has it, else
    on the CPU (said); every other file where verify was asked to run."""
    if entry.provider != "cuda" or device == "cuda":
        return device
    if cuda_available():
        return "cuda"
    report.lines.append(f"  {entry.path} is made for CUDA, which this machine lacks: checked on the CPU")
    return "cpu"


def static_check(path: Path, entry: FileEntry, main_sha256: str, report: Report) -> None:
    """A variant no provider here can run: its metadata, read from the file, must say what the
    manifest says and name the main model as its source; its golden vectors are skipped, and said so."""
    meta = model_metadata(path)
    report.check(meta.get("precision") == entry.precision and meta.get("provider") == entry.provider
                 and meta.get("derived_from_sha256") == main_sha256,
                 f"{entry.path}: its metadata does not say what the manifest says of it")
    report.lines.append(f"  {entry.path}: no provider here runs it (made for {entry.provider}); its hash and "
                        f"metadata hold, its golden vectors were not run")


def load_models(folder: Path, manifest: Manifest, device: str, report: Report) -> dict[str, OnnxGenerator]:
    """Each model entry, loaded with its contract, its hash and facts against the manifest."""
    generators = {}
    main_sha256 = next(e.sha256 for e in manifest.models if e.role == "model")
    for entry in manifest.models:
        path = folder / entry.path
        if not report.check(regular_sha256(path) == entry.sha256, f"{entry.path}: SHA-256 does not match the manifest"):
            continue
        where = device_for(entry, device, report)
        try:
            g = OnnxGenerator(path, device=where, tf32=False)     # fp32 held to fp32 on any provider
        except ModelError as e:
            if entry.provider == "cuda" and where == "cpu":
                static_check(path, entry, main_sha256, report)
            else:
                report.check(False, f"{entry.path}: {e}")
            continue
        made_from = g.info.raw.get("derived_from_sha256")
        report.check(made_from in (None, main_sha256), f"{entry.path} says it was made from another model than "
                                                      f"{manifest.name}.onnx")
        report.check(entry.provider in (None, g.info.raw.get("provider")),
                     f"the manifest says {entry.path} is made for {entry.provider} but its metadata does not")
        generators[entry.path] = g
        for key in FACTS:
            have = getattr(g.info, key)
            want = getattr(manifest, key)
            report.check(want == have, f"the manifest says {key} {want!r} but {entry.path}'s metadata says {have!r}")
        report.check(entry.precision == g.info.precision, f"the manifest says {entry.path} is {entry.precision} but "
                                                         f"its metadata says {g.info.precision}")
    report.lines.append(f"contract: {len(generators)} model file(s) load with their names, shapes and metadata")
    return generators


def run_golden(golden: Golden, generators: dict[str, OnnxGenerator], report: Report) -> None:
    """Every vector through every model, as one batch (as pack ran them: dynamic int8 scales by batch)."""
    for name, g in generators.items():
        metric, bound = golden.tolerance[name]
        images = g.generate(golden.noise, golden.labels).astype(np.float64)
        for i, (image, expected) in enumerate(zip(images, golden.images[name])):
            diff = np.abs(image - expected)
            value = float(diff.max() if metric == "max_abs" else diff.mean())
            ok = value <= bound
            what = f"label {golden.labels[i]}" if golden.labels is not None else "no label"
            report.lines.append(f"  vector {i + 1} ({what}) {name:<28} {metric.replace('_', ' ')} "
                                f"{value:.2e} <= {bound:.0e}  {'ok' if ok else 'FAILED'}")
            report.check(ok, f"golden vector {i + 1}: {name} differs by {value:.3g} ({metric}), over its "
                             f"tolerance {bound}")


def verify_folder(folder: Path, device: str) -> Report:
    report = Report()
    names = list_folder(folder, report)
    if report.problems or not check_sums(folder, names, report):
        return report
    manifest = find_manifest(folder, names, report)
    if manifest is None:
        return report
    if manifest.spec is not None:                   # an image model's package (package/image_pack.py)
        from gan_pack.package.image_verify import verify_image_models

        golden = None
        if report.check(manifest.golden_file in names, f"the golden images ({manifest.golden_file}) are missing"):
            try:
                golden = read_json(folder / manifest.golden_file, MAX_GOLDEN_BYTES)
            except ValueError as e:
                report.check(False, f"{manifest.golden_file} {e}")
        verify_image_models(folder, manifest, golden, device, report)
        return report
    generators = load_models(folder, manifest, device, report)
    if report.problems:
        return report
    golden = read_golden_file(folder, manifest, names, report)
    if golden is not None:
        run_golden(golden, generators, report)
    return report


def read_golden_file(folder: Path, manifest: Manifest, names: list[str], report: Report) -> Golden | None:
    source = manifest.golden_file
    if not report.check(source in names, f"the golden vectors ({source}) are missing"):
        return None
    try:
        data = read_json(folder / source, MAX_GOLDEN_BYTES)
    except ValueError as e:
        report.check(False, f"{source} {e}")
        return None
    golden, problems = read_golden(data, source, manifest)
    report.problems += problems
    return golden


def verify_model(path: Path, device: str) -> Report:
    """An .onnx: the package it belongs to, if its folder is one that lists it; else its contract
    and a smoke run."""
    if (path.parent / SUMS).is_file():
        names = list_folder(path.parent, Report())
        manifest = find_manifest(path.parent, names, Report()) if path.name in names else None
        if manifest is not None and path.name in {e.path for e in manifest.models}:
            report = verify_folder(path.parent, device)
            report.lines.insert(0, f"{path.name} is a model of the package {path.parent}: verifying the package")
            return report
    report = Report()
    from gan_pack.contract.image_model import is_image_model

    if path.is_file() and is_image_model(model_metadata(path)):
        from gan_pack.runtime.image_model import ImageModel

        model = ImageModel(path, device=device)
        image = (np.arange(16 * 16 * model.spec.in_channels) % 256).astype(np.uint8).reshape(16, 16, -1)
        out = model.apply(image, tile=0)
        report.check(out.shape[:2] == (16 * model.scale, 16 * model.scale), "its output is not scale times larger")
        report.lines.append(f"contract: {path.name} loads as an image model; a smoke run gives {out.shape[1]}x"
                            f"{out.shape[0]} (verify its package folder for checksums and golden images)")
        return report
    g = OnnxGenerator(path, device=device, tf32=False)
    report.lines.append(f"contract: {path.name} loads with its names, shapes and metadata")
    images = g.sample(4, seed=0)
    report.check(bool(np.isfinite(images).all()) and images.min() >= -1 and images.max() <= 1,
                 "the images are not finite numbers in [-1, 1]")
    report.lines.append("a lone model: checked the contract and a smoke run only (verify its package folder "
                        "for checksums and golden vectors)")
    return report


def verify(path: str | Path, device: str = "cpu") -> Report:
    path = Path(path)
    if path.is_dir():
        if not (path / SUMS).exists() and not any(path.glob("*.json")):
            raise GanPackError(f"{path} is not a package (no {SUMS}, no manifest); give a folder made by "
                               f"ganpack pack, or an .onnx")
        report = verify_folder(path, device)
    else:
        report = verify_model(path, device)
    import onnxruntime

    where = "CUDA" if device == "cuda" else "CPU"
    report.lines.insert(0, f"verifying {path} on onnxruntime {onnxruntime.__version__} ({where})")
    return report

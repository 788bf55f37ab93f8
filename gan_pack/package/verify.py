"""`ganpack verify`: is this package (or lone .onnx) whole, and does it still give its images here?

Checks, in order: every file against SHA256SUMS (nothing changed, missing or added), the manifest
against the files and against each model's own metadata, each model's contract (names, symbolic
batch, dtypes, metadata against the graph), then the golden vectors, run on this machine's
onnxruntime and provider and compared with the packed images within their tolerance. No torch,
no onnx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_pack.contract.package_format import GOLDEN_FORMAT, PACKAGE_FORMAT, SUMS, decode
from gan_pack.core.files import file_sha256
from gan_pack.errors import GanPackError, ModelError


class VerifyError(GanPackError):
    """The package is wrong or was tampered with (exit code 1)."""


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return ok


def read_sums(folder: Path, report: Report) -> None:
    listed = {}
    for line in (folder / SUMS).read_text(encoding="utf-8", errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        if report.check(len(digest) == 64 and bool(name) and "/" not in name, f"{SUMS}: malformed line {line[:80]!r}"):
            listed[name] = digest
    for name, digest in listed.items():
        path = folder / name
        if report.check(path.is_file() and not path.is_symlink(), f"{name} is listed in {SUMS} but missing"):
            report.check(file_sha256(path) == digest, f"{name}: SHA-256 does not match {SUMS} (the file was changed)")
    extra = sorted(p.name for p in folder.iterdir() if p.name not in listed and p.name != SUMS
                   and not p.name.startswith("."))
    report.check(not extra, f"{', '.join(extra)}: not listed in {SUMS} (added after packing)")
    report.lines.append(f"checksums: {len(listed)} files against {SUMS}")


def find_manifest(folder: Path) -> Path | None:
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        if isinstance(data, dict) and data.get("format") == PACKAGE_FORMAT:
            return path
    return None


FACTS = ("model", "dataset", "noise_dim", "num_classes", "class_names", "image_shape")


def check_manifest(folder: Path, manifest: dict, device: str, report: Report) -> dict:
    """Each model file of the manifest, loaded (contract and metadata checks), against the manifest."""
    from gan_pack.runtime.generator import OnnxGenerator

    generators = {}
    for entry in manifest.get("files", []):
        path = folder / str(entry.get("path", ""))
        if not report.check(path.is_file(), f"manifest lists {entry.get('path')}, which is missing"):
            continue
        report.check(entry.get("sha256") == file_sha256(path), f"{path.name}: SHA-256 does not match the manifest")
        if "precision" not in entry:
            continue
        try:
            g = OnnxGenerator(path, device=device)
        except ModelError as e:
            report.check(False, f"{path.name}: {e}")
            continue
        generators[path.name] = g
        for key in FACTS:
            have = list(g.info.image_shape) if key == "image_shape" else getattr(g.info, key)
            report.check(manifest.get(key) == have, f"the manifest says {key} {manifest.get(key)!r} but "
                                                    f"{path.name}'s metadata says {have!r}")
    report.lines.append(f"contract: {len(generators)} model file(s) load with their names, shapes and metadata")
    return generators


def run_golden(golden: dict, generators: dict, report: Report, expected_count: int | None) -> None:
    vectors = golden.get("vectors", [])
    if expected_count is not None:
        report.check(len(vectors) == expected_count, f"golden vectors: {len(vectors)} of the {expected_count} "
                                                     f"the manifest records")
    for name in generators:
        report.check(name in golden.get("tolerance", {}), f"golden vectors hold no images for {name}")
    for name, g in generators.items():
        tolerance = golden.get("tolerance", {}).get(name)
        if tolerance is None:
            continue
        try:       # all vectors in one batch, as pack ran them (dynamic int8 depends on the batch)
            noise = np.concatenate([decode(v["noise"], (1, g.info.noise_dim)) for v in vectors])
            expected = np.concatenate([decode(v["images"][name], (1, *g.info.image_shape)) for v in vectors])
            labels = None if not g.info.conditional else np.array([v["label"] for v in vectors], dtype=np.int64)
        except (ValueError, KeyError, TypeError):
            report.check(False, f"the golden vectors are malformed for {name}")
            continue
        images = g.generate(noise, labels).astype(np.float64) if len(vectors) else expected
        for i, vector in enumerate(vectors):
            diff = np.abs(images[i] - expected[i])
            value = float(diff.max() if tolerance["metric"] == "max_abs" else diff.mean())
            ok = value <= tolerance["bound"]
            what = f"label {vector['label']}" if vector.get("label") is not None else "no label"
            report.lines.append(f"  vector {i + 1} ({what}) {name:<28} {tolerance['metric'].replace('_', ' ')} "
                                f"{value:.2e} <= {tolerance['bound']:.0e}  {'ok' if ok else 'FAILED'}")
            report.check(ok, f"golden vector {i + 1}: {name} differs by {value:.3g} ({tolerance['metric']}), "
                             f"over its tolerance {tolerance['bound']}")


def read_json(path: Path, report: Report) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        report.check(False, f"{path.name} is not readable JSON ({type(e).__name__})")
        return None
    return data if report.check(isinstance(data, dict), f"{path.name} does not hold a JSON object") else None


def verify_folder(folder: Path, device: str) -> Report:
    report = Report()
    if (folder / SUMS).is_file():
        read_sums(folder, report)
    else:
        report.check(False, f"{SUMS} is missing")
    path = find_manifest(folder)
    if path is None:
        report.check(False, "the manifest (NAME.json, format gan_pack.package/1) is missing")
        return report
    manifest = read_json(path, report) or {}
    generators = check_manifest(folder, manifest, device, report)
    golden_name = str(manifest.get("golden", {}).get("file", ""))
    golden = read_json(folder / golden_name, report) if (folder / golden_name).is_file() and golden_name else None
    if golden is None or golden.get("format") != GOLDEN_FORMAT:
        report.check(False, f"the golden vectors ({golden_name or 'NAME.golden.json'}) are missing or malformed")
    else:
        run_golden(golden, generators, report, manifest.get("golden", {}).get("count"))
    return report


def verify_model(path: Path, device: str) -> Report:
    """A lone .onnx: its contract, then NAME.golden.json beside it if there is one, else a smoke run."""
    from gan_pack.runtime.generator import OnnxGenerator

    report = Report()
    g = OnnxGenerator(path, device=device)
    report.lines.append(f"contract: {path.name} loads with its names, shapes and metadata")
    for golden_path in sorted(path.parent.glob("*.golden.json")):
        golden = read_json(golden_path, report)
        if golden is not None and path.name in golden.get("tolerance", {}):
            run_golden(golden, {path.name: g}, report, None)
            return report
    images = g.sample(4, seed=0)
    report.check(bool(np.isfinite(images).all()) and images.min() >= -1 and images.max() <= 1,
                 "the images are not finite numbers in [-1, 1]")
    report.lines.append("no golden vectors beside it: checked the contract and a smoke run only")
    return report


def verify(path: str | Path, device: str = "cpu") -> Report:
    path = Path(path)
    if path.is_dir():
        if not (path / SUMS).is_file() and find_manifest(path) is None:
            raise ModelError(f"{path} is not a package (no {SUMS}, no manifest); give a folder made by "
                             f"ganpack pack, or an .onnx")
        report = verify_folder(path, device)
    else:
        report = verify_model(path, device)
    import onnxruntime

    where = "CUDA" if device == "cuda" else "CPU"
    report.lines.insert(0, f"verifying {path} on onnxruntime {onnxruntime.__version__} ({where})")
    return report

"""`ganpack verify` of an image model's package (gan_pack.image-package/1): each model entry loads as an
image model with the package's spec, and the golden images run through each within its precision's
tolerance. numpy + onnxruntime, no onnx."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gan_pack.contract.package_format import IMAGE_GOLDEN_FORMAT, decode
from gan_pack.runtime.image_model import ImageModel


def verify_image_models(folder: Path, manifest, golden_data, device: str, report) -> None:
    """Each model entry loads as an image model with the package's spec; the golden images run through
    each within its precision's tolerance."""
    from gan_pack.contract.package_schema import _tolerance
    from gan_pack.core.files import regular_sha256
    from gan_pack.errors import ModelError

    models = {}
    for entry in manifest.models:
        path = folder / entry.path
        if not report.check(regular_sha256(path) == entry.sha256, f"{entry.path}: SHA-256 does not match the manifest"):
            continue
        where = "cuda" if entry.provider == "cuda" and device != "cpu" else "cpu"
        if entry.provider == "cuda" and where == "cpu":
            report.lines.append(f"  {entry.path}: made for CUDA; its hash holds, its golden images were not run here")
            continue
        try:
            models[entry.path] = ImageModel(path, device=where)
        except ModelError as e:
            report.check(False, f"{entry.path}: {e}")
            continue
        report.check(models[entry.path].spec.__dict__ | {"parity_bound": None, "parity_sizes": ()}
                     == manifest.spec.__dict__ | {"parity_bound": None, "parity_sizes": ()},
                     f"{entry.path}: its image spec is not the manifest's")
    report.lines.append(f"contract: {len(models)} image model file(s) load with the package's spec")
    if report.problems or golden_data is None:
        return
    vectors = golden_data.get("vectors") if isinstance(golden_data, dict) else None
    shape = golden_data.get("input_shape") if isinstance(golden_data, dict) else None
    if not (isinstance(vectors, list) and isinstance(shape, list)) or not report.check(
            golden_data.get("format") == IMAGE_GOLDEN_FORMAT and len(vectors) == manifest.golden_count
            and len(shape) == 3 and all(isinstance(x, int) and 1 <= x <= 4096 for x in shape),
            "the golden images are not gan_pack.image-golden/1 of the count the manifest records"):
        report.check(isinstance(vectors, list) and isinstance(shape, list), "the golden images are not "
                                                                           "gan_pack.image-golden/1")
        return
    try:
        inputs = np.stack([decode(v["image"], tuple(shape)) for v in vectors])
    except (KeyError, TypeError, ValueError) as e:
        report.check(False, f"the golden images do not decode ({type(e).__name__})")
        return
    from gan_pack.contract.package_schema import Problems

    for file, model in models.items():
        entry = next(e for e in manifest.models if e.path == file)
        bounds = _tolerance(entry, golden_data.get("tolerance"), problems := Problems("golden"))
        report.problems += list(problems)
        if bounds is None:
            continue
        metric, bound = bounds
        out = model.run(inputs)
        for i, vector in enumerate(vectors):
            try:
                expected = decode(vector["outputs"][file], out.shape[1:])
            except (KeyError, TypeError, ValueError):
                report.check(False, f"golden image {i + 1}: no output of {file} of shape {list(out.shape[1:])}")
                continue
            diff = np.abs(out[i].astype(np.float64) - expected)
            value = float(diff.max() if metric == "max_abs" else diff.mean())
            report.lines.append(f"  image {i + 1} {file:<28} {metric.replace('_', ' ')} {value:.2e} <= {bound:.0e}  "
                                f"{'ok' if value <= bound else 'FAILED'}")
            report.check(value <= bound, f"golden image {i + 1}: {file} differs by {value:.3g} ({metric}), over its "
                                         f"tolerance {bound}")

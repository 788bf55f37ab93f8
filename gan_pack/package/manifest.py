"""What a package says about itself: the manifest (the metadata as plain JSON, for runtimes that
cannot read ONNX metadata, with every file's size and SHA-256), the golden vectors (fixed inputs and
the images each model file gives) and SHA256SUMS. numpy + onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import gan_pack
from gan_pack.contract.metadata import ModelInfo
from gan_pack.contract.package_format import (
    GOLDEN_COUNT,
    GOLDEN_FORMAT,
    GOLDEN_SEED,
    GOLDEN_TOLERANCE,
    PACKAGE_FORMAT,
    PROVIDERS,
    SUMS,
    encode,
    family,
)
from gan_pack.core.files import file_sha256
from gan_pack.core.noise import portable_noise
from gan_pack.runtime.generator import OnnxGenerator


def golden_vectors(generators: dict[str, OnnxGenerator], info: ModelInfo) -> dict:
    """GOLDEN_COUNT fixed inputs (every class spread over them) and the images each model file gives."""
    noise = portable_noise(GOLDEN_SEED, 0, GOLDEN_COUNT, info.noise_dim)
    k = info.num_classes
    labels = [round(i * (k - 1) / max(GOLDEN_COUNT - 1, 1)) for i in range(GOLDEN_COUNT)] if k else None
    images_of: list[dict[str, str]] = [{} for _ in range(GOLDEN_COUNT)]       # per vector: model file -> images
    tolerance = {}
    for name, g in generators.items():
        images = g.generate(noise, None if labels is None else np.asarray(labels, dtype=np.int64))
        for by_file, image in zip(images_of, images):
            by_file[name] = encode(image)
        metric, bound = GOLDEN_TOLERANCE[family(g.info.precision)]
        tolerance[name] = {"metric": metric, "bound": bound}
    vectors = [{"noise": encode(noise[i]), "label": None if labels is None else labels[i], "images": images_of[i]}
               for i in range(GOLDEN_COUNT)]
    return {"format": GOLDEN_FORMAT, "noise_dim": info.noise_dim, "image_shape": list(info.image_shape),
            "tolerance": tolerance, "vectors": vectors}


def manifest(name: str, folder: Path, generators: dict[str, OnnxGenerator], evaluation: dict | None,
             figures: dict[str, dict] | None = None) -> dict:
    """The facts of the metadata, as plain JSON, and every file of the folder (size, SHA-256); a
    model file's entry also holds its provider and the figures measured of it (speed, evaluation)."""
    info = generators[f"{name}.onnx"].info
    raw = info.raw
    k = info.num_classes
    files = []
    for path in sorted(folder.iterdir()):
        entry = {"path": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if path.name in generators:
            meta = generators[path.name].info
            entry.update(role="model" if path.name == f"{name}.onnx" else "variant", precision=meta.precision,
                         opset=meta.opset, parity=meta.parity or json.loads(meta.raw.get("parity_vs_fp32", "null")))
            if meta.raw.get("provider") in PROVIDERS and path.name != f"{name}.onnx":
                entry["provider"] = meta.raw["provider"]
            entry.update((figures or {}).get(path.name, {}))
        files.append(entry)
    return {
        "format": PACKAGE_FORMAT, "name": name, "gan_pack_version": gan_pack.__version__,
        "contract": info.spec.contract(),
        "model": info.model, "arch": info.arch, "dataset": info.dataset,
        "noise_dim": info.noise_dim, "noise_distribution": raw.get("noise_distribution", "standard_normal"),
        "num_classes": k, "class_names": info.class_names, "image_shape": list(info.image_shape),
        "alpha": info.image_shape[0] == 4,          # channel 4 is straight (not premultiplied) opacity
        "truncation": info.truncation,              # the noise threshold samplers use by default (null: none)
        "output_range": [-1, 1], "precision": info.precision, "opset": info.opset, "parity": info.parity,
        "training": json.loads(raw.get("train_config", "{}")), "golden": {"file": f"{name}.golden.json",
                                                                        "count": GOLDEN_COUNT},
        "evaluation": summary(evaluation), "metadata": raw, "files": files,
    }


EVAL_FIGURES = ("fcd", "fcd_floor_train_vs_test", "fcd_ratio_to_floor", "conditional_accuracy", "class_kl",
                "precision", "recall", "density", "coverage", "n", "seed", "truncation", "classifier_sha256")


def summary(evaluation: dict | None) -> dict | None:
    return None if evaluation is None else {k: evaluation[k] for k in EVAL_FIGURES if k in evaluation}


def write_sums(folder: Path) -> None:
    lines = [f"{file_sha256(p)}  {p.name}\n" for p in sorted(folder.iterdir()) if p.name != SUMS]
    (folder / SUMS).write_text("".join(lines))


# ---------------------------------------------------------------- pack

"""The metadata schema of a gan_pack generator: what `ganpack export` writes
(`generator_metadata`), what every reader parses and bounds (`ModelInfo.from_metadata`), and how it
is put into an onnx ModelProto (`set_metadata`, which also fills ONNX's identity fields). numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_pack.contract.limits import MAX_ACTIVATION_BYTES, MAX_CHANNELS, MAX_CLASSES, MAX_IMAGE_VALUES, MAX_NOISE_DIM
from gan_pack.contract.names import CLASSIFIER_KIND, DOMAIN, GENERATOR_KIND, IMAGE_MODEL_KIND, PRODUCER
from gan_pack.contract.parity import parity_problems
from gan_pack.contract.spec import SPEC_KEY, GeneratorSpec
from gan_pack.core.noise import MIN_TRUNCATION
from gan_pack.errors import ModelError

REQUIRED_METADATA = ("model", "noise_dim", "num_classes", "image_shape")


def generator_metadata(config: dict, dataset: dict, epochs: int, steps: int, weights: str,
                       precision: str, opset: int, version: str) -> dict[str, str]:
    """The metadata of an exported generator (all strings; JSON where structured).

    `config` is the flat training config and `dataset` the DatasetInfo dict of its checkpoint."""
    return {
        "gan_pack.version": version,
        "gan_pack.kind": GENERATOR_KIND,
        "model": config["model"],
        "arch": config["arch"],
        "noise_dim": str(config["noise_dim"]),
        "noise_distribution": "standard_normal",
        "num_classes": str(dataset["num_classes"]),
        "class_names": json.dumps(dataset["class_names"]),
        "image_shape": json.dumps(list(dataset["image_shape"])),
        "output_range": json.dumps([-1, 1]),
        "dataset": dataset["name"],
        "epochs": str(epochs),
        "steps": str(steps),
        "weights": weights,
        "precision": precision,
        "opset": str(opset),
        "train_config": json.dumps(config, sort_keys=True),
        **image_metadata(dataset["image_shape"]),
    }


PIXEL_FORMATS = {1: "Gray8", 3: "Rgb8", 4: "Rgba8"}      # 4: straight (not premultiplied) alpha


def image_metadata(image_shape) -> dict[str, str]:
    """ONNX's image conventions (onnx/docs/MetadataProps.md) for the `images` output in [-1, 1]."""
    return {"Image.BitmapPixelFormat": PIXEL_FORMATS.get(int(image_shape[0]), "Gray8"),
            "Image.ColorSpaceGamma": "SRGB", "Image.NominalPixelRange": "Normalized_1_1"}


def spec_of(metadata: dict[str, str]) -> GeneratorSpec:
    """The GeneratorSpec the metadata's fields say (the parity bound and batches from its report)."""
    parity = json.loads(metadata["parity"]) if "parity" in metadata else {}
    batches = tuple(b["batch"] for b in parity.get("batches", []) if isinstance(b, dict) and "batch" in b)
    return GeneratorSpec(int(metadata["noise_dim"]), int(metadata["num_classes"]),
                         tuple(json.loads(metadata["image_shape"])), metadata.get("psi_input") == "true",
                         float(metadata["truncation"]) if "truncation" in metadata else None,
                         parity_bound=parity.get("bound"), parity_batches=batches)


def describe(metadata: dict[str, str]) -> str:
    """A generator in one Markdown paragraph: the ModelProto's doc_string."""
    spec = spec_of(metadata)
    noise, *others = spec.inputs()
    extra = "".join(f" and {'optional ' if t.optional else ''}`{t.name}` {t.dtype} `[{', '.join(map(str, t.shape))}]`"
                    + (f" (default {t.default:g})" if t.optional else f" in {t.range[0]}..{t.range[1]}"
                       if t.range else "")
                    for t in others)
    (images,) = spec.outputs()
    return (f"gan_pack {metadata.get('model', '?')} generator ({metadata.get('arch', '?')}) of "
            f"{metadata.get('dataset', '?')} images. Inputs: `noise` float32 `[batch, {noise.shape[1]}]` "
            f"(standard normal){extra}. Output: `images` float32 `[batch, {', '.join(map(str, images.shape[1:]))}]` "
            f"in [-1, 1].")


def set_metadata(model, metadata: dict[str, str]) -> None:
    """Replace an onnx ModelProto's metadata with `metadata` (what ModelInfo.from_metadata reads), and
    fill ONNX's identity fields (producer, version, domain, model_version, doc_string) from it. A
    generator's spec (`gan_pack.spec`, which export writes) is rewritten from the same fields, so the
    two always agree; a model exported before the spec existed keeps its bytes (its spec is derived)."""
    if SPEC_KEY in metadata and all(k in metadata for k in REQUIRED_METADATA):
        metadata = {**metadata, SPEC_KEY: spec_of(metadata).to_json()}
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name, model.producer_version = PRODUCER, metadata.get("gan_pack.version", "")
    model.domain, model.model_version = DOMAIN, 1
    if metadata.get("gan_pack.kind") == GENERATOR_KIND:
        model.doc_string = describe(metadata)


@dataclass(frozen=True)
class ModelInfo:
    """The typed metadata of an exported generator."""

    model: str
    arch: str
    noise_dim: int
    num_classes: int
    class_names: list[str]
    image_shape: tuple[int, int, int]
    dataset: str
    epochs: int
    weights: str
    precision: str
    opset: int
    version: str
    parity: dict | None
    raw: dict[str, str] = field(repr=False, default_factory=dict)
    activation_bytes: int | None = None           # per image, from the graph (graph.activation_bytes)
    truncation: float | None = None               # the sampling default its packager chose (pack --truncation)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def spec(self) -> GeneratorSpec:
        """What the graph takes and gives (contract/spec.py), from these fields."""
        return spec_of(self.raw) if self.raw else GeneratorSpec(self.noise_dim, self.num_classes, self.image_shape,
                                                                 self.psi_input, self.truncation)

    @property
    def psi_input(self) -> bool:
        """A StyleGAN-family graph: it takes `psi`, truncation in w space (default 1)."""
        return self.raw.get("psi_input") == "true"

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path) -> "ModelInfo":
        if meta.get("gan_pack.kind") == CLASSIFIER_KIND:
            raise ModelError(f"{path} is a gan_pack classifier, not a generator; give a generator "
                             f"exported with `ganpack export`")
        if meta.get("gan_pack.kind") == IMAGE_MODEL_KIND:
            raise ModelError(f"{path} is an image model (it takes an image, not noise); run it with "
                             f"ganpack apply {path} IMAGE -o OUT.png")
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise ModelError(f"{path} is not a gan_pack generator: metadata lacks "
                             f"{', '.join(missing)}; export it with `ganpack export`")
        try:
            info = cls(model=meta["model"], arch=meta.get("arch", "?"),
                       noise_dim=int(meta["noise_dim"]), num_classes=int(meta["num_classes"]),
                       class_names=json.loads(meta.get("class_names", "[]")),
                       image_shape=tuple(json.loads(meta["image_shape"])),
                       dataset=meta.get("dataset", "?"), epochs=int(meta.get("epochs", 0)),
                       weights=meta.get("weights", "?"), precision=meta.get("precision", "fp32"),
                       opset=int(meta.get("opset", 0)), version=meta.get("gan_pack.version", "?"),
                       parity=json.loads(meta["parity"]) if "parity" in meta else None, raw=dict(meta),
                       activation_bytes=int(meta["activation_bytes"]) if "activation_bytes" in meta else None,
                       truncation=float(meta["truncation"]) if "truncation" in meta else None)
            if "parity_vs_fp32" in meta:
                problems = parity_problems(json.loads(meta["parity_vs_fp32"]), "parity_vs_fp32")
            else:
                problems = []
        except (ValueError, TypeError, RecursionError) as e:
            raise ModelError(f"{path} has malformed gan_pack metadata ({str(e)[:120]}); re-export it") from e
        problems = info.problems() + problems
        if not problems and SPEC_KEY in meta:
            try:
                written = GeneratorSpec.from_json(meta[SPEC_KEY])
            except (ValueError, TypeError, RecursionError):
                written = None
            if written != info.spec:
                problems.append(f"{SPEC_KEY} does not agree with the fields beside it")
        if problems:
            raise ModelError(f"{path} has malformed gan_pack metadata ({'; '.join(problems[:3])}); re-export it")
        return info

    def problems(self) -> list[str]:
        """Values no real generator has: they would allocate absurd memory or break every reader."""
        p = []
        shape = self.image_shape
        if (len(shape) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in shape)
                or shape[0] > MAX_CHANNELS or int(np.prod(shape, dtype=np.float64)) > MAX_IMAGE_VALUES):
            p.append(f"image_shape {list(shape)[:4]} is not (C <= {MAX_CHANNELS}, H, W) with at most "
                     f"{MAX_IMAGE_VALUES} values")
        if not 1 <= self.noise_dim <= MAX_NOISE_DIM:
            p.append(f"noise_dim {self.noise_dim} is not in 1..{MAX_NOISE_DIM}")
        if self.activation_bytes is not None and not 1 <= self.activation_bytes <= MAX_ACTIVATION_BYTES:
            p.append(f"activation_bytes {self.activation_bytes} is not in 1..{MAX_ACTIVATION_BYTES}")
        if not 0 <= self.num_classes <= MAX_CLASSES:
            p.append(f"num_classes {self.num_classes} is not in 0..{MAX_CLASSES}")
        if not isinstance(self.class_names, list) or not all(isinstance(c, str) for c in self.class_names) \
                or len(self.class_names) not in (0, self.num_classes):
            p.append("class_names is not a list of one name per class")
        if self.truncation is not None and not MIN_TRUNCATION <= self.truncation < float("inf"):
            p.append(f"truncation {self.truncation} is not a number >= {MIN_TRUNCATION}")
        if self.parity is not None:
            p += parity_problems(self.parity, "parity")
        return p

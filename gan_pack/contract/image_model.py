"""The metadata of an image-to-image model (an upscaler, a restorer): what export writes
(`image_model_metadata`) and what every reader parses and bounds (`ImageModelInfo.from_metadata`).
Its spec (contract/spec.py: ImageModelSpec) is the `gan_pack.spec` entry; the fields beside it are for
people and for ONNX's image conventions. numpy-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gan_pack.contract.metadata import PIXEL_FORMATS
from gan_pack.contract.names import CLASSIFIER_KIND, GENERATOR_KIND, IMAGE_MODEL_KIND
from gan_pack.contract.parity import parity_problems
from gan_pack.contract.spec import SPEC_KEY, ImageModelSpec
from gan_pack.errors import ModelError


def image_model_metadata(spec: ImageModelSpec, family: str, source: str, precision: str, opset: int,
                         version: str, tags: list[str] | None = None, dataset: str = "unknown") -> dict[str, str]:
    """An image model's metadata (all strings; JSON where structured)."""
    return {
        "gan_pack.version": version,
        "gan_pack.kind": IMAGE_MODEL_KIND,
        "model": "image-to-image",
        "family": family,
        "arch": spec.arch,
        "source": source,
        "dataset": dataset,
        "scale": str(spec.scale),
        "tags": json.dumps(tags or []),
        "precision": precision,
        "opset": str(opset),
        SPEC_KEY: spec.to_json(),
        "Image.BitmapPixelFormat": PIXEL_FORMATS.get(spec.in_channels, "Rgb8"),
        "Image.ColorSpaceGamma": "SRGB",
        "Image.NominalPixelRange": "Normalized_0_1",
    }


def is_image_model(metadata: dict[str, str]) -> bool:
    return metadata.get("gan_pack.kind") == IMAGE_MODEL_KIND


@dataclass(frozen=True)
class ImageModelInfo:
    """The typed metadata of an exported image model."""

    spec: ImageModelSpec
    family: str
    precision: str
    version: str
    parity: dict | None
    raw: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def scale(self) -> int:
        return self.spec.scale

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path | str) -> "ImageModelInfo":
        kind = meta.get("gan_pack.kind")
        if kind in (GENERATOR_KIND, CLASSIFIER_KIND) or (kind is None and "noise_dim" in meta):
            raise ModelError(f"{path} is a gan_pack {kind or 'generator'} (it takes noise, not an image); give an "
                             f"image model exported with `ganpack export` from an upscaler or restorer")
        if kind != IMAGE_MODEL_KIND or SPEC_KEY not in meta:
            raise ModelError(f"{path} is not a gan_pack image model (its metadata has no image spec); export it "
                             f"with `ganpack export`")
        try:
            spec = ImageModelSpec.from_json(meta[SPEC_KEY])
            parity = json.loads(meta["parity"]) if "parity" in meta else None
            problems = spec.problems() + (parity_problems(parity, "parity") if parity is not None else [])
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            raise ModelError(f"{path} has malformed gan_pack metadata ({str(e)[:120]}); re-export it") from e
        if problems:
            raise ModelError(f"{path} has malformed gan_pack metadata ({'; '.join(problems[:3])}); re-export it")
        return cls(spec, meta.get("family", "?"), meta.get("precision", "fp32"), meta.get("gan_pack.version", "?"),
                   parity, dict(meta))

"""The ONNX contract of a gan_pack model, in one place. numpy only (onnx is imported lazily).

- tensor names: noise (B, noise_dim) float32 [+ labels (B,) int64] -> images (B, C, H, W) in [-1, 1];
- the metadata schema: what `ganpack export` writes (`generator_metadata`), what every reader
  parses (`ModelInfo.from_metadata`), and how it is put into a ModelProto (`set_metadata`);
- parity: how an exported file is compared with its reference (`measure_parity`), and the report
  that travels inside the model and beside it (`ParityReport`, `parity_path`);
- the SHA-256 that names a file in evaluations and derived models.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable

import numpy as np

from gan_pack.errors import ConfigError, ModelError, ParityError

NOISE, LABELS, IMAGES = "noise", "labels", "images"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"          # half weights and compute, float32 inputs and output
    int8 = "int8"          # onnxruntime quantization of the fp32 export


class Weights(str, Enum):
    ema = "ema"            # the EMA generator (smoother samples)
    raw = "raw"            # the last trained generator

BATCH_AXIS = "batch"
GENERATOR_KIND, CLASSIFIER_KIND = "generator", "classifier"
REQUIRED_METADATA = ("model", "noise_dim", "num_classes", "image_shape")
PARITY_BATCHES = (1, 7, 64, 1000)
# The parity bound against the reference, by precision: on the max abs pixel difference for fp32
# and fp16 (vs PyTorch), on the mean abs difference for int8 (vs the fp32 file), where rounding
# moves a few edge pixels by up to 1 even in a good model (measured: shipped generators'
# static int8 files differ by a mean of 0.009 to 0.087).
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.15}
PARITY_METRIC = {"fp32": "max_abs", "fp16": "max_abs", "int8": "mean_abs"}


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- metadata

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


PRODUCER, DOMAIN = "gan_pack", "org.ganpack"
PIXEL_FORMATS = {1: "Gray8", 3: "Rgb8"}


def image_metadata(image_shape) -> dict[str, str]:
    """ONNX's image conventions (onnx/docs/MetadataProps.md) for the `images` output in [-1, 1]."""
    return {"Image.BitmapPixelFormat": PIXEL_FORMATS.get(int(image_shape[0]), "Gray8"),
            "Image.ColorSpaceGamma": "SRGB", "Image.NominalPixelRange": "Normalized_1_1"}


def describe(metadata: dict[str, str]) -> str:
    """A generator in one Markdown paragraph: the ModelProto's doc_string."""
    k, shape = int(metadata.get("num_classes", 0)), json.loads(metadata.get("image_shape", "[1, 28, 28]"))
    labels = f" and `labels` int64 `[batch]` in 0..{k - 1}" if k else ""
    return (f"gan_pack {metadata.get('model', '?')} generator ({metadata.get('arch', '?')}) of "
            f"{metadata.get('dataset', '?')} images. Inputs: `noise` float32 `[batch, {metadata.get('noise_dim')}]` "
            f"(standard normal){labels}. Output: `images` float32 `[batch, {', '.join(map(str, shape))}]` in [-1, 1].")


def set_metadata(model, metadata: dict[str, str]) -> None:
    """Replace an onnx ModelProto's metadata with `metadata` (what ModelInfo.from_metadata reads), and
    fill ONNX's identity fields (producer, version, domain, model_version, doc_string) from it."""
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

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path) -> "ModelInfo":
        if meta.get("gan_pack.kind") == CLASSIFIER_KIND:
            raise ModelError(f"{path} is a gan_pack classifier, not a generator; give a generator "
                             f"exported with `ganpack export`")
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
                       activation_bytes=int(meta["activation_bytes"]) if "activation_bytes" in meta else None)
            if "parity_vs_fp32" in meta:
                problems = parity_problems(json.loads(meta["parity_vs_fp32"]), "parity_vs_fp32")
            else:
                problems = []
        except (ValueError, TypeError, RecursionError) as e:
            raise ModelError(f"{path} has malformed gan_pack metadata ({str(e)[:120]}); re-export it") from e
        problems = info.problems() + problems
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
        if self.parity is not None:
            p += parity_problems(self.parity, "parity")
        return p


MAX_CHANNELS, MAX_IMAGE_VALUES, MAX_NOISE_DIM, MAX_CLASSES = 4, 1 << 24, 1 << 16, 100_000
MAX_ACTIVATION_BYTES = 1 << 34                 # per image: 16 GiB


def parity_problems(parity, key: str) -> list[str]:
    """A stored parity report must be an object whose batches hold numbers (what `info` prints)."""
    batches = parity.get("batches") if isinstance(parity, dict) else None
    numeric = ("batch", "max_abs")
    if not isinstance(batches, list) or not all(
            isinstance(b, dict) and all(isinstance(b.get(k), (int, float)) for k in numeric) for b in batches):
        return [f"{key} is not a parity report"]
    return []


# ---------------------------------------------------------------- parity

@dataclass
class BatchParity:
    batch: int
    max_abs: float
    max_rel: float
    bound: float
    ok: bool
    mean_abs: float = 0.0


@dataclass
class ParityReport:
    """Per batch size: what was compared, the max and mean differences, and the bound, which
    applies to `metric` (max_abs, or mean_abs for int8, whose rounding moves a few pixels a lot)."""

    precision: str
    reference: str
    bound: float
    batches: list[BatchParity] = field(default_factory=list)
    row_independence_max_abs: float = 0.0
    labels_checked: list[int] = field(default_factory=list)
    metric: str = "max_abs"
    row_independence_mean_abs: float = 0.0

    @property
    def row_independence(self) -> float:
        return getattr(self, f"row_independence_{self.metric}")

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.batches) and self.row_independence <= self.bound

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def first_failure(self) -> str:
        what = self.metric.replace("_", " ")
        for b in self.batches:
            if not b.ok:
                return f"batch {b.batch}: {what} difference {getattr(b, self.metric):.3g} > bound {b.bound:.3g}"
        return (f"row independence: a row differs by {self.row_independence:.3g} ({what}) between "
                f"batch 1 and batch {max(x.batch for x in self.batches)} (bound {self.bound:.3g})")

    def table(self, where: str = "onnxruntime CPU") -> str:
        family = self.precision.split("-")[0]
        lines = [f"parity: {family} vs {self.reference} ({self.precision}, {where}; bound on {self.metric})",
                 f"{'batch':>6} {'max abs':>10} {'mean abs':>10} {'max rel':>10} {'bound':>9}  ok"]
        for b in self.batches:
            lines.append(f"{b.batch:>6} {b.max_abs:>10.2e} {b.mean_abs:>10.2e} {b.max_rel:>10.2e} "
                         f"{b.bound:>9.1e}  {'yes' if b.ok else 'NO'}")
        lines.append(f"row independence (batch 1 vs batch {self.batches[-1].batch}): "
                     f"max abs {self.row_independence_max_abs:.2e}, mean abs {self.row_independence_mean_abs:.2e}")
        return "\n".join(lines)


def bound_problems(atol: float | None) -> list[str]:
    """--atol must be a positive, finite number (None: the precision's default)."""
    return [] if atol is None or 0 < atol < float("inf") else [f"--atol must be a positive number, not {atol}"]


def require_onnx(command: str) -> None:
    """The commands that write ONNX graphs (pack, quantize, optimize) need the onnx package, which
    the runtime install leaves out: say so in one line instead of an ImportError."""
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"{command} needs the onnx package: pip install onnx (it comes with [train])") from e


def require_parity(report: ParityReport, what: str, output: Path, allow_mismatch: bool = False) -> None:
    """A failed parity is fatal (nothing is written) unless the caller allows the mismatch."""
    if not report.ok and not allow_mismatch:
        raise ParityError(f"{what}: {report.first_failure()}; nothing was written to {output}")


def parity_summary(parity: dict) -> str:
    """One line of a stored report (this version's or an older one's) for `ganpack info`."""
    cells = ", ".join(f"batch {b['batch']} max abs {b['max_abs']:.1e}" for b in parity.get("batches", []))
    ok = parity.get("ok")
    verdict = "ok" if ok is True else "FAILED" if ok is False else "no bound recorded"
    return f"parity ({parity.get('precision', '?')} vs {parity.get('reference', '?')}): {cells}; {verdict}"


def versus_summary(parity: dict) -> str:
    """One line of an int8 model's stored comparison with its fp32 model."""
    return ", ".join(f"batch {b['batch']} max abs {b['max_abs']:.3f} (mean {b.get('mean_abs', float('nan')):.4f})"
                     for b in parity["batches"])


def parity_path(output: str | Path) -> Path:
    """NAME.parity.json beside NAME.onnx."""
    output = Path(output)
    return output.with_name(output.stem + ".parity.json")


Run = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


def parity_inputs(noise_dim: int, num_classes: int, batch: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The inputs compared at one batch size: seeded by the batch size, every label in turn."""
    noise = np.random.default_rng(batch).standard_normal((batch, noise_dim), dtype=np.float32)
    labels = np.arange(batch, dtype=np.int64) % num_classes if num_classes else None
    return noise, labels


def _differences(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float, float]:
    """Max and mean absolute difference, and the max relative one over |expected| >= 1e-3."""
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    scale = np.abs(expected.astype(np.float64))
    mask = scale >= 1e-3
    max_rel = float((diff[mask] / scale[mask]).max()) if mask.any() else 0.0
    return float(diff.max()), float(diff.mean()), max_rel


def measure_parity(candidate: Run, reference: Run, noise_dim: int, num_classes: int, bound: float,
                   precision: str, reference_name: str, batch_sizes: tuple[int, ...] = PARITY_BATCHES,
                   metric: str = "max_abs") -> ParityReport:
    """Compare `candidate` with `reference` at each batch size, then check that rows of the largest
    batch run alone give the same images (nothing in the graph may mix rows)."""
    report = ParityReport(precision, reference_name, bound, labels_checked=list(range(num_classes)),
                          metric=metric)
    for batch in batch_sizes:
        noise, labels = parity_inputs(noise_dim, num_classes, batch)
        actual = candidate(noise, labels)
        max_abs, mean_abs, max_rel = _differences(actual, reference(noise, labels))
        measured = {"max_abs": max_abs, "mean_abs": mean_abs}[metric]
        report.batches.append(BatchParity(batch, max_abs, max_rel, bound, measured <= bound, mean_abs))
    for row in sorted({0, batch // 2, batch - 1}):
        alone = candidate(noise[row:row + 1], None if labels is None else labels[row:row + 1])
        max_abs, mean_abs, _ = _differences(alone, actual[row:row + 1])
        report.row_independence_max_abs = max(report.row_independence_max_abs, max_abs)
        report.row_independence_mean_abs = max(report.row_independence_mean_abs, mean_abs)
    return report

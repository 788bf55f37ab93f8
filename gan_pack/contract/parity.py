"""Parity: how a model file is compared with its reference (`measure_parity`), the bound each
precision is held to, and the report that travels inside the model and beside it (`ParityReport`,
`parity_path`). numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from gan_pack.errors import ParityError

PARITY_BATCHES = (1, 7, 64, 1000)
# The parity bound against the reference, by precision: on the max abs pixel difference for fp32
# and fp16 (vs PyTorch), on the mean abs difference for int8 (vs the fp32 file), where rounding
# moves a few edge pixels by up to 1 even in a good model (measured: shipped generators'
# static int8 files differ by a mean of 0.009 to 0.087).
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.15}
PARITY_METRIC = {"fp32": "max_abs", "fp16": "max_abs", "int8": "mean_abs"}


def parity_problems(parity, key: str) -> list[str]:
    """A stored parity report must be an object whose batches hold numbers (what `info` prints)."""
    batches = parity.get("batches") if isinstance(parity, dict) else None
    numeric = ("batch", "max_abs")
    if not isinstance(batches, list) or not all(
            isinstance(b, dict) and all(isinstance(b.get(k), (int, float)) for k in numeric) for b in batches):
        return [f"{key} is not a parity report"]
    return []


@dataclass
class BatchParity:
    batch: int
    max_abs: float
    max_rel: float
    bound: float
    ok: bool
    mean_abs: float = 0.0
    height: int = 0               # an image model's input size at this batch (0: a generator's)
    width: int = 0


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


def require_parity(report: ParityReport, what: str, output: Path, allow_mismatch: bool = False) -> None:
    """A failed parity is fatal (nothing is written) unless the caller allows the mismatch."""
    if not report.ok and not allow_mismatch:
        raise ParityError(f"{what}: {report.first_failure()}; nothing was written to {output}", report)


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


ImageRun = Callable[[np.ndarray], np.ndarray]


def image_parity_input(batch: int, channels: int, height: int, width: int) -> np.ndarray:
    """The picture-like input measure_image_parity feeds at one size (the same every time)."""
    from gan_pack.core.test_images import picture_like

    return picture_like(batch, channels, height, width, seed=height * 1000 + width)


def measure_image_parity(candidate: ImageRun, reference: ImageRun, channels: int, sizes, bound: float,
                         precision: str, reference_name: str, metric: str = "max_abs") -> ParityReport:
    """An image model against its reference at each (batch, height, width) on picture-like inputs, then
    each row of the last batch alone against the reference's row alone (as tiles run: one at a time;
    some models, RCAN's, mix the images of a batch in their own forward)."""
    report = ParityReport(precision, reference_name, bound, metric=metric)
    for batch, height, width in sizes:
        image = image_parity_input(batch, channels, height, width)
        actual = candidate(image)
        max_abs, mean_abs, max_rel = _differences(actual, reference(image))
        measured = {"max_abs": max_abs, "mean_abs": mean_abs}[metric]
        report.batches.append(BatchParity(batch, max_abs, max_rel, bound, measured <= bound, mean_abs, height, width))
    for row in range(len(image)):
        max_abs, mean_abs, _ = _differences(candidate(image[row:row + 1]), reference(image[row:row + 1]))
        report.row_independence_max_abs = max(report.row_independence_max_abs, max_abs)
        report.row_independence_mean_abs = max(report.row_independence_mean_abs, mean_abs)
    return report


def nice_bound(x: float) -> float:
    """The smallest of 1, 2, 3 or 5 times a power of ten that is at least x."""
    exponent = int(np.floor(np.log10(x)))
    return next(m * 10.0 ** e for e in (exponent, exponent + 1) for m in (1, 2, 3, 5) if m * 10.0 ** e >= x)


def fp32_verdict(own: float, measured: float, where: str) -> str:
    """Whether an export `measured` from PyTorch is no less exact than PyTorch, whose own fp32 output
    is `own` from float64 at `where`; if so, the bound that accepts it."""
    if measured <= 2 * own:
        return (f"PyTorch's own fp32 output at {where} is up to {own:.2g} from a float64 run of the "
                f"same weights, so this is fp32 rounding: --atol {nice_bound(measured):g} accepts it")
    return (f"that is more than fp32 rounding (PyTorch's own fp32 output at {where} is within "
            f"{own:.2g} of float64): check the module's operators (docs/export.md)")

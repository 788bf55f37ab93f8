"""torch -> ONNX export of a generator, then the contract's checks (metadata, parity).

Export and validation are two functions (`to_onnx`, `check_parity`); `write_package` composes
them and writes the file only when the parity holds. What it writes is a `Packaged` generator: a
run's (`package_run`, here) or any PyTorch module's (`importer.package_module`). int8 is the fp32
export, checked against PyTorch, then quantized and checked against the fp32 file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import gan_pack
from gan_pack import runlog
from gan_pack.checkpoint import checkpoint_config, checkpoint_data, load_checkpoint, load_weights
from gan_pack.contract import (
    DEFAULT_ATOL,
    IMAGES,
    LABELS,
    NOISE,
    PARITY_BATCHES,
    ParityReport,
    bound_problems,
    generator_metadata,
    measure_parity,
    parity_inputs,
    parity_path,
    require_parity,
    set_metadata,
)
from gan_pack.errors import CheckpointError, ConfigError, GanPackError, ModelError, in_chain
from gan_pack.files import atomic_path, check_output_path, write_text_atomic
from gan_pack.graph import activation_bytes, fold_batchnorm_into_next_gemm, rename_batch_axis
from gan_pack.models import build_generator
from gan_pack.rewrite import REWRITE_MODES, rewrite_for_cpu

OPSETS = range(18, 24)            # what the dynamo exporter writes and onnxruntime runs
EXPORT_EXAMPLE_BATCH = 4


@dataclass
class ExportOptions:
    """What `ganpack export` takes besides the source and output paths."""

    weights: str = "ema"                          # ema | raw
    opset: int = 18
    precision: str = "fp32"                       # fp32 | fp16 | int8
    atol: float | None = None                     # None: the precision's default
    batch_sizes: tuple[int, ...] = PARITY_BATCHES
    allow_mismatch: bool = False
    rewrite: str = "auto"                         # auto | on | off: see rewrite.py

    def __post_init__(self) -> None:
        problems = []
        if self.weights not in ("ema", "raw"):
            problems.append(f"--weights must be ema or raw, not {self.weights!r}")
        if self.opset not in OPSETS:
            problems.append(f"--opset {self.opset} is not supported; use {OPSETS[0]}..{OPSETS[-1]}")
        if self.precision not in DEFAULT_ATOL:
            problems.append(f"--precision must be fp32, fp16 or int8, not {self.precision!r}")
        if self.rewrite not in REWRITE_MODES:
            problems.append(f"--rewrite must be auto, on or off, not {self.rewrite!r}")
        problems += bound_problems(self.atol)
        if problems:
            raise ConfigError("; ".join(problems))
        if self.atol is None:
            self.atol = DEFAULT_ATOL[self.precision]


class ExportedGenerator(nn.Module):
    """The ONNX contract: noise (B, noise_dim) float32 [+ labels (B,) int64] -> images float32."""

    def __init__(self, generator: nn.Module, half: bool):
        super().__init__()
        self.generator = generator.half() if half else generator
        self.half = half

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.half:
            noise = noise.half()
        # onnxruntime's fast Tanh can overshoot +-1 by an ulp; the contract promises [-1, 1]
        return self.generator(noise, labels).float().clamp(-1.0, 1.0)


def load_generator(source: str | Path, weights: str = "ema") -> tuple[nn.Module, dict]:
    """The eval-mode generator of a run folder or checkpoint, and the checkpoint dict."""
    ckpt = load_checkpoint(source)
    recipe = checkpoint_config(ckpt, source).recipe
    info = checkpoint_data(ckpt, source)
    generator = build_generator(recipe, info.num_classes, info.image_shape)
    state = ckpt["generator_ema"] if weights == "ema" else ckpt["generator"]
    if state is None:
        raise CheckpointError(f"{source} was trained without EMA; export it with --weights raw")
    load_weights(generator, state, f"{weights} generator", source)
    return generator.eval(), ckpt


def dynamo_export(module: nn.Module, args: tuple, path: Path, input_names: list[str],
                  output_names: list[str], opset: int) -> None:
    """torch.onnx.export (dynamo) with the first axis of every input a `batch` Dim; one file."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    shapes = {name: {0: batch} for name in input_names}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=True, input_names=input_names,
                          output_names=output_names, dynamic_shapes=shapes, opset_version=opset,
                          external_data=False, verbose=False)


def to_onnx(module: ExportedGenerator, path: Path, noise_dim: int, num_classes: int, opset: int) -> None:
    """The generator with the contract's names: noise [+ labels] -> images."""
    noise, labels = parity_inputs(noise_dim, num_classes, EXPORT_EXAMPLE_BATCH)
    if num_classes:
        dynamo_export(module, (torch.from_numpy(noise), torch.from_numpy(labels)), path,
                      [NOISE, LABELS], [IMAGES], opset)
    else:
        dynamo_export(module, (torch.from_numpy(noise),), path, [NOISE], [IMAGES], opset)


def onnx_runner(path: Path):
    """images = run(noise, labels) through a CPU onnxruntime session of `path`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(noise: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        feeds = {NOISE: noise} if labels is None else {NOISE: noise, LABELS: labels}
        return session.run([IMAGES], feeds)[0]
    return run


def torch_runner(generator: nn.Module):
    @torch.no_grad()
    def run(noise: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        return generator(torch.from_numpy(noise), None if labels is None else torch.from_numpy(labels)).numpy()
    return run


def check_parity(onnx_path: Path, reference: nn.Module, noise_dim: int, num_classes: int,
                 options: ExportOptions) -> ParityReport:
    """Compare onnxruntime (CPU) with the eval-mode fp32 PyTorch generator at several batch sizes."""
    precision = "fp32" if options.precision == "int8" else options.precision
    bound = DEFAULT_ATOL["fp32"] if options.precision == "int8" else options.atol
    return measure_parity(onnx_runner(onnx_path), torch_runner(reference), noise_dim, num_classes,
                          bound, precision, "pytorch fp32 eval", options.batch_sizes)


@dataclass
class Packaged:
    """A generator ready to write: eval mode, speaking the contract (noise [+ labels] -> images in
    [-1, 1]), with the metadata that describes it (generator_metadata, before precision and parity)."""

    generator: nn.Module
    noise_dim: int
    num_classes: int
    metadata: dict[str, str]


def package_run(source: str | Path, weights: str = "ema") -> Packaged:
    """A run folder's (or checkpoint's) generator, packaged."""
    generator, ckpt = load_generator(source, weights)
    config, info = ckpt["config"], ckpt["dataset"]
    metadata = generator_metadata(config, info, ckpt["epoch"], ckpt["step"], weights, "fp32", 0, gan_pack.__version__)
    return Packaged(generator, int(config["noise_dim"]), int(info["num_classes"]), metadata)


def _export_onnx(packaged: Packaged, path: Path, output: Path, options: ExportOptions) -> ParityReport:
    """Write the fp32/fp16 model to `path` with its metadata and parity report (fatal on failure:
    then the caller's atomic write leaves nothing at `output`)."""
    import onnx

    generator, noise_dim, num_classes = packaged.generator, packaged.noise_dim, packaged.num_classes
    half = options.precision == "fp16"
    try:
        to_onnx(ExportedGenerator(copy.deepcopy(generator), half).eval(), path, noise_dim, num_classes, options.opset)
    except Exception as e:  # torch.export raises many types; the trap it hits most is a fixed batch
        raise export_failure(e) from e
    model = onnx.load(str(path))
    rename_batch_axis(model)
    fold_batchnorm_into_next_gemm(model)
    metadata = {**packaged.metadata, "precision": "fp16" if half else "fp32", "opset": str(options.opset)}
    if not half:                          # fp16 is for GPUs, whose ConvTranspose is fast already
        with tempfile.TemporaryDirectory() as scratch:
            record = rewrite_for_cpu(model, options.rewrite, scratch)
        if record:
            metadata["rewrites"] = json.dumps(record)
    metadata["activation_bytes"] = str(activation_bytes(model))
    set_metadata(model, metadata)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    report = check_parity(path, generator, noise_dim, num_classes, options)
    require_parity(report, "export does not match PyTorch", output, options.allow_mismatch)
    set_metadata(model, {**metadata, "parity": json.dumps(report.to_dict())})
    onnx.save(model, str(path))
    return report


def export_failure(e: Exception) -> BaseException:
    """torch.export's error, as one line that says what to change in the module; a Ctrl-C or a full
    disk that it wrapped comes out as itself."""
    from gan_pack.files import DISK_ERRNOS

    disk = in_chain(e, OSError)
    if in_chain(e, KeyboardInterrupt) is not None:
        return KeyboardInterrupt()
    if disk is not None and disk.errno in DISK_ERRNOS:
        return disk
    if isinstance(e, GanPackError):
        return e
    text = " ".join(str(e).split())
    if "batch" in text and ("constraint" in text.lower() or "specializ" in text.lower() or "guard" in text.lower()):
        return ModelError("the module's forward fixes the batch size (e.g. view(64, ...) or a shape kept as a "
                          "constant), so the graph cannot take other batch sizes; use view(x.size(0), ...) or "
                          "reshape(-1, ...)")
    return ModelError(f"torch.onnx.export could not trace the generator ({type(e).__name__}: {text[:300]}); "
                      f"see docs/export.md for what a traceable forward needs")


def write_package(packaged: Packaged, output: Path, options: ExportOptions) -> list[ParityReport]:
    """Write `output` (+ NAME.parity.json), proven against PyTorch; returns the parity reports (fp32
    or fp16 vs PyTorch; for int8 that one, then int8 vs the fp32 file). Nothing is left at
    `output` on failure."""
    from gan_pack.quantize import quantize_onnx

    with atomic_path(output) as tmp:
        if options.precision != "int8":
            reports = [_export_onnx(packaged, tmp, output, options)]
            parity_file = reports[0].to_dict()
        else:
            with tempfile.TemporaryDirectory() as scratch:
                fp32 = Path(scratch) / "fp32.onnx"
                reports = [_export_onnx(packaged, fp32, output, options)]
                reports.append(quantize_onnx(fp32, tmp, output, "auto", options.atol, options.allow_mismatch))
            parity_file = {"fp32_vs_pytorch": reports[0].to_dict(), "int8_vs_fp32": reports[1].to_dict()}
    write_text_atomic(parity_path(output), json.dumps(parity_file, indent=2) + "\n")
    return reports


def check_outputs(output: str | Path) -> Path:
    output = check_output_path(output, ".onnx")
    check_output_path(parity_path(output))
    return output


def export_generator(source: str | Path, output: str | Path,
                     options: ExportOptions | None = None) -> list[ParityReport]:
    """Export a run's generator to `output` (see write_package) and note it in the run folder."""
    options = options or ExportOptions()
    output = check_outputs(output)
    reports = write_package(package_run(source, options.weights), output, options)
    run_dir = Path(source) if Path(source).is_dir() else Path(source).parent
    if runlog.is_run(run_dir):
        runlog.record_export(run_dir, output, reports[-1].precision, options.weights)
    return reports

"""torch -> ONNX export of a generator, proven against PyTorch.

`onnx_graph` makes the graph (torch.onnx, then the graph edits and the CPU rewrite); `derive`
(onnx_tools.variant) stamps, proves and writes it; `write_generator` composes them for any
`Exportable` generator: a run's (`exportable_run`, here) or any PyTorch module's
(`importer.exportable_module`). int8 is the fp32 export, proven against PyTorch, then quantized and
proven against the fp32 file.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
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
from gan_pack.contract.choices import Precision, Rewrite, Weights
from gan_pack.contract.metadata import generator_metadata, spec_of
from gan_pack.contract.names import LABELS, NOISE, PSI, PSI_AXIS
from gan_pack.contract.parity import (
    DEFAULT_ATOL,
    PARITY_BATCHES,
    ParityReport,
    bound_problems,
    fp32_verdict,
    parity_inputs,
    parity_path,
)
from gan_pack.contract.spec import SPEC_KEY, GeneratorSpec
from gan_pack.core import runlog
from gan_pack.core.files import atomic_path, check_output_path, write_text_atomic
from gan_pack.core.folder import folder_dataset_name
from gan_pack.core.log import Log, say
from gan_pack.errors import CheckpointError, ConfigError, GanPackError, ModelError, ParityError, in_chain
from gan_pack.onnx_tools.graph import fold_batchnorm_into_next_gemm, optional_input, rename_batch_axis
from gan_pack.onnx_tools.quantize import quantize_onnx
from gan_pack.onnx_tools.rewrite import rewrite_for_cpu
from gan_pack.onnx_tools.variant import Proof, derive
from gan_pack.pytorch.checkpoint import checkpoint_config, checkpoint_data, load_checkpoint, load_weights
from gan_pack.pytorch.models import build_generator

OPSETS = range(18, 24)            # what the dynamo exporter writes and onnxruntime runs
EXPORT_EXAMPLE_BATCH = 4
HINT_ROWS = 64                     # rounding_hint runs float64 this many rows at a time


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
        problems = (Weights.problem("--weights", self.weights) + Precision.problem("--precision", self.precision)
                    + Rewrite.problem("--rewrite", self.rewrite) + bound_problems(self.atol))
        if self.opset not in OPSETS:
            problems.append(f"--opset {self.opset} is not supported; use {OPSETS[0]}..{OPSETS[-1]}")
        if problems:
            raise ConfigError("; ".join(problems))
        if self.atol is None:
            self.atol = DEFAULT_ATOL[self.precision]


class ExportedGenerator(nn.Module):
    """The ONNX contract: noise (B, noise_dim) float32 [+ labels (B,) int64] [+ psi (B,)] -> images float32."""

    def __init__(self, generator: nn.Module, half: bool):
        super().__init__()
        self.generator = generator.half() if half else generator
        self.half = half

    def forward(self, noise: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        picks = {}
        chooser = getattr(self.generator, "subclasses", None)
        if chooser is not None:        # --subclasses: the pick reads the fp32 noise, before any halving
            picks["subclasses"], picks["mix"] = chooser.sample(noise, rest[0])
        if self.half:
            noise = noise.half()
        # onnxruntime's fast Tanh can overshoot +-1 by an ulp; the contract promises [-1, 1]
        return self.generator(noise, *rest, **picks).float().clamp(-1.0, 1.0)


def load_generator(source: str | Path, weights: str = "ema") -> tuple[nn.Module, dict]:
    """The eval-mode generator of a run folder or checkpoint, and the checkpoint dict."""
    ckpt = load_checkpoint(source)
    recipe = checkpoint_config(ckpt, source).recipe
    info = checkpoint_data(ckpt, source)
    generator = build_generator(recipe, info.num_classes, info.image_shape, info.subclass_counts)
    state = ckpt["generator_ema"] if weights == "ema" else ckpt["generator"]
    if state is None:
        raise CheckpointError(f"{source} was trained without EMA; export it with --weights raw")
    load_weights(generator, state, f"{weights} generator", source)
    return generator.eval(), ckpt


def dynamo_export(module: nn.Module, args: tuple, path: Path, input_names: list[str],
                  output_names: list[str], opset: int) -> None:
    """torch.onnx.export (dynamo) with the first axis of every input a `batch` Dim; one file."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    shapes: tuple = tuple({0: batch} for _ in input_names)
    parameters = inspect.signature(module.forward).parameters.values()
    if len(shapes) > 1 and any(p.kind is p.VAR_POSITIONAL for p in parameters):
        shapes = (shapes[0], shapes[1:])                    # forward(noise, *rest): rest is one tuple
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=True, input_names=input_names,
                          output_names=output_names, dynamic_shapes=shapes, opset_version=opset,
                          external_data=False, verbose=False)


def to_onnx(module: ExportedGenerator, path: Path, noise_dim: int, num_classes: int, opset: int,
            psi: bool = False) -> None:
    """The generator with the spec's names (contract/spec.py): noise [+ labels] [+ psi] -> images."""
    noise, labels = parity_inputs(noise_dim, num_classes, EXPORT_EXAMPLE_BATCH)
    examples = {NOISE: torch.from_numpy(noise), LABELS: None if labels is None else torch.from_numpy(labels),
                PSI: torch.full((EXPORT_EXAMPLE_BATCH,), 0.7)}
    spec = GeneratorSpec(noise_dim, num_classes, (1, 1, 1), psi)        # the image shape is the graph's to say
    names = [t.name for t in spec.inputs()]
    dynamo_export(module, tuple(examples[name] for name in names), path, names, [t.name for t in spec.outputs()],
                  opset)


def torch_runner(generator: nn.Module):
    @torch.no_grad()
    def run(noise: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        inputs = [torch.from_numpy(x) for x in (noise, labels) if x is not None]
        return generator(*inputs).numpy()
    return run


def parity_proof(reference: nn.Module, options: ExportOptions, name: str = "pytorch fp32 eval") -> Proof:
    """How an export is proven: onnxruntime (CPU) against the eval-mode fp32 PyTorch generator at
    several batch sizes (for int8, the fp32 export it is quantized from)."""
    precision = "fp32" if options.precision == "int8" else options.precision
    bound = DEFAULT_ATOL["fp32"] if options.precision == "int8" else options.atol
    return Proof(torch_runner(reference), name, precision, bound, "export does not match PyTorch",
                 batches=options.batch_sizes)


@dataclass
class Exportable:
    """A generator ready to write: eval mode, speaking the contract (noise [+ labels] -> images in
    [-1, 1]), with the metadata that describes it (generator_metadata, before precision and parity)."""

    generator: nn.Module
    noise_dim: int
    num_classes: int
    metadata: dict[str, str]
    psi: bool = False             # a StyleGAN's truncation input (graph.optional_input gives it its default 1)
    # what the export is proven against, when not `generator` itself (a StyleGAN2's own forward)
    reference: nn.Module | None = None
    reference_name: str = "pytorch fp32 eval"


def exportable_run(source: str | Path, weights: str = "ema", subclass_blend: float = 0.0) -> Exportable:
    """A run folder's (or checkpoint's) generator, exportable; with `subclass_blend` (a --subclasses
    run), each sample moves towards a second subclass of its class by up to that weight."""
    if not 0 <= subclass_blend <= 1:
        raise ConfigError(f"--subclass-blend is a weight from 0 (off) to 1, not {subclass_blend}")
    generator, ckpt = load_generator(source, weights)
    config, info = ckpt["config"], ckpt["dataset"]
    if info.get("name") == "folder":        # a run from before folder data sets were named after their folder
        info = {**info, "name": folder_dataset_name(config.get("data_dir"))}
    metadata = generator_metadata(config, info, ckpt["epoch"], ckpt["step"], weights, "fp32", 0, gan_pack.__version__)
    if subclass_blend:
        if getattr(generator, "subclasses", None) is None:
            raise ConfigError(f"--subclass-blend blends the subclasses of a run trained with --subclasses; "
                              f"{source} has none: drop --subclass-blend")
        if int(config["noise_dim"]) < 3:
            raise ConfigError(f"--subclass-blend reads noise[:, 1] and noise[:, 2]; {source} has a noise of "
                              f"{config['noise_dim']}: drop --subclass-blend")
        generator.subclasses.blend = subclass_blend
        metadata["subclass_blend"] = f"{subclass_blend:g}"
    return Exportable(generator, int(config["noise_dim"]), int(info["num_classes"]), metadata)


def onnx_graph(exportable: Exportable, options: ExportOptions, log: Log = None):
    """The generator as an onnx ModelProto with the contract's names and a dynamic batch; for
    fp32, its kernels rewritten for CPUs where that measures faster. Returns (model, metadata)."""
    import onnx

    half = options.precision == "fp16"
    metadata = {**exportable.metadata, "precision": "fp16" if half else "fp32", "opset": str(options.opset)}
    metadata[SPEC_KEY] = spec_of(metadata).to_json()           # kept in step with the fields by set_metadata
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "export.onnx"
        say(log, f"exporting with torch.onnx (opset {options.opset}, {metadata['precision']})")
        try:
            to_onnx(ExportedGenerator(copy.deepcopy(exportable.generator), half).eval(), path, exportable.noise_dim,
                    exportable.num_classes, options.opset, exportable.psi)
        except Exception as e:  # torch.export raises many types; the trap it hits most is a fixed batch
            raise export_failure(e) from e
        model = onnx.load(str(path))
        rename_batch_axis(model)
        if exportable.psi:
            optional_input(model, PSI, np.ones(1, np.float32), PSI_AXIS)
        fold_batchnorm_into_next_gemm(model)
        if not half:                          # fp16 is for GPUs, whose ConvTranspose is fast already
            say(log, f"CPU kernel rewrite: {options.rewrite}")
            record = rewrite_for_cpu(model, options.rewrite, scratch)
            if record:
                metadata["rewrites"] = json.dumps(record)
    return model, metadata


def _export_onnx(exportable: Exportable, output: Path, options: ExportOptions, target: Path | None,
                 log: Log = None) -> ParityReport:
    """Write the fp32/fp16 model with its metadata and parity report against PyTorch (fatal on
    failure: then nothing is left at `output`)."""
    model, metadata = onnx_graph(exportable, options, log)
    say(log, f"parity against PyTorch at batch {', '.join(map(str, options.batch_sizes))}")
    reference = exportable.reference or exportable.generator
    proof = parity_proof(reference, options, exportable.reference_name)
    try:
        report = derive(model, metadata, output, proof, options.allow_mismatch, target, check=True)
    except ParityError as e:
        if options.precision != "fp32" or e.report is None:
            raise
        hint = rounding_hint(reference, e.report, exportable.noise_dim, exportable.num_classes)
        raise ParityError(f"{e}; {hint}" if hint else str(e), e.report) from None
    assert report is not None
    return report


def fp32_distance(module: nn.Module, *inputs: torch.Tensor, rows: int | None = None) -> float | None:
    """How far the module's fp32 output on `inputs` is from a float64 run of the same weights (max
    abs); None when it cannot run in float64 (a module with fp32-only kernels). rows: the float64 run
    takes this many rows at a time (a generator's rows are independent; float64 activations take
    twice the fp32 run's memory, over 8 GB for a 64 px generator's whole 1000-image batch)."""
    try:
        with torch.no_grad():
            fp32 = module(*inputs)
            wide = copy.deepcopy(module).double()
            step, worst = rows or len(fp32), 0.0
            for i in range(0, len(fp32), step):
                part = [x[i:i + step].double() if x.is_floating_point() else x[i:i + step] for x in inputs]
                worst = max(worst, float((fp32[i:i + step].double() - wide(*part)).abs().max()))
            return worst
    except Exception:  # any failure in float64: say nothing more than the parity failure
        return None


def rounding_hint(reference: nn.Module, report: ParityReport, noise_dim: int, num_classes: int) -> str:
    """Whether a failed fp32 parity is fp32 rounding: PyTorch's own fp32 output against a float64 run of
    the same weights, at the batch with the largest difference. Two programs each within r of the
    exact result differ by at most 2r, so an export within 2r is no less exact than PyTorch is.
    "" when the module cannot run in float64."""
    worst = max(report.batches, key=lambda b: b.max_abs)
    noise, labels = parity_inputs(noise_dim, num_classes, worst.batch)
    own = fp32_distance(reference, *[torch.from_numpy(x) for x in (noise, labels) if x is not None],
                        rows=HINT_ROWS)
    return "" if own is None else fp32_verdict(own, worst.max_abs, f"batch {worst.batch}")


def export_failure(e: Exception) -> BaseException:
    """torch.export's error, as one line that says what to change in the module; a Ctrl-C or a full
    disk that it wrapped comes out as itself."""
    from gan_pack.core.files import DISK_ERRNOS

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


def write_generator(generator: Exportable, output: Path, options: ExportOptions, log: Log = None) -> list[ParityReport]:
    """Write `output` (+ NAME.parity.json), proven against PyTorch; returns the parity reports (fp32
    or fp16 vs PyTorch; for int8 that one, then int8 vs the fp32 file). Nothing is left at
    `output` on failure."""
    if options.precision != "int8":
        reports = [_export_onnx(generator, output, options, None, log)]
        parity_file = reports[0].to_dict()
    else:
        with tempfile.TemporaryDirectory() as scratch, atomic_path(output) as tmp:
            fp32 = Path(scratch) / "fp32.onnx"
            reports = [_export_onnx(generator, output, options, fp32, log)]
            say(log, "quantizing to int8")
            reports.append(quantize_onnx(fp32, output, "auto", options.atol, options.allow_mismatch, target=tmp))
        parity_file = {"fp32_vs_pytorch": reports[0].to_dict(), "int8_vs_fp32": reports[1].to_dict()}
    write_text_atomic(parity_path(output), json.dumps(parity_file, indent=2) + "\n")
    return reports


def check_outputs(output: str | Path) -> Path:
    output = check_output_path(output, ".onnx")
    check_output_path(parity_path(output))
    return output


def export_generator(source: str | Path, output: str | Path, options: ExportOptions | None = None,
                     log: Log = None) -> list[ParityReport]:
    """Export a run's generator to `output` (see write_generator) and note it, with the step it was
    trained to, in the run folder."""
    options = options or ExportOptions()
    output = check_outputs(output)
    generator = exportable_run(source, options.weights)
    reports = write_generator(generator, output, options, log)
    run_dir = Path(source) if Path(source).is_dir() else Path(source).parent
    if runlog.is_run(run_dir):
        runlog.record_export(run_dir, output, reports[-1].precision, options.weights,
                             int(generator.metadata["steps"]), int(generator.metadata["epochs"]))
    return reports


def export_for_pack(source: str | Path, folder: Path, weights: str = "ema", fp16: bool = False,
                    log: Log = None) -> tuple[Path, dict[str, Path]]:
    """A run's generator exported into `folder` for `ganpack pack`: the fp32 .onnx and, with fp16,
    the fp16 variant (made from PyTorch: it cannot be made from the fp32 file)."""
    generator = exportable_run(source, weights)
    main = folder / "generator.onnx"
    write_generator(generator, main, ExportOptions(weights=weights), log)
    exported = {}
    if fp16:
        exported["fp16"] = folder / "generator.fp16.onnx"
        write_generator(generator, exported["fp16"], ExportOptions(weights=weights, precision="fp16"), log)
    return main, exported

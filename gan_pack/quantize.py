"""int8 variants of an exported generator with onnxruntime's quantization tools. No torch.

Static quantization (QDQ, per-channel weights) calibrates activations on the generator's own
inputs: standard-normal noise and labels cycling through the classes. Dynamic quantization
quantizes weights ahead of time and activations on the fly. Both start from the model after
onnxruntime's recommended pre-processing (shape inference and graph optimisation).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from gan_pack.contract import (
    DEFAULT_ATOL,
    ParityReport,
    bound_problems,
    file_sha256,
    measure_parity,
    require_onnx,
    require_parity,
    set_metadata,
)
from gan_pack.errors import ConfigError, ModelError
from gan_pack.files import atomic_path, check_output_path
from gan_pack.graph import activation_bytes
from gan_pack.rewrite import rewrite_graph, tap_nodes

MODES = ("auto", "static", "dynamic")
CONVOLUTIONS = {"Conv", "ConvTranspose"}
PARITY_BATCHES = (1, 7, 64)


def default_output(model: Path) -> Path:
    return model.with_name(f"{model.stem}.int8.onnx")


def choose_mode(model: Path) -> str:
    """auto: dynamic for all-matrix-product generators (fastest and lossless on the MLP here),
    static for convolutional ones (dynamic leaves transposed convolutions in float, and slower)."""
    import onnx

    ops = {node.op_type for node in onnx.load(str(model), load_external_data=False).graph.node}
    return "static" if ops & CONVOLUTIONS else "dynamic"


def _calibration_reader(info, n: int, batch: int, seed: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(seed)
            self.feeds = []
            for start in range(0, n, batch):
                count = min(batch, n - start)
                feed = {"noise": rng.standard_normal((count, info.noise_dim), dtype=np.float32)}
                if info.conditional:
                    feed["labels"] = (np.arange(start, start + count) % info.num_classes).astype(np.int64)
                self.feeds.append(feed)

        def get_next(self):
            return self.feeds.pop(0) if self.feeds else None

    return Reader()


def _quantize(source: Path, target: Path, mode: str, info, calibration_n: int, seed: int) -> dict | None:
    """Quantize `source` into `target`; returns the rewrites applied first (None if none): transposed
    convolutions become phase convolutions, which static quantization turns into QLinearConv (a
    ConvTranspose would stay in float between its Dequantize and Quantize nodes)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as scratch:
        model = onnx.load(str(source))
        done = rewrite_graph(model, phases=True, taps=False)
        if done:
            source = Path(scratch) / "rewritten.onnx"
            onnx.save(model, str(source))
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(prepared), str(target), _calibration_reader(info, calibration_n, 64, seed),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=tap_nodes(model))
    return done.record() if done else None


def _parity(reference, candidate, mode: str, bound: float) -> ParityReport:
    """The int8 file against the fp32 one, through onnxruntime, with the contract's inputs."""
    info = reference.info
    return measure_parity(candidate.generate, reference.generate, info.noise_dim, info.num_classes,
                          bound, f"int8-{mode}", "fp32 onnxruntime", PARITY_BATCHES, "mean_abs")


def quantize_onnx(model: Path, target: Path, output: Path, mode: str = "auto", atol: float | None = None,
                  allow_mismatch: bool = False, calibration_n: int = 512, seed: int = 0) -> ParityReport:
    """Write the int8 variant of the fp32 generator `model` to `target` (a temp path the caller
    moves to `output`), with its metadata and parity against the fp32 file (fatal on failure)."""
    import onnx

    from gan_pack.runtime import OnnxGenerator

    reference = OnnxGenerator(model)
    if reference.info.precision != "fp32":
        raise ModelError(f"{model} is {reference.info.precision}; quantize the fp32 export")
    mode = choose_mode(model) if mode == "auto" else mode
    rewrites = _quantize(model, target, mode, reference.info, calibration_n, seed)
    report = _parity(reference, OnnxGenerator(target), mode, atol or DEFAULT_ATOL["int8"])
    require_parity(report, "the int8 model does not match the fp32 one", output, allow_mismatch)
    quantized = onnx.load(str(target))
    # the fp32 export's parity against PyTorch does not describe this file: replace it
    meta = {k: v for k, v in reference.info.raw.items() if k != "parity"}
    meta.update({"precision": report.precision, "parity_vs_fp32": json.dumps(report.to_dict()),
                 "quantized_from_sha256": file_sha256(model)})
    if rewrites:
        meta["rewrites"] = json.dumps(rewrites)
    meta["activation_bytes"] = str(activation_bytes(quantized))
    set_metadata(quantized, meta)
    onnx.save(quantized, str(target))
    OnnxGenerator(target)                                   # the contract still holds
    return report


MAX_CALIBRATION_N = 100_000


def quantize_generator(model: str | Path, output: str | Path | None = None, mode: str = "auto",
                       calibration_n: int = 512, seed: int = 0, atol: float | None = None,
                       allow_mismatch: bool = False) -> ParityReport:
    """Write an int8 variant of an exported fp32 generator (default NAME.int8.onnx beside it);
    returns its parity report against the fp32 one."""
    problems = bound_problems(atol)
    if mode not in MODES:
        problems.append(f"--mode must be auto, static or dynamic, not {mode!r}")
    if not 1 <= calibration_n <= MAX_CALIBRATION_N:
        problems.append(f"--calibration-n must be in 1..{MAX_CALIBRATION_N}, not {calibration_n}")
    if problems:
        raise ConfigError("; ".join(problems))
    model = Path(model)
    output = check_output_path(output or default_output(model), ".onnx")
    require_onnx("quantize")
    with atomic_path(output) as tmp:
        return quantize_onnx(model, tmp, output, mode, atol, allow_mismatch, calibration_n, seed)

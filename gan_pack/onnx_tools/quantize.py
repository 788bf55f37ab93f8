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

from gan_pack.contract.choices import QuantizeMode
from gan_pack.contract.parity import DEFAULT_ATOL, ParityReport, bound_problems
from gan_pack.core.files import check_output_path, file_sha256
from gan_pack.errors import ConfigError, ModelError
from gan_pack.onnx_tools.rewrite import rewrite_graph, tap_nodes
from gan_pack.onnx_tools.variant import Proof, derive, require_onnx
from gan_pack.runtime.generator import OnnxGenerator

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
        # ONNX's own shape inference sizes every tensor of these convolutional graphs; onnxruntime's
        # symbolic one gives up on some (a fastgan's), and then leaves a file in the working folder.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(prepared), str(target), _calibration_reader(info, calibration_n, 64, seed),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=tap_nodes(model))
    return done.record() if done else None


def quantize_onnx(model: Path, output: Path, mode: str = "auto", atol: float | None = None,
                  allow_mismatch: bool = False, calibration_n: int = 512, seed: int = 0,
                  target: Path | None = None) -> ParityReport:
    """Write the int8 variant of the fp32 generator `model` to `output` (or to `target`, a temp path
    the caller moves there), proven against the fp32 file (fatal on failure)."""
    import onnx

    reference = OnnxGenerator(model)
    if reference.info.precision != "fp32":
        raise ModelError(f"{model} is {reference.info.precision}; quantize the fp32 export")
    mode = choose_mode(reference.path) if mode == "auto" else mode
    with tempfile.TemporaryDirectory() as scratch:
        quantized_path = Path(scratch) / "int8.onnx"
        rewrites = _quantize(reference.path, quantized_path, mode, reference.info, calibration_n, seed)
        quantized = onnx.load(str(quantized_path))
    # the fp32 export's parity against PyTorch does not describe this file: replace it
    meta = {k: v for k, v in reference.info.raw.items() if k != "parity"}
    meta.update({"precision": f"int8-{mode}", "quantized_from_sha256": file_sha256(reference.path)})
    if rewrites:
        meta["rewrites"] = json.dumps(rewrites)
    proof = Proof(reference.generate, "fp32 onnxruntime", f"int8-{mode}", atol or DEFAULT_ATOL["int8"],
                  "the int8 model does not match the fp32 one", key="parity_vs_fp32", metric="mean_abs",
                  batches=PARITY_BATCHES)
    report = derive(quantized, meta, output, proof, allow_mismatch, target)
    assert report is not None
    return report


MAX_CALIBRATION_N = 100_000


def quantize_generator(model: str | Path, output: str | Path | None = None, mode: str = "auto",
                       calibration_n: int = 512, seed: int = 0, atol: float | None = None,
                       allow_mismatch: bool = False) -> ParityReport:
    """Write an int8 variant of an exported fp32 generator (default NAME.int8.onnx beside it);
    returns its parity report against the fp32 one."""
    problems = bound_problems(atol)
    problems += QuantizeMode.problem("--mode", mode)
    if not 1 <= calibration_n <= MAX_CALIBRATION_N:
        problems.append(f"--calibration-n must be in 1..{MAX_CALIBRATION_N}, not {calibration_n}")
    if problems:
        raise ConfigError("; ".join(problems))
    model = Path(model)
    output = check_output_path(output or default_output(model), ".onnx")
    require_onnx("quantize")
    return quantize_onnx(model, output, mode, atol, allow_mismatch, calibration_n, seed)

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

from gan_pack.errors import ConfigError, ModelError
from gan_pack.files import atomic_path

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


def _quantize(source: Path, target: Path, mode: str, info, calibration_n: int, seed: int) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(prepared), str(target), _calibration_reader(info, calibration_n, 64, seed),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def parity_against(reference, candidate, seed: int = 0) -> dict:
    """Max abs difference of the candidate's images from the reference's, per batch size."""
    batches = []
    for batch in PARITY_BATCHES:
        noise = reference.noise(batch, seed + batch)
        labels = reference.resolve_labels(batch, None)
        diff = np.abs(candidate.generate(noise, labels) - reference.generate(noise, labels))
        batches.append({"batch": batch, "max_abs": float(diff.max()), "mean_abs": float(diff.mean())})
    return {"reference": "fp32 onnxruntime", "batches": batches}


def quantize_generator(model: str | Path, output: str | Path | None = None, mode: str = "auto",
                       calibration_n: int = 512, seed: int = 0) -> dict:
    """Write an int8 variant of an exported fp32 generator; returns its parity against the fp32 one."""
    try:
        import onnx
    except ImportError as e:
        raise ConfigError("quantize needs the onnx package: pip install onnx (it comes with [train])") from e
    from gan_pack.runtime import OnnxGenerator, set_metadata

    if mode not in MODES:
        raise ConfigError(f"--mode must be auto, static or dynamic, not {mode!r}")
    if calibration_n < 1:
        raise ConfigError(f"--calibration-n must be at least 1, not {calibration_n}")
    model = Path(model)
    reference = OnnxGenerator(model)
    if reference.info.precision != "fp32":
        raise ModelError(f"{model} is {reference.info.precision}; quantize the fp32 export")
    output = Path(output) if output else default_output(model)
    mode = choose_mode(model) if mode == "auto" else mode
    if output.suffix != ".onnx":
        raise ConfigError(f"output {output} must end in .onnx")
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        _quantize(model, tmp, mode, reference.info, calibration_n, seed)
        parity = parity_against(reference, OnnxGenerator(tmp))
        quantized = onnx.load(str(tmp))
        # the fp32 export's parity against PyTorch does not describe this file: replace it
        meta = {k: v for k, v in reference.info.raw.items() if k != "parity"}
        meta.update({"precision": f"int8-{mode}", "parity_vs_fp32": json.dumps(parity),
                     "quantized_from_sha256": _sha256(model)})
        set_metadata(quantized, meta)
        onnx.save(quantized, str(tmp))
        OnnxGenerator(tmp)                                   # the contract still holds
    return {"output": str(output), "mode": mode, **parity}

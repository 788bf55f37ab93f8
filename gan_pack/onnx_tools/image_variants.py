"""The variants of an image model, ONNX to ONNX, each judged before it ships: the CUDA variant (fp16
weights and compute, float32 image in and out, clamped on the GPU) and the int8 CPU variant (static
QDQ, per-channel weights, calibrated on picture-like images). A variant's 8-bit output is compared with
the fp32 model's on picture-like images, on the provider it is made for; one under its PSNR floor is
refused with its figure, and nothing is written. onnx + onnxruntime, no torch.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np

from gan_pack.contract.metadata import set_metadata
from gan_pack.contract.names import IMAGE, IMAGES
from gan_pack.core.files import file_sha256
from gan_pack.core.log import Log, say
from gan_pack.core.test_images import picture_like, psnr
from gan_pack.errors import ConfigError, ModelError
from gan_pack.onnx_tools.variant import _destination
from gan_pack.runtime.image_model import ImageModel

PSNR_FLOOR = {"fp16": 45.0, "int8": 35.0}        # dB against the fp32 model, 8-bit output
JUDGE_COUNT, JUDGE_SIDE, JUDGE_SEED = 4, 96, 0
CALIBRATION_COUNT, CALIBRATION_SIDE = 16, 64


def judge_images(model: ImageModel, count: int = JUDGE_COUNT, side: int = JUDGE_SIDE, seed: int = JUDGE_SEED):
    """Picture-like (H, W, C) uint8 images of the model's input size rules."""
    side = model.spec.fixed or side
    batch = picture_like(count, model.spec.in_channels, side, side, seed=seed)
    return list((batch.transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8))


def variant_psnr(candidate: ImageModel, reference: ImageModel) -> float:
    """The lowest PSNR of `candidate`'s 8-bit output against `reference`'s over the judging images."""
    return min(psnr(candidate.apply(image, tile=0), reference.apply(image, tile=0))
               for image in judge_images(reference))


def clamp_unit(model):
    """End the graph in Clip(0, 1) on its images (on the GPU, where it costs nothing)."""
    from onnx import helper, numpy_helper

    unclamped = f"{IMAGES}/unclamped"
    for node in model.graph.node:
        node.output[:] = [unclamped if o == IMAGES else o for o in node.output]
        node.input[:] = [unclamped if i == IMAGES else i for i in node.input]
    model.graph.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), name)
                                    for name, v in (("clamp/min", 0.0), ("clamp/max", 1.0))])
    model.graph.node.append(helper.make_node("Clip", [unclamped, "clamp/min", "clamp/max"], [IMAGES], name="clamp"))
    return model


def _judged(graph, meta: dict, output: Path, reference: ImageModel, family: str, device: str,
            target: Path | None) -> float:
    """Write `graph` with `meta`, judge it against `reference` on `device`, keep it only above its floor."""
    import onnx

    floor = PSNR_FLOOR[family]
    with _destination(output, target) as path:
        set_metadata(graph, meta)
        onnx.save(graph, str(path))
        figure = variant_psnr(ImageModel(path, device=device), reference)
        if figure < floor:
            raise ModelError(f"the {family} variant of {reference.path.name} is {figure:.1f} dB from the fp32 model on "
                             f"picture-like images, under its {floor:g} dB floor: it was not made")
        set_metadata(graph, {**meta, "psnr_vs_fp32": json.dumps({"db": round(figure, 2), "floor_db": floor})})
        onnx.save(graph, str(path))
    return figure


def _derived_meta(reference: ImageModel, precision: str) -> dict:
    meta = {k: v for k, v in reference.info.raw.items() if k not in ("parity", "exporter")}
    meta.update({"precision": precision, "derived_from_sha256": file_sha256(reference.path)})
    return meta


def make_image_cuda(main: Path, output: Path, target: Path | None = None, log: Log = None) -> float:
    """The CUDA variant (fp16) of the fp32 image model `main`; returns its PSNR against `main`."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from gan_pack.onnx_tools.cuda import CUDA_NEEDED, cuda_options_of
    from gan_pack.runtime.session import cuda_available

    if not cuda_available():
        raise ConfigError(CUDA_NEEDED)
    reference = ImageModel(main)
    say(log, f"making the CUDA variant of {main.name} (fp16) and judging it on the CUDA provider")
    graph = clamp_unit(convert_float_to_float16(copy.deepcopy(onnx.load(str(main))), keep_io_types=True))
    meta = {**_derived_meta(reference, "fp16"), "provider": "cuda", "cuda_options": json.dumps(cuda_options_of(graph))}
    return _judged(graph, meta, output, reference, "fp16", "cuda", target)


def make_image_int8(main: Path, output: Path, target: Path | None = None, log: Log = None) -> float:
    """The int8 CPU variant of the fp32 image model `main`; returns its PSNR against `main`."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reference = ImageModel(main)
    say(log, f"quantizing {main.name} to int8 (static, calibrated on picture-like images)")
    side = reference.spec.fixed or reference.spec.padded(CALIBRATION_SIDE, CALIBRATION_SIDE)[0]
    batches = [picture_like(2, reference.spec.in_channels, side, side, seed=100 + i)
               for i in range(CALIBRATION_COUNT // 2)]

    class Reader(CalibrationDataReader):
        def get_next(self):
            return {IMAGE: batches.pop(0)} if batches else None

    with tempfile.TemporaryDirectory() as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        quant_pre_process(str(main), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        graph = onnx.load(str(quantized))
    return _judged(graph, _derived_meta(reference, "int8-static"), output, reference, "int8", "cpu", target)

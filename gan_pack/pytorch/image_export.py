"""torch -> ONNX export of an image-to-image model, with dynamic batch, height and width, proven
against spandrel's torch forward at two sizes (non-square, odd where the rules allow) and batch 2.

The graph takes `image` (B, C, H, W) in [0, 1] meeting the model's size rules and gives `images`
(B, C', H*scale, W*scale) in [0, 1]; padding to the rules and tiling are the runtime's
(runtime/image_model.py). torch.onnx's dynamo exporter goes first; where it cannot trace a model the
TorchScript exporter is tried, and the file says which one made it.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import gan_pack
from gan_pack.contract.image_model import image_model_metadata
from gan_pack.contract.names import IMAGE, IMAGES
from gan_pack.contract.parity import (
    DEFAULT_ATOL,
    ParityReport,
    fp32_verdict,
    image_parity_input,
    measure_image_parity,
    parity_path,
)
from gan_pack.contract.spec import ImageModelSpec
from gan_pack.core.files import atomic_path, write_text_atomic
from gan_pack.core.log import Log, say
from gan_pack.errors import ModelError
from gan_pack.pytorch.export import fp32_distance
from gan_pack.pytorch.image_models import ImageExportable

MAX_SIDE = 1 << 14


def parity_sizes(spec: ImageModelSpec) -> tuple[tuple[int, int, int], ...]:
    """(batch, height, width) the export is proven at: two sizes, non-square and odd where the rules allow,
    the second at batch 2."""
    if spec.fixed:
        return (1, spec.fixed, spec.fixed), (2, spec.fixed, spec.fixed)
    base = max(spec.minimum, 8)
    first, second = spec.padded(base + 5, base + 12), spec.padded(base + 11, base + 4)
    if not spec.square and spec.multiple_of > 1 and first[0] == first[1]:
        first = (first[0], first[1] + spec.multiple_of)
    return (1, *first), (2, *second)


def _dynamic_dims(spec: ImageModelSpec) -> dict:
    if spec.fixed:
        return {0: torch.export.Dim("batch", min=1, max=1 << 16)}
    m = spec.multiple_of
    low = max(2, -(-spec.minimum // m))
    height = torch.export.Dim("height_blocks" if m > 1 else "height", min=low, max=MAX_SIDE // m)
    width = height if spec.square else torch.export.Dim("width_blocks" if m > 1 else "width", min=low,
                                                        max=MAX_SIDE // m)
    return {0: torch.export.Dim("batch", min=1, max=1 << 16), 2: m * height if m > 1 else height,
            3: m * width if m > 1 else width}


EXPORTERS = ("dynamo", "torchscript")
# Architectures whose decomposition crashes torch.export (a segmentation fault, which no handler can
# catch), so the TorchScript exporter alone is used (measured with torch 2.14.1 and 2.11).
TORCHSCRIPT_ONLY = frozenset({"SPAN", "GRL"})


def trace(module: torch.nn.Module, spec: ImageModelSpec, path: Path, opset: int, exporter: str) -> None:
    """Write the graph of `module` to `path` with torch.onnx's `exporter` (dynamo or torchscript)."""
    _, h, w = parity_sizes(spec)[0]
    example = torch.rand(2, spec.in_channels, h, w, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=[IMAGE], output_names=[IMAGES],
                              dynamic_shapes=({**_dynamic_dims(spec)},), opset_version=opset, external_data=False,
                              verbose=False)
        else:
            axes = {0: "batch"} if spec.fixed else {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=[IMAGE], output_names=[IMAGES],
                              dynamic_axes={IMAGE: axes, IMAGES: dict(axes)}, opset_version=min(opset, 20))


def bytes_per_pixel(model, spec: ImageModelSpec) -> int:
    """Activations one input pixel keeps alive, from the graph's shapes at a fixed size."""
    import onnx

    from gan_pack.onnx_tools.graph import activation_bytes

    side = spec.fixed or spec.padded(64, 64)[0]
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for axis, value in ((0, 1), (2, side), (3, side)):
        dims[axis].ClearField("dim_param")
        dims[axis].dim_value = value
    try:
        return max(1, activation_bytes(fixed) // (side * side))
    except Exception:       # shape inference that cannot follow the graph: no estimate
        return 0


def torch_image_runner(module: torch.nn.Module):
    @torch.no_grad()
    def run(image: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(image)).float().numpy()
    return run


def image_rounding_hint(exportable: ImageExportable, report: ParityReport) -> str:
    """Whether a failed fp32 parity is fp32 rounding (see rounding_hint): spandrel's forward on the
    parity input of the worst size. "" when the model cannot run in float64."""
    worst = max(report.batches, key=lambda b: b.max_abs)
    image = image_parity_input(worst.batch, exportable.spec.in_channels, worst.height, worst.width)
    own = fp32_distance(exportable.module(), torch.from_numpy(image))
    return "" if own is None else fp32_verdict(own, worst.max_abs, f"{worst.batch}x{worst.height}x{worst.width}")


def write_image_model(exportable: ImageExportable, output: Path, precision: str = "fp32", opset: int = 18,
                      atol: float | None = None, allow_mismatch: bool = False, log: Log = None) -> ParityReport:
    """Export, prove at parity_sizes against spandrel's forward (fp32 torch, also for fp16, within its
    bound), and write `output` and NAME.parity.json. torch.onnx's dynamo exporter goes first; where it
    cannot trace the model, or its graph does not match at every size, the TorchScript exporter is
    tried. Nothing is left at `output` on failure."""
    import onnx

    from gan_pack.contract.metadata import set_metadata
    from gan_pack.runtime.image_model import ImageModel

    half = precision == "fp16"
    bound = atol if atol is not None else DEFAULT_ATOL[precision]
    sizes = parity_sizes(exportable.spec)
    reference = torch_image_runner(exportable.module())
    tried, mismatch = [], None
    with atomic_path(output) as tmp, tempfile.TemporaryDirectory() as scratch:
        for exporter in (("torchscript",) if exportable.spec.arch in TORCHSCRIPT_ONLY else EXPORTERS):
            path = Path(scratch) / f"{exporter}.onnx"
            say(log, f"exporting {exportable.source} with torch.onnx ({exporter}, opset {opset}, {precision})")
            try:
                trace(exportable.module(half, rewrite=True), exportable.spec, path, opset, exporter)
                model = onnx.load(str(path))
                spec = ImageModelSpec(**{**exportable.spec.__dict__, "bytes_per_pixel": bytes_per_pixel(
                    model, exportable.spec), "parity_bound": bound, "parity_sizes": sizes})
                metadata = {**image_model_metadata(spec, exportable.family, exportable.source, precision, opset,
                                                   gan_pack.__version__, exportable.tags, exportable.dataset),
                            "exporter": exporter}
                set_metadata(model, metadata)
                onnx.save(model, str(tmp))
                say(log, f"parity against spandrel's forward at {', '.join(f'{b}x{h}x{w}' for b, h, w in sizes)}")
                report = measure_image_parity(ImageModel(tmp).run, reference, spec.in_channels, sizes, bound,
                                              precision, "spandrel pytorch fp32")
            except Exception as e:  # torch.onnx and onnxruntime raise many types
                if isinstance(e, (KeyboardInterrupt, MemoryError)):
                    raise
                tried.append(f"{exporter}: {type(e).__name__}: {' '.join(str(e).split())[:160]}")
                continue
            if report.ok or (allow_mismatch and exporter == "torchscript"):
                break
            tried.append(f"{exporter}: {report.first_failure()}")
            mismatch = report
        else:
            hint = image_rounding_hint(exportable, mismatch) if mismatch is not None and not half else ""
            raise ModelError(f"{exportable.spec.arch} does not export with parity ({'; '.join(tried)}); nothing was "
                             f"written to {output}" + (f"; {hint}" if hint else ""))
        set_metadata(model, {**metadata, "parity": json.dumps(report.to_dict())})
        onnx.save(model, str(tmp))
        ImageModel(tmp)
    write_text_atomic(parity_path(output), json.dumps(report.to_dict(), indent=2) + "\n")
    return report

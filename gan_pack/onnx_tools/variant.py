"""One pipeline for every model file gan_pack derives: `ganpack export` (from PyTorch), `quantize`
(int8 from fp32) and `optimize` (CPU kernels) each build a candidate graph, and `derive` stamps it
with its metadata and activation size, proves it against its reference (fatal on mismatch unless
allowed), records the report in the model, saves it atomically and reopens it as a generator, so the
file on disk is one that loads. Nothing is left at the output when any step fails.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gan_pack.contract.metadata import set_metadata
from gan_pack.contract.parity import PARITY_BATCHES, ParityReport, Run, measure_parity, require_parity
from gan_pack.core.files import atomic_path
from gan_pack.errors import ConfigError
from gan_pack.onnx_tools.graph import activation_bytes
from gan_pack.runtime.generator import OnnxGenerator


def require_onnx(command: str) -> None:
    """The commands that write ONNX graphs (pack, quantize, optimize) need the onnx package, which
    the base install leaves out: say so in one line instead of an ImportError."""
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        from gan_pack.core.extras import install_hint

        raise ConfigError(f"{command} needs the onnx package: {install_hint('onnx')}") from e


@dataclass(frozen=True)
class Proof:
    """How a derived file is proven: against what, within which bound, and where the report goes."""

    reference: Run                  # images = reference(noise, labels)
    reference_name: str             # what the report calls it ("pytorch fp32 eval", "fp32 onnxruntime")
    precision: str                  # what it calls the candidate (fp32, fp16, int8-static, ...)
    bound: float
    failure: str                    # the error's first words ("export does not match PyTorch")
    key: str = "parity"             # the metadata key of the report
    metric: str = "max_abs"
    batches: tuple[int, ...] = PARITY_BATCHES
    device: str = "cpu"             # where the candidate runs: the provider it is made for


@contextlib.contextmanager
def _destination(output: Path, target: Path | None) -> Iterator[Path]:
    if target is not None:              # the caller writes several files and moves them itself
        yield target
    else:
        with atomic_path(output) as tmp:
            yield tmp


def derive(model, metadata: dict[str, str], output: Path, proof: Proof | None, allow_mismatch: bool = False,
           target: Path | None = None, check: bool = False) -> ParityReport | None:
    """Write the onnx ModelProto `model` to `output` (or to `target`, a temp path the caller moves
    there) with `metadata` and its activation size, proven against `proof` (None: the graph is the
    reference's own, only the metadata changes). check: run onnx's full checker on it too."""
    import onnx

    metadata = {**metadata, "activation_bytes": str(activation_bytes(model))}
    with _destination(Path(output), target) as path:
        set_metadata(model, metadata)
        onnx.save(model, str(path))
        if check:
            onnx.checker.check_model(str(path), full_check=True)
        candidate = OnnxGenerator(path, device=proof.device if proof else "cpu")    # the contract and metadata hold
        report = None
        if proof is not None:
            info = candidate.info
            report = measure_parity(candidate.generate, proof.reference, info.noise_dim, info.num_classes,
                                    proof.bound, proof.precision, proof.reference_name, proof.batches, proof.metric)
            require_parity(report, proof.failure, output, allow_mismatch)
            set_metadata(model, {**metadata, proof.key: json.dumps(report.to_dict())})
            onnx.save(model, str(path))
            OnnxGenerator(path, device=proof.device)         # and still load once the report is in
    return report

"""`ganpack optimize`: rewrite an exported fp32 generator onto faster CPU kernels (rewrite.py), proven
against the file it came from, and record its activation size. onnx + onnxruntime, no torch."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gan_pack.contract.choices import OptimizeMode
from gan_pack.contract.parity import DEFAULT_ATOL, ParityReport, bound_problems
from gan_pack.core.files import check_output_path, file_sha256
from gan_pack.errors import ConfigError, ModelError
from gan_pack.onnx_tools.rewrite import rewrite_for_cpu
from gan_pack.onnx_tools.variant import Proof, derive, require_onnx
from gan_pack.runtime.generator import OnnxGenerator


@dataclass
class Optimized:
    """What optimize did: the rewrite record (None: nothing to rewrite), the parity report of a
    rewritten graph against the original (None: the graph was not changed), and whether it wrote."""

    record: dict | None
    report: ParityReport | None
    written: bool
    path: Path                      # the file written, or that would have been


def _was_rewritten(raw: dict[str, str]) -> bool:
    try:
        return bool(json.loads(raw["rewrites"])["kept"])
    except (KeyError, ValueError, TypeError):
        return False


def _reference(model: Path) -> OnnxGenerator:
    reference = OnnxGenerator(model)
    info = reference.info
    if info.precision != "fp32":
        raise ModelError(f"{model} is {info.precision}; optimize the fp32 export (int8 from "
                         f"ganpack quantize is rewritten already)")
    if _was_rewritten(info.raw):
        raise ModelError(f"{model} was rewritten already ({info.raw['rewrites']}); optimize the original export")
    return reference


def optimize_generator(model: str | Path, output: str | Path | None = None, mode: str = "auto",
                       atol: float | None = None, allow_mismatch: bool = False) -> Optimized:
    """Rewrite an exported fp32 generator's kernels (default: in place, atomically), and record its
    activation size (metadata `activation_bytes`, which the runtime sizes batches by). A rewritten
    graph is proven against the file it came from (parity at batch 1, 7, 64 and 1000, and row
    independence; fatal on mismatch) and records `rewrites`, `parity_vs_original` and
    `rewritten_from_sha256`. Nothing is written when nothing would change."""
    problems = bound_problems(atol) + OptimizeMode.problem("--mode", mode)
    if problems:
        raise ConfigError("; ".join(problems))
    require_onnx("optimize")
    import onnx

    reference = _reference(Path(model))
    source, info = reference.path, reference.info
    output = check_output_path(output or source, ".onnx")
    graph = onnx.load(str(source))
    with tempfile.TemporaryDirectory() as scratch:
        record = rewrite_for_cpu(graph, mode, scratch)
    kept = record is not None and record["kept"]
    if not kept and info.activation_bytes is not None and output == source:
        return Optimized(record, None, False, output)
    meta = dict(info.raw)
    if record is not None:
        meta["rewrites"] = json.dumps(record)
    proof = None
    if kept:
        meta["rewritten_from_sha256"] = file_sha256(source)
        proof = Proof(reference.generate, "the original fp32 file", "fp32", atol or DEFAULT_ATOL["fp32"],
                      "the rewritten model does not match the original", key="parity_vs_original")
    return Optimized(record, derive(graph, meta, output, proof, allow_mismatch), True, output)

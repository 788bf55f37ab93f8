"""A Triton model repository entry for a packaged generator (`ganpack pack --triton`): Triton's
onnxruntime backend serves it, and the same Open Inference Protocol clients work against it and
against `ganpack serve`."""

from __future__ import annotations

import shutil
from pathlib import Path

from gan_pack.contract.spec import GeneratorSpec
from gan_pack.core.files import check_output_path
from gan_pack.package.pack import staging
from gan_pack.runtime.generator import OnnxGenerator


def triton_config(name: str, spec: GeneratorSpec, max_batch: int = 1024, delay_us: int = 2000) -> str:
    """config.pbtxt for Triton's onnxruntime backend, from the generator's spec: dims without the
    batch axis; labels and psi, (batch,) in the graph, are dims [1] reshaped to [] as Triton's docs do
    for per-item scalars; psi is optional (the graph's default, 1, where absent)."""
    inputs = ",\n".join(t.triton() for t in spec.inputs())
    outputs = ",\n".join(t.triton() for t in spec.outputs())
    return (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch}\n'
            f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
            f"dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}\n"
            f"instance_group [ {{ count: 1 kind: KIND_AUTO }} ]\n")


def write_triton(model: Path, name: str, repository: str | Path, max_batch: int = 1024) -> Path:
    """REPOSITORY/NAME/config.pbtxt and REPOSITORY/NAME/1/model.onnx, built beside and renamed in."""
    out = check_output_path(Path(repository) / name, folder=True)
    info = OnnxGenerator(model).info
    with staging(out) as folder:
        (folder / "1").mkdir()
        shutil.copyfile(model, folder / "1" / "model.onnx")
        (folder / "config.pbtxt").write_text(triton_config(name, info.spec, max_batch))
    return out

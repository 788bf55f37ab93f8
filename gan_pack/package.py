"""`ganpack pack`: one folder that describes a generator to every runtime and can be checked where it
finally runs.

    dist/NAME/
      NAME.onnx                the generator (+ NAME.fp16.onnx, NAME.int8.onnx: variants)
      NAME.json                the manifest: the metadata as plain JSON, for runtimes that cannot read
                               metadata_props (onnxruntime-web and -node), with every file's size and SHA-256
      NAME.golden.json         golden vectors: fixed inputs and the images each model file must give
      NAME.parity.json         the export's parity report
      NAME.png                 a sample grid
      NAME.eval.json           the evaluation (with --eval, or carried over when it names this very file)
      README.md                the model card (Hugging Face YAML front matter)
      SHA256SUMS               every file's SHA-256, `sha256sum -c` style

The folder is built beside its destination and renamed into place, so a failure leaves nothing.
Packing needs the onnx package (a packed .onnx gets ONNX's identity fields); `verify` needs neither
onnx nor torch.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

import gan_pack
from gan_pack.contract import (
    DEFAULT_ATOL,
    ModelInfo,
    file_sha256,
    image_metadata,
    parity_path,
    require_onnx,
    set_metadata,
)
from gan_pack.errors import ConfigError, ModelError
from gan_pack.files import OutputPathError, check_output_path, make_folder, write_failure
from gan_pack.noise import portable_noise
from gan_pack.runtime import OnnxGenerator

PACKAGE_FORMAT, GOLDEN_FORMAT = "gan_pack.package/1", "gan_pack.golden/1"
GOLDEN_COUNT, GOLDEN_SEED = 4, 2024
# How far this machine's images may stray from the packed ones, by precision family (a CPU with other
# vector units, another onnxruntime, the CUDA provider): the metric and its bound.
GOLDEN_TOLERANCE = {"fp32": ("max_abs", 1e-3), "fp16": ("max_abs", DEFAULT_ATOL["fp16"]), "int8": ("mean_abs", 0.05)}
VARIANTS = ("fp16", "int8")
SUMS = "SHA256SUMS"


@dataclass
class PackOptions:
    name: str | None = None                 # default: the output folder's name
    variants: tuple[str, ...] = ()
    license: str = "mit"
    weights: str = "ema"
    classifier: str | None = None           # --eval: evaluate with this classifier ...
    data_dir: str | None = None             # ... against this real data
    eval_n: int = 10000

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"--variants takes fp16 and int8, not {', '.join(unknown)}")
        if (self.classifier is None) != (self.data_dir is None):
            raise ConfigError("--eval needs both --classifier and --data-dir")


def encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def decode(text: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape)


def family(precision: str) -> str:
    return precision.split("-")[0]


# ---------------------------------------------------------------- the pieces

@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temp folder beside `out`, renamed to `out` only if the block succeeds."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputPathError(f"{out} already exists; remove it or choose another -o")
    make_folder(out.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    except OSError as e:        # a place that looks writable but is not (e.g. /proc), or a full disk
        raise write_failure(out, e) from e
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)              # mkdtemp makes 0700; a package is for others to read
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def stamp(source: Path, target: Path) -> ModelInfo:
    """Copy an exported generator, adding ONNX's identity fields and image conventions if it lacks
    them; the graph is untouched. Returns its metadata."""
    import onnx

    model = onnx.load(str(source))
    meta = {p.key: p.value for p in model.metadata_props}
    info = ModelInfo.from_metadata(meta, source)
    set_metadata(model, {**meta, **{k: v for k, v in image_metadata(info.image_shape).items() if k not in meta}})
    onnx.save(model, str(target))
    return info


def golden_vectors(generators: dict[str, OnnxGenerator], info: ModelInfo) -> dict:
    """GOLDEN_COUNT fixed inputs (every class spread over them) and the images each model file gives."""
    noise = portable_noise(GOLDEN_SEED, 0, GOLDEN_COUNT, info.noise_dim)
    k = info.num_classes
    labels = [round(i * (k - 1) / max(GOLDEN_COUNT - 1, 1)) for i in range(GOLDEN_COUNT)] if k else None
    vectors = [{"noise": encode(noise[i]), "label": None if labels is None else labels[i], "images": {}}
               for i in range(GOLDEN_COUNT)]
    tolerance = {}
    for name, g in generators.items():
        images = g.generate(noise, None if labels is None else np.asarray(labels, dtype=np.int64))
        for vector, image in zip(vectors, images):
            vector["images"][name] = encode(image)
        metric, bound = GOLDEN_TOLERANCE[family(g.info.precision)]
        tolerance[name] = {"metric": metric, "bound": bound}
    return {"format": GOLDEN_FORMAT, "noise_dim": info.noise_dim, "image_shape": list(info.image_shape),
            "tolerance": tolerance, "vectors": vectors}


def manifest(name: str, folder: Path, generators: dict[str, OnnxGenerator], evaluation: dict | None) -> dict:
    """The facts of the metadata, as plain JSON, and every file of the folder (size, SHA-256)."""
    info = generators[f"{name}.onnx"].info
    raw = info.raw
    k = info.num_classes
    inputs = [{"name": "noise", "dtype": "float32", "shape": ["batch", info.noise_dim]}]
    if k:
        inputs.append({"name": "labels", "dtype": "int64", "shape": ["batch"]})
    files = []
    for path in sorted(folder.iterdir()):
        entry = {"path": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if path.name in generators:
            meta = generators[path.name].info
            entry.update(role="model" if path.name == f"{name}.onnx" else "variant", precision=meta.precision,
                         opset=meta.opset, parity=meta.parity or json.loads(meta.raw.get("parity_vs_fp32", "null")))
        files.append(entry)
    return {
        "format": PACKAGE_FORMAT, "name": name, "gan_pack_version": gan_pack.__version__,
        "contract": {"inputs": inputs, "outputs": [{"name": "images", "dtype": "float32",
                                                     "shape": ["batch", *info.image_shape], "range": [-1, 1]}]},
        "model": info.model, "arch": info.arch, "dataset": info.dataset,
        "noise_dim": info.noise_dim, "noise_distribution": raw.get("noise_distribution", "standard_normal"),
        "num_classes": k, "class_names": info.class_names, "image_shape": list(info.image_shape),
        "output_range": [-1, 1], "precision": info.precision, "opset": info.opset, "parity": info.parity,
        "training": json.loads(raw.get("train_config", "{}")), "golden": {"file": f"{name}.golden.json",
                                                                        "count": GOLDEN_COUNT},
        "evaluation": summary(evaluation), "metadata": raw, "files": files,
    }


EVAL_FIGURES = ("fcd", "fcd_floor_train_vs_test", "fcd_ratio_to_floor", "conditional_accuracy", "class_kl",
                "precision", "recall", "density", "coverage", "n", "seed", "classifier_sha256")


def summary(evaluation: dict | None) -> dict | None:
    return None if evaluation is None else {k: evaluation[k] for k in EVAL_FIGURES if k in evaluation}


def write_sums(folder: Path) -> None:
    lines = [f"{file_sha256(p)}  {p.name}\n" for p in sorted(folder.iterdir()) if p.name != SUMS]
    (folder / SUMS).write_text("".join(lines))


# ---------------------------------------------------------------- pack

def place_models(source: Path, folder: Path, name: str, options: PackOptions) -> dict[str, Path]:
    """NAME.onnx (exported from a run, or a stamped copy of an .onnx) and the variants asked for."""
    main = folder / f"{name}.onnx"
    if source.is_file() and source.suffix == ".onnx":
        if "fp16" in options.variants:
            raise ConfigError("--variants fp16 is exported from PyTorch: pack the run folder, not the .onnx")
        parity = stamp(source, main).parity
        if parity:
            (folder / parity_path(main).name).write_text(json.dumps(parity, indent=2) + "\n")
    else:
        from gan_pack.export import ExportOptions, package_run, write_package

        packaged = package_run(source, options.weights)
        write_package(packaged, main, ExportOptions(weights=options.weights))
        if "fp16" in options.variants:
            write_package(packaged, folder / f"{name}.fp16.onnx", ExportOptions(weights=options.weights,
                                                                                 precision="fp16"))
    models = {main.name: main}
    if "fp16" in options.variants:
        models[f"{name}.fp16.onnx"] = folder / f"{name}.fp16.onnx"
    if "int8" in options.variants:
        from gan_pack.quantize import quantize_generator

        quantize_generator(main, folder / f"{name}.int8.onnx")
        models[f"{name}.int8.onnx"] = folder / f"{name}.int8.onnx"
    return models


def evaluation_for(source: Path, main: Path, options: PackOptions) -> dict | None:
    """A fresh evaluation (--eval), or NAME.eval.json beside the source if it names this very file."""
    if options.classifier is not None:
        from gan_pack.evaluate import evaluate_generator

        result = evaluate_generator(main, options.classifier, options.data_dir, n=options.eval_n)
        return {**result, "model": main.name}
    beside = source.with_name(source.stem + ".eval.json") if source.suffix == ".onnx" else None
    if beside is not None and beside.is_file():
        with contextlib.suppress(ValueError, OSError):
            result = json.loads(beside.read_text())
            if isinstance(result, dict) and result.get("model_sha256") == file_sha256(main):
                return {**result, "model": main.name}
    return None


def pack(source: str | Path, out: str | Path, options: PackOptions | None = None) -> Path:
    """Write the package of a run folder, checkpoint or exported .onnx into the folder `out`."""
    from gan_pack.card import model_card
    from gan_pack.images import save_grid

    options, source = options or PackOptions(), Path(source)
    out = check_output_path(out, folder=True)
    name = options.name or out.name
    if not source.exists():
        raise ModelError(f"{source} does not exist; give a run folder, a checkpoint or an exported .onnx")
    require_onnx("pack")
    with staging(out) as folder:
        models = place_models(source, folder, name, options)
        generators = {file: OnnxGenerator(path) for file, path in models.items()}     # each opened once
        main, g = models[f"{name}.onnx"], generators[f"{name}.onnx"]
        k = g.info.num_classes
        save_grid(folder / f"{name}.png", g.sample(10 * k if k else 64, seed=0), 10 if k else 8)
        evaluation = evaluation_for(source, main, options)
        if evaluation is not None:
            (folder / f"{name}.eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        (folder / f"{name}.golden.json").write_text(json.dumps(golden_vectors(generators, g.info)) + "\n")
        facts = manifest(name, folder, generators, evaluation)          # lists every file written so far
        (folder / f"{name}.json").write_text(json.dumps(facts, indent=2) + "\n")
        (folder / "README.md").write_text(model_card(facts, evaluation, options.license))
        write_sums(folder)
    return out


# ---------------------------------------------------------------- a Triton model repository

def triton_config(name: str, info: ModelInfo, max_batch: int = 1024, delay_us: int = 2000) -> str:
    """config.pbtxt for Triton's onnxruntime backend: dims without the batch axis; labels, (batch,)
    in the graph, are dims [1] reshaped to [] as Triton's docs do for per-item scalars."""
    inputs = [f'  {{ name: "noise" data_type: TYPE_FP32 dims: [ {info.noise_dim} ] }}']
    if info.conditional:
        inputs.append('  { name: "labels" data_type: TYPE_INT64 dims: [ 1 ] reshape: { shape: [ ] } }')
    dims = ", ".join(map(str, info.image_shape))
    return (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch}\n'
            f"input [\n{(','+chr(10)).join(inputs)}\n]\n"
            f'output [\n  {{ name: "images" data_type: TYPE_FP32 dims: [ {dims} ] }}\n]\n'
            f"dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}\n"
            f"instance_group [ {{ count: 1 kind: KIND_AUTO }} ]\n")


def write_triton(model: Path, name: str, repository: str | Path, max_batch: int = 1024) -> Path:
    """REPOSITORY/NAME/config.pbtxt and REPOSITORY/NAME/1/model.onnx, built beside and renamed in."""
    out = check_output_path(Path(repository) / name, folder=True)
    info = OnnxGenerator(model).info
    with staging(out) as folder:
        (folder / "1").mkdir()
        shutil.copyfile(model, folder / "1" / "model.onnx")
        (folder / "config.pbtxt").write_text(triton_config(name, info, max_batch))
    return out

"""`ganpack pack` and `ganpack verify` for an image model (an upscaler, a restorer): the same folder as a
generator's, its manifest (gan_pack.image-package/1) holding the image spec, its golden vectors input
images and each model file's output, its variants (cuda fp16, int8) judged by PSNR against the fp32
model before they ship, with --eval its PSNR against Pillow's bicubic on a test set, a picture of both,
and a model card with the training data's notice.

    NAME/ NAME.onnx (+ NAME.cuda.onnx, NAME.int8.onnx), NAME.json, NAME.golden.json, NAME.parity.json,
          NAME.png, NAME.eval.json (--eval), README.md, SHA256SUMS
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

import gan_pack
from gan_pack.contract.package_format import (
    GOLDEN_SEED,
    GOLDEN_TOLERANCE,
    IMAGE_GOLDEN_FORMAT,
    IMAGE_PACKAGE_FORMAT,
    encode,
    family,
)
from gan_pack.contract.parity import parity_path
from gan_pack.core.files import file_sha256
from gan_pack.core.log import Log, say
from gan_pack.core.test_images import picture_like
from gan_pack.errors import ConfigError
from gan_pack.runtime.image_model import ImageModel

GOLDEN_IMAGES, GOLDEN_SIDES = 2, (8, 12)              # small and non-square, padded up to the size rules
PICTURE_COUNT = 6


def golden_inputs(model: ImageModel) -> np.ndarray:
    h, w = model.spec.padded(*GOLDEN_SIDES)
    x = picture_like(GOLDEN_IMAGES, model.spec.in_channels, h, w, seed=GOLDEN_SEED)
    return np.round(x * 255) / 255                    # exactly 8-bit values, as an image file gives


def golden_vectors(models: dict[str, ImageModel]) -> dict:
    main = next(iter(models.values()))
    inputs = golden_inputs(main)
    outputs = {name: m.run(inputs) for name, m in models.items()}
    tolerance = {}
    for name, m in models.items():
        metric, bound = GOLDEN_TOLERANCE[family(m.info.precision)]
        tolerance[name] = {"metric": metric, "bound": bound}
    return {"format": IMAGE_GOLDEN_FORMAT, "input_shape": list(inputs.shape[1:]), "tolerance": tolerance,
            "vectors": [{"image": encode(inputs[i]), "outputs": {n: encode(o[i]) for n, o in outputs.items()}}
                        for i in range(len(inputs))]}


def _picture(path: Path, model: ImageModel, originals: list[np.ndarray]) -> None:
    """Rows: the small input (nearest), Pillow's bicubic, the model, the original; over a checkerboard."""
    from gan_pack.core.images import flatten, save_png
    from gan_pack.evaluate.upscale import bicubic

    s = model.scale
    rows: list[list[np.ndarray]] = [[] for _ in range(4)]
    for original in originals:
        h, w = original.shape[:2]
        small = bicubic(original, (w // s, h // s))
        nearest = np.repeat(np.repeat(small, s, axis=0), s, axis=1)
        for row, image in zip(rows, (nearest, bicubic(small, (w, h)), model.apply(small), original)):
            row.append(flatten(image) if image.shape[2] == 4 else image[:, :, :3].repeat(3 // image.shape[2], 2))
    gap = 2
    grid = [np.concatenate([np.pad(i, ((gap, 0), (gap, 0), (0, 0)), constant_values=255) for i in row], 1)
            for row in rows]
    save_png(path, np.concatenate(grid, 0))


def manifest(name: str, folder: Path, models: dict[str, ImageModel], evaluation: dict | None,
             figures: dict[str, dict]) -> dict:
    main = models[f"{name}.onnx"].info
    files = []
    for path in sorted(folder.iterdir()):
        entry = {"path": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if path.name in models:
            info = models[path.name].info
            entry.update(role="model" if path.name == f"{name}.onnx" else "variant", precision=info.precision)
            if info.raw.get("provider") == "cuda":
                entry["provider"] = "cuda"
            entry.update(figures.get(path.name, {}))
        files.append(entry)
    spec = asdict(main.spec)
    return {"format": IMAGE_PACKAGE_FORMAT, "name": name, "gan_pack_version": gan_pack.__version__,
            "kind": "image-model", "contract": main.spec.contract(), "spec": spec, "architecture": main.spec.arch,
            "family": main.family, "source": main.raw.get("source", "?"), "dataset": main.raw.get("dataset", "?"),
            "scale": main.spec.scale, "alpha": main.spec.alpha, "precision": main.precision,
            "parity": main.parity, "golden": {"file": f"{name}.golden.json", "count": GOLDEN_IMAGES},
            "evaluation": evaluation, "metadata": main.raw, "files": files}


def pack_image_model(source: Path, out: Path, options, log: Log = None) -> Path:
    """Write the package of the exported image model `source` into the folder `out` (see the module)."""
    from gan_pack.onnx_tools.image_variants import make_image_cuda, make_image_int8
    from gan_pack.package.image_card import image_card
    from gan_pack.package.manifest import write_sums
    from gan_pack.package.pack import staging

    name = options.name or out.name
    unknown = [v for v in options.variants if v not in ("cuda", "int8")]
    if unknown:
        raise ConfigError(f"--variants {unknown[0]}: an image model's variants are cuda (fp16) and int8")
    ImageModel(source)                                            # the contract holds before anything is written
    with staging(out) as folder:
        main = folder / f"{name}.onnx"
        shutil.copyfile(source, main)
        if parity_path(source).is_file():
            shutil.copyfile(parity_path(source), parity_path(main))
        paths, figures = {main.name: main}, {}
        for variant in options.variants:
            path = folder / f"{name}.{variant}.onnx"
            figure = (make_image_cuda if variant == "cuda" else make_image_int8)(main, path, log=log)
            paths[path.name] = path
            figures[path.name] = {"psnr_vs_fp32_db": round(figure, 2)}
            say(log, f"{path.name}: {figure:.1f} dB against the fp32 model")
        models = {file: ImageModel(path, device="cuda" if file.endswith(".cuda.onnx") else "cpu")
                  for file, path in paths.items()}
        evaluation, originals = None, None
        if options.data_dir is not None:
            from gan_pack.evaluate.upscale import evaluate_upscaler, test_images

            spec = models[main.name].spec
            side = 16 * spec.scale
            say(log, f"evaluating against Pillow's bicubic on {options.data_dir}'s test images")
            originals = test_images(options.data_dir, side, spec.out_channels)
            evaluation = {**evaluate_upscaler(models[main.name], originals), "data_dir": Path(options.data_dir).name}
            (folder / f"{name}.eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        if originals is None:
            spec = models[main.name].spec
            side = spec.fixed or 16 * spec.scale
            originals = (picture_like(PICTURE_COUNT, spec.in_channels, side, side, seed=1)
                         .transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)
        step = max(1, len(originals) // PICTURE_COUNT)
        _picture(folder / f"{name}.png", models[main.name], list(originals[::step][:PICTURE_COUNT]))
        (folder / f"{name}.golden.json").write_text(json.dumps(golden_vectors(models)) + "\n")
        facts = manifest(name, folder, models, evaluation, figures)
        (folder / f"{name}.json").write_text(json.dumps(facts, indent=2) + "\n")
        (folder / "README.md").write_text(image_card(facts, options.license or "mit", options.notice))
        write_sums(folder)
    return out

"""The commands that turn PyTorch weights into ONNX: export (a run, or your own generator), and pack,
which packages an exported .onnx (torch-free) or exports a run first (torch, imported only then)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.cli.text import show_parity, stage
from gan_pack.cli.train import require_torch
from gan_pack.contract.choices import LabelInput, NoiseMode, Precision, Rewrite, Tutorial, Weights
from gan_pack.core.noise import SEED_MAX
from gan_pack.errors import GanPackError

OWN = "Your own generator (a state dict and the class that builds it)"
STYLE = "StyleGAN2 (--from stylegan2-torch)"


def _own(help: str, panel: str, *names: str):
    return typer.Option(*names, help=help, rich_help_panel=panel)


def export(
    source: Annotated[Path, typer.Argument(help="A run folder or its checkpoint.pt; or, with --module or --from, "
                                                "a state dict (generator.pth).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    weights: Annotated[Weights, typer.Option(help="ema (default) or raw generator weights of a run.")] = Weights.ema,
    opset: Annotated[int, typer.Option(help="ONNX opset (18..23).")] = 18,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: max abs difference from PyTorch (default 1e-4 fp32, 2e-2 fp16); for int8, mean "
             "abs difference from the fp32 export (default 0.15).")] = None,
    precision: Annotated[Precision, typer.Option(
        help="fp32, fp16 (half weights and compute, float32 I/O) or int8 (quantized fp32 export).")] = Precision.fp32,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
    rewrite: Annotated[Rewrite, typer.Option(
        help="Transposed convolutions as phase convolutions, thin convolutions as a matrix product: auto "
             "(kept where they measure faster on this CPU), on, or off.")] = Rewrite.auto,
    module: Annotated[Optional[str], _own("FILE.py:ClassName of your generator (imports that file).", OWN)] = None,
    init: Annotated[Optional[str], _own("JSON keyword arguments for the class, e.g. '{\"ngpu\": 1}'.", OWN)] = None,
    tutorial: Annotated[Optional[Tutorial], _own("A generator gan_pack knows how to build: the classic MNIST "
                                                 "tutorial's, or stylegan2-torch's (with --init).", OWN,
                                                 "--from")] = None,
    noise_dim: Annotated[Optional[int], _own("Length of the noise vector (needed with --module).", OWN)] = None,
    num_classes: Annotated[Optional[int], _own("Classes of a conditional generator (0: none).", OWN)] = None,
    class_names: Annotated[Optional[str], _own("Comma-separated class names, for the metadata.", OWN)] = None,
    dataset: Annotated[str, _own("What it was trained on, for the metadata.", OWN)] = "unknown",
    image_shape: Annotated[Optional[str], _own("C,H,W of an image (default: from the output).", OWN)] = None,
    noise_shape: Annotated[Optional[str], _own("Your forward's noise per sample, e.g. 100,1,1 (default: flat).",
                                               OWN)] = None,
    label_input: Annotated[LabelInput, _own("What your forward takes as labels: index or onehot.", OWN)] \
        = LabelInput.class_index,
    output_range: Annotated[Optional[str], _own("Your output's range: -1,1 (Tanh, the default) or 0,1 (Sigmoid).",
                                                OWN)] = None,
    noise_mode: Annotated[Optional[NoiseMode], _own(
        "StyleGAN-family per-pixel noise: none (zeros, the default) or const (fixed, stored in the model: the "
        "checkpoint's, or drawn from --seed). Also passed to a --module forward that takes noise_mode.",
        STYLE)] = None,
    seed: Annotated[Optional[int], typer.Option(help="StyleGAN2: the seed (0..2**32-1) of const noise, and of the mean "
                                                     "latent where the checkpoint has none (default 0).",
                                                min=0, max=SEED_MAX, rich_help_panel=STYLE)] = None,
) -> None:
    """Export a generator to one self-contained .onnx file and prove it matches PyTorch.

    Examples: ganpack export runs/demo -o runs/demo.onnx;
    ganpack export generator.pth --from tutorial-cgan -o mnist-cgan.onnx;
    ganpack export netG.pth --module models.py:Generator --noise-dim 100 --noise-shape 100,1,1 -o dcgan.onnx;
    ganpack export G.pt --from stylegan2-torch --init '{"resolution": 32, "latent_dim": 64, "n_mlp": 2}'
    --noise-mode none -o sg.onnx
    """
    require_torch()
    from gan_pack.contract.parity import parity_path
    from gan_pack.pytorch.export import ExportOptions, check_outputs, export_generator, write_generator

    options = ExportOptions(weights=weights.value, opset=opset, atol=atol, precision=precision.value,
                            allow_mismatch=allow_mismatch, rewrite=rewrite.value)
    own = {"--noise-dim": noise_dim, "--num-classes": num_classes, "--class-names": class_names,
           "--image-shape": image_shape, "--noise-shape": noise_shape, "--init": init}
    if tutorial is Tutorial.stylegan2_torch:
        from gan_pack.pytorch.importer import parse_init
        from gan_pack.pytorch.stylegan2 import STYLEGAN_PARITY_BATCHES, exportable_stylegan2_torch

        others = [flag for flag, value in own.items() if value is not None and flag not in ("--init",)]
        if module is not None or others:
            raise GanPackError(f"--from stylegan2-torch reads its shapes from --init and the weights; drop "
                               f"{', '.join((['--module'] if module else []) + others)}")
        if init is None:
            raise GanPackError("--from stylegan2-torch needs --init with the Generator's arguments, e.g. "
                               "'{\"resolution\": 32, \"latent_dim\": 64, \"n_mlp\": 2}'")
        options.batch_sizes = STYLEGAN_PARITY_BATCHES
        output = check_outputs(output)
        exportable = exportable_stylegan2_torch(source, parse_init(init), (noise_mode or NoiseMode.none).value, seed,
                                                dataset)
        show_parity(write_generator(exportable, output, options, log=stage))
    elif seed is not None or (noise_mode is not None and module is None):
        raise GanPackError("--seed is for --from stylegan2-torch, --noise-mode for it or a --module whose forward "
                           "takes noise_mode")
    elif module is None and tutorial is None:
        given = [flag for flag, value in own.items() if value is not None]
        if given:
            raise GanPackError(f"{', '.join(given)} describe your own generator: add --module FILE.py:Class or --from")
        show_parity(export_generator(source, output, options, log=stage))
    else:
        from gan_pack.pytorch.importer import exportable_file, parse_init

        if module is not None and tutorial is not None:
            raise GanPackError("give either --module (your class) or --from (the tutorial's), not both")
        settings = own_settings(noise_dim, num_classes, class_names, dataset, image_shape, noise_shape, label_input,
                                output_range, module or (tutorial.value if tutorial else ""))
        settings["noise_mode"] = noise_mode.value if noise_mode else None
        output = check_outputs(output)
        exportable = exportable_file(source, settings, module, parse_init(init), tutorial.value if tutorial else None)
        show_parity(write_generator(exportable, output, options, log=stage))
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB) and {parity_path(output)}")


def own_settings(noise_dim: int | None, num_classes: int | None, class_names: str | None, dataset: str,
                 image_shape: str | None, noise_shape: str | None, label_input: LabelInput, output_range: str | None,
                 source: str) -> dict:
    """What --module or --from export takes, parsed from its flags."""
    return {"noise_dim": noise_dim, "num_classes": num_classes, "dataset": dataset,
            "class_names": [c.strip() for c in class_names.split(",")] if class_names else [],
            "image_shape": _ints("--image-shape", image_shape), "noise_shape": _ints("--noise-shape", noise_shape),
            "label_input": label_input.value, "output_range": _range(output_range or "-1,1"),
            "output_range_given": output_range is not None, "source": source,
            "arch": source if source.startswith("tutorial-") else "imported"}


def _ints(flag: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise GanPackError(f"{flag} takes comma-separated integers like 1,28,28, not {text!r}") from None
    if not values or min(values) < 1:
        raise GanPackError(f"{flag} takes positive sizes, not {text!r}")
    return values


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise GanPackError(f"--output-range takes -1,1 or 0,1, not {text!r}") from None
    return low, high


def _is_exported(source: Path) -> bool:
    """An exported generator (its .onnx, or a package folder), as opposed to a run or checkpoint."""
    from gan_pack.runtime.package import package_model

    return (source.is_file() and source.suffix == ".onnx") or (source.is_dir() and package_model(source) is not None)


def pack(
    source: Annotated[Path, typer.Argument(help="An exported .onnx (or a package), a run folder, or a checkpoint.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The package folder to write (dist/NAME/).")],
    variants: Annotated[str, typer.Option(
        help="Variants beside the fp32 model every runtime runs, comma-separated: cuda (fp16 made for "
             "onnxruntime's CUDA provider; pack on a GPU machine), int8 (CPUs), fp16 (needs a run). "
             "Default: none.")] = "",
    license: Annotated[Optional[str], typer.Option(
        help="The license in the model card. Default: the source package's, else mit.")] = None,
    weights: Annotated[Weights, typer.Option(help="A run's ema (default) or raw generator weights.")] = Weights.ema,
    evaluate: Annotated[bool, typer.Option("--eval", help="Evaluate it (needs --classifier, --data-dir).")] = False,
    classifier: Annotated[Optional[Path], typer.Option(help="--eval: an exported classifier of the same data.")] \
        = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        help="--eval: the real data (its IDX files, or a folder with train/ and test/).")] = None,
    name: Annotated[Optional[str], typer.Option(help="The files' name (default: the folder's).")] = None,
    data_notice: Annotated[Optional[Path], typer.Option(
        help="A text or Markdown file with the training data's licenses and attribution: the model card "
             "carries it.")] = None,
    truncation: Annotated[Optional[float], typer.Option(
        help="The truncation threshold the package samples with by default (sample, interpolate, evaluate, "
             "serve, the Node and browser examples; each can override it): noise components beyond +-T are "
             "drawn again. 0: none. Default: the model's, if it has one.")] = None,
    triton: Annotated[Optional[Path], typer.Option(
        help="Also write a Triton model repository entry here: TRITON/NAME/config.pbtxt, 1/model.onnx.")] = None,
) -> None:
    """A self-describing, checkable package: model(s), manifest, model card, grid, golden vectors, checksums.

    A run folder or checkpoint is exported first (needs torch); an .onnx needs only the onnx package.
    Example: ganpack pack runs/demo -o dist/demo/ --variants fp16,int8 --eval
    --classifier exported/mnist-classifier.onnx --data-dir ../shared/data/mnist
    """
    from gan_pack.core.files import check_output_path
    from gan_pack.package.pack import PackOptions, check_package_output
    from gan_pack.package.pack import pack as make_package

    if evaluate != (classifier is not None and data_dir is not None) or (not evaluate and (classifier or data_dir)):
        raise GanPackError("--eval goes with --classifier and --data-dir (all three, or none)")
    options = PackOptions(name=name, variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
                          license=license, weights=weights.value, classifier=str(classifier) if classifier else None,
                          data_dir=str(data_dir) if data_dir else None,
                          data_notice=str(data_notice) if data_notice else None, truncation=truncation)
    if not source.exists():
        raise GanPackError(f"{source} does not exist; give an exported .onnx, a run folder or a checkpoint")
    if weights != Weights.ema and _is_exported(source):
        raise GanPackError(f"--weights chooses a run's weights; {source} is exported already (drop --weights)")
    if triton is not None:
        check_output_path(triton / (name or output.name), folder=True)
    with tempfile.TemporaryDirectory() as scratch:
        exported: dict[str, Path] = {}
        if not _is_exported(source):
            require_torch()
            from gan_pack.pytorch.export import export_for_pack

            check_package_output(output)
            source, exported = export_for_pack(source, Path(scratch), options.weights, "fp16" in options.variants,
                                               log=stage)
        out = make_package(source, output, options, exported, log=stage)
    for path in sorted(out.iterdir()):
        typer.echo(f"  {path.name:<32} {path.stat().st_size / 1e6:8.3f} MB")
    typer.echo(f"wrote {out}/ (check it anywhere with: ganpack verify {out})")
    if triton is not None:
        from gan_pack.package.triton import write_triton

        stem = name or out.name
        entry = write_triton(out / f"{stem}.onnx", stem, triton)
        typer.echo(f"wrote {entry}/config.pbtxt and {entry}/1/model.onnx (tritonserver --model-repository {triton})")

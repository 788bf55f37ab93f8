"""The commands that turn PyTorch weights into ONNX: export (a run, or your own generator), and pack,
which packages an exported .onnx (torch-free) or exports a run first (torch, imported only then)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.cli.text import printable, show_parity, stage
from gan_pack.cli.train import require_torch
from gan_pack.contract.choices import FamilyId, LabelInput, NoiseMode, Precision, Rewrite, Weights
from gan_pack.core.noise import SEED_MAX
from gan_pack.errors import GanPackError

OWN = "Your own generator (a state dict and the class that builds it)"
STYLE = "StyleGAN (stylegan2-torch checkpoints, NVlabs network pickles)"


def _own(help: str, panel: str, *names: str):
    return typer.Option(*names, help=help, rich_help_panel=panel)


def export(
    source: Annotated[Path, typer.Argument(help="A checkpoint: a gan_pack run folder or checkpoint.pt, a state dict "
                                                "(generator.pth, G.pt) or an NVlabs network pickle (.pkl). Its "
                                                "family is detected (ganpack inspect shows it).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    family: Annotated[Optional[FamilyId], typer.Option(
        "--from", help="The generator family, where detection cannot tell (ganpack inspect lists them).")] = None,
    weights: Annotated[Weights, typer.Option(help="ema (default) or raw generator weights of a run.")] = Weights.ema,
    opset: Annotated[int, typer.Option(help="ONNX opset (18..23).")] = 18,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: max abs difference from PyTorch (default 1e-4 fp32, 2e-2 fp16); for int8, mean "
             "abs difference from the fp32 export (default 0.15).")] = None,
    precision: Annotated[Precision, typer.Option(
        help="fp32, fp16 (half weights and compute, float32 I/O) or int8 (quantized fp32 export).")] = Precision.fp32,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
    subclass_blend: Annotated[float, typer.Option(
        help="A run trained with --subclasses: each sample moves towards a second subclass of its class (picked "
             "from noise[:, 1]) by a weight in 0..this (from noise[:, 2]); 0: one subclass each.")] = 0.0,
    rewrite: Annotated[Rewrite, typer.Option(
        help="Transposed convolutions as phase convolutions, thin convolutions as a matrix product: auto "
             "(kept where they measure faster on this CPU), on, or off.")] = Rewrite.auto,
    module: Annotated[Optional[str], _own("FILE.py:ClassName of your generator (imports that file).", OWN)] = None,
    init: Annotated[Optional[str], _own("JSON keyword arguments for the class, e.g. '{\"ngpu\": 1}' (stylegan2-torch: "
                                        "only what its shapes cannot say, e.g. lr_mlp_mult).", OWN)] = None,
    noise_dim: Annotated[Optional[int], _own("Length of the noise vector (needed with --module).", OWN)] = None,
    num_classes: Annotated[Optional[int], _own("Classes of a conditional generator (0: none).", OWN)] = None,
    class_names: Annotated[Optional[str], _own("Comma-separated class names, for the metadata.", OWN)] = None,
    dataset: Annotated[str, _own("What it was trained on, for the metadata.", OWN)] = "unknown",
    image_shape: Annotated[Optional[str], _own("C,H,W of an image (default: from the output).", OWN)] = None,
    noise_shape: Annotated[Optional[str], _own("Your forward's noise per sample, e.g. 100,1,1 (default: flat).",
                                               OWN)] = None,
    label_input: Annotated[Optional[LabelInput], _own("What your forward takes as labels: index (default) or "
                                                      "onehot.", OWN)] = None,
    output_range: Annotated[Optional[str], _own("Your output's range: -1,1 (Tanh, the default) or 0,1 (Sigmoid).",
                                                OWN)] = None,
    noise_mode: Annotated[Optional[NoiseMode], _own(
        "StyleGAN per-pixel noise: none (zeros) or const (fixed, stored in the model: the checkpoint's, or drawn "
        "from --seed). Default: const for NVlabs pickles (as their gen_images.py), none for stylegan2-torch. "
        "Also passed to a --module forward that takes noise_mode.", STYLE)] = None,
    seed: Annotated[Optional[int], typer.Option(help="stylegan2-torch: the seed (0..2**32-1) of const noise, and of "
                                                     "the mean latent where the checkpoint has none (default 0).",
                                                min=0, max=SEED_MAX, rich_help_panel=STYLE)] = None,
    network: Annotated[Optional[str], _own("NVlabs pickles: which network to export, G_ema (default) or G.",
                                           STYLE)] = None,
) -> None:
    """Export a generator to one self-contained .onnx file and prove it matches PyTorch.

    Examples: ganpack export runs/demo -o runs/demo.onnx;
    ganpack export generator.pth -o mnist-cgan.onnx (the tutorial's, detected);
    ganpack export network-snapshot-000200.pkl -o ffhq.onnx (NVlabs, read without running its code);
    ganpack export netG.pth --module models.py:Generator --noise-dim 100 --noise-shape 100,1,1 -o dcgan.onnx
    """
    require_torch()
    from gan_pack.contract.parity import parity_path
    from gan_pack.pytorch.export import ExportOptions
    from gan_pack.pytorch.families import ExportRequest, export_checkpoint
    from gan_pack.pytorch.importer import parse_init

    options = ExportOptions(weights=weights.value, opset=opset, atol=atol, precision=precision.value,
                            allow_mismatch=allow_mismatch, rewrite=rewrite.value)
    own = {"--noise-dim": noise_dim, "--num-classes": num_classes, "--class-names": class_names,
           "--image-shape": image_shape, "--noise-shape": noise_shape, "--label-input": label_input,
           "--output-range": output_range}
    request = ExportRequest(family=family.value if family else None, weights=weights.value, network=network,
                            subclass_blend=subclass_blend,
                            noise_mode=noise_mode.value if noise_mode else None, seed=seed,
                            init=parse_init(init) if init is not None else None, module=module,
                            own={flag: value for flag, value in own.items() if value is not None},
                            settings=own_settings(noise_dim, num_classes, class_names, dataset, image_shape,
                                                  noise_shape, label_input or LabelInput.class_index, output_range,
                                                  module or (family.value if family else "")))
    request.settings["noise_mode"] = request.noise_mode
    reports, chosen = export_checkpoint(source, output, request, options, log=stage)
    show_parity(reports)
    typer.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {chosen.id}) and {parity_path(output)}")


def inspect_checkpoint(
    source: Annotated[Path, typer.Argument(help="A checkpoint: a run, a state dict or an NVlabs network pickle.")],
    family: Annotated[Optional[FamilyId], typer.Option("--from", help="Describe it as this family.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Say which generator family a checkpoint is, what its shapes say, and what export will rewrite,
    without exporting or running anything in it.

    Example: ganpack inspect network-snapshot-000200.pkl
    """
    require_torch()
    from gan_pack.pytorch.families import describe

    report = describe(source, family.value if family else None)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    typer.echo(f"{printable(report['source'])}: {report['family']} ({report['title']})")
    for key, value in report["facts"].items():
        typer.echo(f"  {key:<20} {printable(str(value))}")
    typer.echo("export rewrites:" if report["export rewrites"] else "export rewrites: nothing")
    for line in report["export rewrites"]:
        typer.echo(f"  - {line}")
    typer.echo(f"providers: {report['providers']['source']}; {report['providers']['export']}")
    typer.echo(f"flags it takes: {', '.join(report['flags']) or 'none'}; parity at batch "
               f"{', '.join(map(str, report['parity batches']))}")
    for fid, why in report["other families"].items():
        typer.echo(f"  not {fid}: {printable(str(why))}")


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

    image = _image_source(source)
    if image is not None:
        _pack_image(image, source, output, variants, license, evaluate, classifier, data_dir, name, data_notice,
                    truncation, triton)
        return
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


def _image_source(source: Path) -> str | None:
    """"onnx" for an exported image model (its .onnx or package), "run" for an sr run or an image model's
    checkpoint (exported first); None for a generator."""
    from gan_pack.contract.image_model import is_image_model
    from gan_pack.runtime.onnxscan import model_metadata
    from gan_pack.runtime.package import package_model

    if source.is_file() and source.suffix == ".onnx":
        return "onnx" if is_image_model(model_metadata(source)) else None
    if source.is_dir() and package_model(source) is not None:
        return "onnx" if is_image_model(model_metadata(package_model(source))) else None
    sr_run = source.is_dir() and (source / "generator.pth").is_file() and not (source / "checkpoint.pt").exists()
    return "run" if sr_run or (source.is_file() and source.suffix in (".pth", ".safetensors") and
                               _spandrel_file(source)) else None


def _spandrel_file(source: Path) -> bool:
    try:
        require_torch()
        from gan_pack.pytorch.families import detect, open_source

        return detect(open_source(source)).image
    except GanPackError:
        return False


def _pack_image(kind: str, source: Path, output: Path, variants: str, license: str | None, evaluate: bool,
                classifier: Path | None, data_dir: Path | None, name: str | None, data_notice: Path | None,
                truncation: float | None, triton: Path | None) -> None:
    """pack of an image model (package/image_pack.py): exported first where it is a run or checkpoint."""
    from gan_pack.package.image_pack import pack_image_model
    from gan_pack.package.pack import PackOptions, check_package_output
    from gan_pack.runtime.package import package_model

    if classifier is not None or truncation is not None or triton is not None:
        raise GanPackError("an image model is packed without --classifier, --truncation and --triton (its --eval "
                           "compares it with bicubic on --data-dir's test images)")
    if evaluate != (data_dir is not None):
        raise GanPackError("--eval goes with --data-dir (the images to compare the model with bicubic on)")
    options = PackOptions(name=name, variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
                          license=license, data_notice=str(data_notice) if data_notice else None)
    options.data_dir = str(data_dir) if data_dir else None
    check_package_output(output)
    with tempfile.TemporaryDirectory() as scratch:
        if kind == "run":
            require_torch()
            from gan_pack.pytorch.export import ExportOptions
            from gan_pack.pytorch.families import ExportRequest, export_checkpoint

            exported = Path(scratch) / "model.onnx"
            export_checkpoint(source, exported, ExportRequest(), ExportOptions(), log=stage)
            source = exported
        elif source.is_dir():
            source = package_model(source)
        out = pack_image_model(source, output, options, log=stage)
    for path in sorted(out.iterdir()):
        typer.echo(f"  {path.name:<32} {path.stat().st_size / 1e6:8.3f} MB")
    typer.echo(f"wrote {out}/ (check it anywhere with: ganpack verify {out})")

"""`ganpack pack`: one folder that describes a generator to every runtime and can be checked where it
finally runs (the format: contract/package_format.py).

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
Packing reads an exported .onnx (a run is exported first, by the CLI's torch side) and needs the onnx
package (a packed .onnx gets ONNX's identity fields); `verify` needs neither onnx nor torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from gan_pack.contract.choices import Variant
from gan_pack.contract.metadata import ModelInfo, image_metadata, set_metadata
from gan_pack.contract.package_schema import plain_name
from gan_pack.contract.parity import parity_path
from gan_pack.core.files import check_output_path, file_sha256, make_folder, open_regular, write_failure
from gan_pack.core.images import save_grid
from gan_pack.core.log import Log, say
from gan_pack.core.noise import check_truncation_option
from gan_pack.core.numbers import number
from gan_pack.errors import ConfigError, ModelError, OutputPathError
from gan_pack.evaluate.quality import evaluate_generator
from gan_pack.onnx_tools.cuda import CUDA_NEEDED, gpu_name, make_cuda_variant, measure_speed
from gan_pack.onnx_tools.quantize import quantize_generator
from gan_pack.onnx_tools.variant import require_onnx
from gan_pack.package.card import model_card
from gan_pack.package.manifest import EVAL_FIGURES, golden_vectors, manifest, summary, write_sums
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.onnxscan import model_metadata
from gan_pack.runtime.session import cuda_available, resolve_model_file

MAX_NAME = 100


def name_problems(name: str | None) -> list[str]:
    """A package's name becomes its file names: one plain name, no path."""
    if name is None or (plain_name(name) and len(name) <= MAX_NAME):
        return []
    return [f"--name must be a plain file name of at most {MAX_NAME} printable characters, not hidden, "
            f"not {name[:40]!r}"]


@dataclass
class PackOptions:
    name: str | None = None                 # default: the output folder's name
    variants: tuple[str, ...] = ()
    license: str | None = None              # default: the source package's, else mit
    weights: str = "ema"
    classifier: str | None = None           # --eval: evaluate with this classifier ...
    data_dir: str | None = None             # ... against this real data
    eval_n: int = 10000
    data_notice: str | None = None          # the training data's licenses and attribution, for the card
    truncation: float | None = None         # the sampling default to record (0: none; None: keep the model's)
    notice: str | None = field(init=False, default=None)     # its text, read and checked

    def __post_init__(self) -> None:
        problems = [p for v in self.variants for p in Variant.problem("--variants", v)] + name_problems(self.name)
        repeated = sorted({v for v in self.variants if self.variants.count(v) > 1})
        if repeated:
            problems.append(f"--variants names {', '.join(repeated)} more than once")
        try:
            check_truncation_option(self.truncation, "--truncation")
        except ModelError as e:
            problems.append(str(e))
        if (self.classifier is None) != (self.data_dir is None):
            problems.append("--eval needs both --classifier and --data-dir")
        try:
            self.notice = read_notice(self.data_notice)     # read before a run is exported for nothing
        except ConfigError as e:
            problems.append(str(e))
        if problems:
            raise ConfigError("; ".join(problems))


# ---------------------------------------------------------------- the pieces

MAX_NOTICE_BYTES = 64 << 10
MAX_CARD_BYTES = 1 << 20


def read_notice(path: str | None) -> str | None:
    """The text of --data-notice (Markdown or plain text, UTF-8, 1 byte to 64 KiB), checked before it is
    read: a regular file (not a link, FIFO, device or a /proc-like file whose size says nothing), of a
    size in range; then read up to that size, and refused if it holds control characters."""
    if path is None:
        return None
    fix = "give the training data's licenses and attribution as a text or Markdown file"
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if not 0 < size <= MAX_NOTICE_BYTES:
                raise ConfigError(f"--data-notice {path} is {size:,} bytes (empty, or a pseudo-file such as /proc's); "
                                  f"it must hold 1 byte to {MAX_NOTICE_BYTES >> 10} KiB of text")
            data = f.read(size + 1)
    except ValueError as e:
        raise ConfigError(f"--data-notice {path} {e}; {fix}") from None
    if len(data) != size:
        raise ConfigError(f"--data-notice {path} changed while it was read; {fix}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--data-notice {path} is not UTF-8 text") from None
    return clean_notice(text, f"--data-notice {path}")


def clean_notice(text: str, where: str) -> str:
    """A notice's text for a card: no control characters (NUL, terminal escapes), not blank."""
    control = next((c for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r"), None)
    if control is not None:
        raise ConfigError(f"{where} holds the control character {control!r} (NUL, a terminal escape, ...); a "
                          f"notice is text: remove it")
    if not text.strip():
        raise ConfigError(f"{where} holds only white space; give the training data's licenses and attribution")
    return text.strip()


NOTICE_HEADING, NEXT_HEADING = "## Training data: licenses and attribution\n\n", "\n\n## Intended use and limits"


@dataclass
class Carried:
    """What a package being packed again carries besides its model: the license and data notice of its
    card, and its variants (made from its model, so made again, or not carried and said so)."""

    license: str | None = None
    notice: str | None = None
    variants: tuple[str, ...] = ()


def carried_from(source: Path) -> Carried:
    """What the package folder `source` carries (nothing for an .onnx): its card, read as a file
    someone else wrote (bounded, its notice checked like --data-notice), and its manifest's variants."""
    from gan_pack.contract.package_format import variant_key
    from gan_pack.runtime.package import read_package

    manifest = read_package(source) if source.is_dir() else None
    if manifest is None:
        return Carried()
    variants = tuple(variant_key(manifest.name, e.path) for e in manifest.models if e.role == "variant")
    try:
        with open_regular(source / "README.md") as f:
            card = f.read(MAX_CARD_BYTES + 1).decode("utf-8")
    except (ValueError, OSError, UnicodeDecodeError):
        return Carried(variants=variants)
    license = None
    front = card.split("\n---\n", 1)[0] if card.startswith("---\n") else ""
    for line in front.splitlines():
        if line.startswith("license: "):
            with contextlib.suppress(ValueError):
                value = json.loads(line.removeprefix("license: "))
                license = value if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable() else None
    notice = None
    if NOTICE_HEADING in card and len(card) <= MAX_CARD_BYTES:
        text = card.split(NOTICE_HEADING, 1)[1].split(NEXT_HEADING, 1)[0]
        with contextlib.suppress(ConfigError):
            notice = clean_notice(text, f"{source / 'README.md'}'s data notice") \
                if len(text.encode()) <= MAX_NOTICE_BYTES else None
    return Carried(license, notice, variants)


def check_package_output(out: str | Path) -> Path:
    """A package folder to write: a place that can be made, and not a folder that holds anything."""
    out = check_output_path(out, folder=True)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputPathError(f"{out} already exists; remove it or choose another -o")
    return out


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temp folder beside `out`, renamed to `out` only if the block succeeds."""
    check_package_output(out)
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



def stamp(source: Path, target: Path, truncation: float | None = None) -> ModelInfo:
    """Copy an exported generator, adding ONNX's identity fields and image conventions if it lacks
    them, and the sampling default `truncation` if given (0 removes it); the graph is untouched.
    Returns its metadata."""
    import onnx

    model = onnx.load(str(source))
    meta = {p.key: p.value for p in model.metadata_props}
    info = ModelInfo.from_metadata(meta, source)
    meta = {**meta, **{k: v for k, v in image_metadata(info.image_shape).items() if k not in meta}}
    if truncation is not None:              # given: it replaces the source's; 0 removes it
        meta.pop("truncation", None)
    if truncation:
        meta["truncation"] = repr(float(truncation))
    set_metadata(model, meta)
    onnx.save(model, str(target))
    return info



def place_models(source: Path, folder: Path, name: str, options: PackOptions, exported: dict[str, Path],
                 log: Log = None) -> dict[str, Path]:
    """NAME.onnx (a stamped copy of the exported generator), the variants exported beside it from
    PyTorch (fp16), and the ones made here from NAME.onnx (cuda, int8)."""
    main = folder / f"{name}.onnx"
    parity = stamp(source, main, options.truncation).parity
    if parity:
        (folder / parity_path(main).name).write_text(json.dumps(parity, indent=2) + "\n")
    models = {main.name: main}
    for variant in options.variants:
        path = folder / f"{name}.{variant}.onnx"
        if variant in exported:
            parity = stamp(exported[variant], path, options.truncation).parity
            if parity:
                (folder / parity_path(path).name).write_text(json.dumps(parity, indent=2) + "\n")
        elif variant == Variant.cuda:
            make_cuda_variant(main, path, log=log)
        else:
            quantize_generator(main, path)
        models[path.name] = path
    return models


def evaluation_for(source: Path, main: Path, options: PackOptions, log: Log = None) -> dict | None:
    """A fresh evaluation (--eval), or NAME.eval.json beside the source if it names this very file."""
    if options.classifier is not None and options.data_dir is not None:
        result = evaluate_generator(main, options.classifier, options.data_dir, n=options.eval_n, log=log)
        return {**result, "model": main.name}
    beside = source.with_name(source.stem + ".eval.json")
    if beside.is_file():
        with contextlib.suppress(ValueError, OSError):
            result = json.loads(beside.read_text())
            if isinstance(result, dict) and result.get("model_sha256") == file_sha256(main):
                if well_formed(result):
                    return {**result, "model": main.name}
                say(log, f"not carrying {beside.name}: its figures are not numbers")
    return None


def well_formed(evaluation: dict) -> bool:
    """An evaluation read from a file gan_pack did not write this time: the figures the manifest and
    card carry are numbers (the truncation may be null), so neither can be fooled or broken by it."""
    figures = {k: v for k, v in evaluation.items() if k in EVAL_FIGURES and k != "classifier_sha256"}
    return all(number(v) or (k == "truncation" and v is None) for k, v in figures.items())


def device_of(path: Path) -> str:
    """Where a model file is run when packed: on the provider it is made for (metadata `provider`)."""
    return "cuda" if model_metadata(path).get("provider") == "cuda" else "cpu"


def variant_figures(name: str, models: dict[str, Path], options: PackOptions, log: Log = None) -> dict[str, dict]:
    """What the manifest records of each variant, measured on its provider: the speed of a CUDA
    variant against the main model on the same GPU, and, with --eval, each variant's evaluation."""
    figures: dict[str, dict] = {file: {} for file in models if file != f"{name}.onnx"}
    cuda = [file for file in figures if device_of(models[file]) == "cuda"]
    if cuda:
        say(log, f"timing {', '.join(cuda)} against {name}.onnx on the CUDA provider")
        batch, rates = measure_speed({file: models[file] for file in [f"{name}.onnx", *cuda]})
        for file in cuda:
            figures[file]["speed"] = {"provider": "cuda", "device": gpu_name(), "batch": batch,
                                      "images_per_s": rates[file], "main_images_per_s": rates[f"{name}.onnx"]}
    if options.classifier is not None and options.data_dir is not None:
        for file in figures:
            say(log, f"evaluating {file} on its provider")
            result = evaluate_generator(models[file], options.classifier, options.data_dir, n=options.eval_n,
                                        device=device_of(models[file]))
            figures[file]["evaluation"] = summary(result)
    return figures


# ---------------------------------------------------------------- pack

def pack(model: str | Path, out: str | Path, options: PackOptions | None = None,
         exported: dict[str, Path] | None = None, log: Log = None) -> Path:
    """Write the package of the exported generator `model` (an .onnx, or a package's folder) into the
    folder `out`. `exported`: variants made from PyTorch beside it (fp16), by variant name."""
    options, exported = options or PackOptions(), exported or {}
    out = check_package_output(out)
    name = options.name or out.name
    require_onnx("pack")
    # the checks sample runs; a package folder's model only if the package vouches for it
    source = (OnnxGenerator(model, variant="main") if Path(model).is_dir() else
              OnnxGenerator(resolve_model_file(model, "an exported .onnx generator (export a run first: "
                                                      "ganpack export RUN)"))).path
    carried = carried_from(Path(model))
    license, notice = options.license or carried.license or "mit", options.notice or carried.notice
    if carried.license and not options.license:
        say(log, f"carrying the source package's license ({carried.license})"
                 + (" and data notice" if carried.notice and not options.notice else ""))
    for key in sorted(set(carried.variants) - set(options.variants)):
        say(log, f"not carrying the source's {key} variant: a variant is made from the model it ships with; add "
                 f"--variants {key} to make it again" + (" (on a GPU machine)" if key == Variant.cuda else ""))
    unmade = [v for v in options.variants if v == Variant.fp16 and v not in exported]
    if unmade:
        raise ConfigError(f"--variants {unmade[0]} is exported from PyTorch: pack the run folder, not the .onnx")
    if Variant.cuda in options.variants and not cuda_available():
        raise ConfigError(CUDA_NEEDED)
    with staging(out) as folder:
        say(log, f"packing {name}" + (f" with {', '.join(options.variants)}" if options.variants else ""))
        models = place_models(source, folder, name, options, exported, log)
        generators = {file: OnnxGenerator(path, device=device_of(path)) for file, path in models.items()}
        main, g = models[f"{name}.onnx"], generators[f"{name}.onnx"]
        k = g.info.num_classes
        save_grid(folder / f"{name}.png", g.sample(10 * k if k else 64, seed=0), 10 if k else 8)
        evaluation = evaluation_for(source, main, options, log)
        if evaluation is not None:
            (folder / f"{name}.eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        (folder / f"{name}.golden.json").write_text(json.dumps(golden_vectors(generators, g.info)) + "\n")
        figures = variant_figures(name, models, options, log)
        facts = manifest(name, folder, generators, evaluation, figures)    # lists every file written so far
        (folder / f"{name}.json").write_text(json.dumps(facts, indent=2) + "\n")
        (folder / "README.md").write_text(model_card(facts, evaluation, license, notice))
        write_sums(folder)
    return out

"""The manifest and golden-vector files of a package, read as hostile input: what `verify` takes from
them is checked field by field (types, required keys, plain file names, bounded counts), and any
other shape is a list of problems, each naming its field, never an exception. numpy only.

Format gan_pack.package/2 (/1 before per-provider variants) and gan_pack.golden/1 are what `ganpack
pack` writes. A later version is refused by name, so that fields this reader does not know are never
half-read.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass, field

import numpy as np

from gan_pack.contract.limits import MAX_CLASSES, MAX_IMAGE_VALUES, MAX_NOISE_DIM
from gan_pack.contract.package_format import (
    GOLDEN_FORMAT,
    GOLDEN_TOLERANCE,
    IMAGE_PACKAGE_FORMAT,
    PACKAGE_FORMATS,
    PROVIDERS,
    decode,
    family,
)
from gan_pack.contract.spec import ImageModelSpec
from gan_pack.core.noise import MIN_TRUNCATION
from gan_pack.core.numbers import integer_in, number

MAX_FILES = 64
MAX_MANIFEST_BYTES = 8 << 20     # a manifest file larger than this is not read
MAX_GOLDEN_VECTORS = 64         # pack writes 4; all run as one batch, as pack ran them
MAX_NAME = 255
ROLES = ("model", "variant")


def plain_name(value) -> bool:
    """A file name inside the package folder: no separator, no `..`, not hidden, printable."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_NAME and value not in (".", "..")
            and not value.startswith(".") and "/" not in value and "\\" not in value and value.isprintable())


class Problems(list):
    """Problems found while reading one file: each says the file, the field and what is wrong."""

    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def need(self, ok: bool, where: str, what: str) -> bool:
        if not ok:
            self.append(f"{self.source}: {where} {what}")
        return ok


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    role: str | None                    # model, variant, or None for a file that is not a model
    precision: str | None
    provider: str | None = None         # the execution provider a variant is made for (None: any)


@dataclass(frozen=True)
class Manifest:
    name: str
    model: str
    dataset: str
    noise_dim: int
    num_classes: int
    class_names: list[str]
    image_shape: tuple[int, int, int]
    golden_file: str
    golden_count: int
    files: list[FileEntry] = field(default_factory=list)
    truncation: float | None = None     # the sampling default (absent before packages recorded one)
    spec: ImageModelSpec | None = None  # an image model's package (its format IMAGE_PACKAGE_FORMAT)

    @property
    def models(self) -> list[FileEntry]:
        return [f for f in self.files if f.role is not None]


def _format(data, readable: tuple[str, ...], problems: Problems) -> bool:
    version = data.get("format")
    if version in readable:
        return True
    family_name = readable[0].rsplit("/", 1)[0]
    if isinstance(version, str) and version.startswith(family_name + "/"):
        problems.append(f"{problems.source} is {version[:40]!r}, made by a newer gan_pack; this one reads "
                        f"{' and '.join(readable)}: upgrade gan_pack to verify it")
    else:
        problems.append(f"{problems.source}: format is not {readable[-1]}")
    return False


def _facts(data: dict, p: Problems) -> dict:
    shape = data.get("image_shape")
    good_shape = (isinstance(shape, list) and len(shape) == 3 and all(integer_in(x, 1, MAX_IMAGE_VALUES) for x in shape)
                  and math.prod(shape) <= MAX_IMAGE_VALUES)
    p.need(good_shape, "image_shape", "is not [C, H, W] of positive sizes")
    p.need(integer_in(data.get("noise_dim"), 1, MAX_NOISE_DIM), "noise_dim", f"is not an integer in 1..{MAX_NOISE_DIM}")
    p.need(integer_in(data.get("num_classes"), 0, MAX_CLASSES), "num_classes", f"is not an integer in 0..{MAX_CLASSES}")
    names = data.get("class_names")
    p.need(isinstance(names, list) and all(isinstance(n, str) for n in names), "class_names", "is not a list of names")
    for key in ("model", "dataset"):
        p.need(isinstance(data.get(key), str), key, "is not a string")
    p.need(plain_name(data.get("name")), "name", "is not a plain file name")
    truncation = data.get("truncation")
    p.need(truncation is None or (number(truncation) and truncation >= MIN_TRUNCATION),
           "truncation", f"is not null or a number >= {MIN_TRUNCATION}")
    return {"image_shape": tuple(shape) if good_shape and isinstance(shape, list) else (1, 1, 1)}


def _entry(item, i: int, p: Problems) -> FileEntry | None:
    where = f"files[{i}]"
    if not p.need(isinstance(item, dict), where, "is not an object"):
        return None
    path, digest, role, precision = item.get("path"), item.get("sha256"), item.get("role"), item.get("precision")
    provider = item.get("provider")
    ok = p.need(plain_name(path), f"{where}.path", f"{str(path)[:60]!r} is not a plain file name in the package")
    ok &= p.need(isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
                 f"{where}.sha256", "is not a SHA-256 in hex")
    ok &= p.need(role is None or role in ROLES, f"{where}.role", f"is not one of {', '.join(ROLES)}")
    ok &= p.need((role is None and precision is None) or (role is not None and isinstance(precision, str)
                                                          and family(precision) in GOLDEN_TOLERANCE),
                 f"{where}.precision", "must name the precision (fp32, fp16, int8) of a model entry, and only of one")
    ok &= p.need(provider is None or (role == "variant" and provider in PROVIDERS), f"{where}.provider",
                 f"is not one of {', '.join(PROVIDERS)} on a variant")
    if ok and role is None and str(path).endswith(".onnx"):
        ok = p.need(False, where, f"{path} is an ONNX file the manifest does not declare as a model or variant")
    return FileEntry(path, digest, role, precision, provider) if ok else None


def read_manifest(data, source: str) -> tuple[Manifest | None, list[str]]:
    """The manifest's facts, or None and the problems that stop it from being read."""
    p = Problems(source)
    if not p.need(isinstance(data, dict), "the top level", "is not an object") or not _format(data, PACKAGE_FORMATS, p):
        return None, list(p)
    spec = None
    if data.get("format") == IMAGE_PACKAGE_FORMAT:
        spec = _image_facts(data, p)
        facts = {"image_shape": (spec.out_channels, 1, 1) if spec else (1, 1, 1)}
    else:
        facts = _facts(data, p)
    golden, files = data.get("golden"), data.get("files")
    golden = golden if isinstance(golden, dict) else {}
    p.need(plain_name(golden.get("file")), "golden.file", "is not a plain file name in the package")
    p.need(integer_in(golden.get("count"), 1, MAX_GOLDEN_VECTORS), "golden.count",
           f"is not an integer in 1..{MAX_GOLDEN_VECTORS}")
    if p.need(isinstance(files, list) and 0 < len(files) <= MAX_FILES, "files", f"is not a list of 1..{MAX_FILES}"):
        entries = [_entry(item, i, p) for i, item in enumerate(files)]
        paths = [e.path for e in entries if e is not None]
        p.need(len(paths) == len(set(paths)), "files", "names a file twice")
        main = [e for e in entries if e is not None and e.role == "model"]
        p.need(len(main) == 1 and main[0].path == f"{data.get('name')}.onnx", "files",
               "must hold NAME.onnx, and it alone, as the model (role model)")
    if p:
        return None, list(p)
    files_read = [e for e in entries if e is not None]
    if spec is not None:
        return Manifest(data["name"], "image-to-image", data["dataset"], 0, 0, [], facts["image_shape"],
                        golden["file"], golden["count"], files_read, spec=spec), []
    return Manifest(data["name"], data["model"], data["dataset"], data["noise_dim"], data["num_classes"],
                    list(data["class_names"]), facts["image_shape"], golden["file"], golden["count"],
                    files_read, data.get("truncation")), []


def _image_facts(data: dict, p: Problems) -> ImageModelSpec | None:
    """An image package's spec (ImageModelSpec's own checks), name and data set."""
    import json

    p.need(plain_name(data.get("name")), "name", "is not a plain file name")
    p.need(isinstance(data.get("dataset"), str), "dataset", "is not a string")
    try:
        spec = ImageModelSpec.from_json(json.dumps({"kind": "image-model", **data["spec"]}))
        problems = spec.problems()
    except (KeyError, TypeError, ValueError, RecursionError):
        spec, problems = None, ["is not an image model spec"]
    for problem in problems:
        p.append(f"{p.source}: spec {problem}")
    return spec if not problems else None


@dataclass(frozen=True)
class Golden:
    noise: np.ndarray                               # (count, noise_dim) float32
    labels: np.ndarray | None                       # (count,) int64, or None for a GAN
    images: dict[str, np.ndarray]                   # model file -> (count, C, H, W) float32
    tolerance: dict[str, tuple[str, float]]         # model file -> (metric, bound)


def _decoded(text, shape: tuple[int, ...], where: str, p: Problems) -> np.ndarray | None:
    expected = 4 * math.prod(shape)
    if not p.need(isinstance(text, str) and len(text) == 4 * math.ceil(expected / 3), where,
                  f"is not {expected} bytes of base64 float32"):
        return None
    try:
        return decode(text, shape)
    except (binascii.Error, ValueError):
        p.append(f"{p.source}: {where} is not base64 float32")
        return None


def _tolerance(entry: FileEntry, tolerance, p: Problems) -> tuple[str, float] | None:
    """The file's tolerance for one model, never looser than this version's for its precision."""
    metric, bound = GOLDEN_TOLERANCE[family(str(entry.precision))]
    given = tolerance.get(entry.path) if isinstance(tolerance, dict) else None
    ok = p.need(isinstance(given, dict) and given.get("metric") == metric, f"tolerance[{entry.path!r}].metric",
                f"is not {metric}, the metric of {entry.precision}")
    given_bound = given.get("bound") if isinstance(given, dict) else None
    ok &= p.need(isinstance(given_bound, (int, float)) and not isinstance(given_bound, bool)
                 and 0 <= given_bound <= bound, f"tolerance[{entry.path!r}].bound", f"is not a number in 0..{bound}")
    return (metric, float(given_bound)) if ok and given_bound is not None else None


def _vector(item, i: int, manifest: Manifest, p: Problems) -> tuple | None:
    where = f"vectors[{i}]"
    if not p.need(isinstance(item, dict) and isinstance(item.get("images"), dict), where,
                  "is not an object with images"):
        return None
    label = item.get("label")
    if manifest.num_classes:
        last = manifest.num_classes - 1
        p.need(integer_in(label, 0, last), f"{where}.label", f"is not a class in 0..{last}")
    else:
        p.need(label is None, f"{where}.label", "must be null for an unconditional model")
    noise = _decoded(item.get("noise"), (manifest.noise_dim,), f"{where}.noise", p)
    images = {e.path: _decoded(item["images"].get(e.path), manifest.image_shape, f"{where}.images[{e.path!r}]", p)
              for e in manifest.models}
    return noise, label, images


def read_golden(data, source: str, manifest: Manifest) -> tuple[Golden | None, list[str]]:
    """The golden vectors of every model entry of `manifest`, or None and the problems."""
    p = Problems(source)
    if not p.need(isinstance(data, dict), "the top level", "is not an object") \
            or not _format(data, (GOLDEN_FORMAT,), p):
        return None, list(p)
    vectors = data.get("vectors")
    if not p.need(isinstance(vectors, list) and len(vectors) == manifest.golden_count, "vectors",
                  f"is not a list of the {manifest.golden_count} vectors the manifest records"):
        return None, list(p)
    tolerance = {e.path: _tolerance(e, data.get("tolerance"), p) for e in manifest.models}
    vectors_read = [_vector(item, i, manifest, p) for i, item in enumerate(vectors)]
    read = [r for r in vectors_read if r is not None]
    if p or len(read) != len(vectors):
        return None, list(p)
    noise = np.stack([r[0] for r in read])
    labels = np.array([r[1] for r in read], dtype=np.int64) if manifest.num_classes else None
    images = {e.path: np.stack([r[2][e.path] for r in read]) for e in manifest.models}
    return Golden(noise, labels, images, {k: v for k, v in tolerance.items() if v is not None}), []

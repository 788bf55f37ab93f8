"""One spec of what a generator takes and gives, read by everything that describes or feeds one.

`GeneratorSpec` holds the facts (noise length, classes, image shape and range, psi, the packager's
default truncation, the parity bound and batches that proved the export); `inputs()` and `outputs()`
turn them into `TensorSpec`s (name, dtype, shape with the batch axis, optional with its default, value
range). Export writes the spec into the model (metadata `gan_pack.spec`), and each consumer renders
the same tensors in its own form: the signature check and the runtime's feeds, the package manifest,
the model card, Triton's config.pbtxt, serve's Open Inference Protocol metadata, and the Node and web
examples' manifest readers. psi is one optional float32 input everywhere, (batch,) or (1,), default 1:
a tensor in a graph, a manifest, Triton and serve alike (serve also takes it as a parameter).
numpy-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from gan_pack.contract.names import BATCH_AXIS, HEIGHT_AXIS, IMAGE, IMAGES, LABELS, NOISE, PSI, PSI_AXIS, WIDTH_AXIS

SPEC_KEY = "gan_pack.spec"
OIP_TYPES = {"float32": "FP32", "int64": "INT64"}
ONNX_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)"}
PSI_RANGE = (-2.0, 2.0)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a generator's graph."""

    name: str
    dtype: str                                   # float32 | int64
    shape: tuple                                 # the batch axis (a name) first, then sizes
    optional: bool = False
    default: float | None = None
    range: tuple | None = None                   # the values it takes (inclusive)
    doc: str = ""

    @classmethod
    def from_manifest(cls, entry: dict) -> "TensorSpec":
        """A manifest contract entry back as a TensorSpec (what the card renders)."""
        return cls(entry["name"], entry["dtype"], tuple(entry["shape"]), bool(entry.get("optional")),
                   entry.get("default"), tuple(entry["range"]) if entry.get("range") is not None else None)

    def manifest(self) -> dict:
        entry: dict = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.optional:
            entry.update(optional=True, default=self.default)
        if self.range is not None:
            entry["range"] = list(self.range)
        return entry

    def oip(self) -> dict:
        """An Open Inference Protocol metadata entry: -1 for the batch axis."""
        return {"name": self.name, "datatype": OIP_TYPES[self.dtype],
                "shape": [-1 if isinstance(d, str) else d for d in self.shape]}

    def triton(self) -> str:
        """A config.pbtxt entry: dims without the batch axis (-1 for a named one: an image model's height
        and width); a per-image scalar as [1] reshaped to []."""
        dims = [-1 if isinstance(d, str) else d for d in self.shape[1:]]
        shape = f"dims: [ {', '.join(map(str, dims))} ]" if dims else "dims: [ 1 ] reshape: { shape: [ ] }"
        optional = " optional: true" if self.optional else ""
        return f'  {{ name: "{self.name}" data_type: TYPE_{OIP_TYPES[self.dtype]} {shape}{optional} }}'

    def card(self) -> str:
        shape = ", ".join(map(str, self.shape))
        extra = f", optional (default {self.default:g})" if self.optional else ""
        values = f" in {self.range[0]:g}..{self.range[1]:g}" if self.range else ""
        return f"`{self.name}` {self.dtype} `[{shape}]`{values}{extra}" + (f": {self.doc}" if self.doc else "")


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generator takes and gives, and what proved its export."""

    noise_dim: int
    num_classes: int
    image_shape: tuple[int, int, int]
    psi: bool = False                             # a StyleGAN's truncation in w space, an optional input
    truncation: float | None = None               # the noise threshold its samplers use by default
    output_range: tuple[float, float] = (-1.0, 1.0)
    parity_bound: float | None = None             # the max abs difference its export was held to
    parity_batches: tuple[int, ...] = field(default=())

    def inputs(self) -> list[TensorSpec]:
        tensors = [TensorSpec(NOISE, "float32", (BATCH_AXIS, self.noise_dim),
                              doc="standard normal noise, one row per image")]
        if self.num_classes:
            tensors.append(TensorSpec(LABELS, "int64", (BATCH_AXIS,), range=(0, self.num_classes - 1),
                                      doc="the class of each image"))
        if self.psi:
            tensors.append(TensorSpec(PSI, "float32", (PSI_AXIS,), optional=True, default=1.0, range=PSI_RANGE,
                                      doc="truncation in w space, one per image or one for all"))
        return tensors

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(IMAGES, "float32", (BATCH_AXIS, *self.image_shape), range=self.output_range,
                           doc="images, channels first")]

    def contract(self) -> dict:
        """The manifest's `contract`: every input and output."""
        return {"inputs": [t.manifest() for t in self.inputs()], "outputs": [t.manifest() for t in self.outputs()]}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GeneratorSpec":
        values = json.loads(text)
        if not isinstance(values, dict) or set(values) - set(cls.__dataclass_fields__):
            raise ValueError("a generator spec is an object of GeneratorSpec's fields")
        for key in ("image_shape", "output_range", "parity_batches"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


TILINGS = ("supported", "discouraged", "internal")


@dataclass(frozen=True)
class ImageModelSpec:
    """What an image-to-image model (an upscaler, a restorer) takes and gives: an image in [0, 1]
    with any batch, height and width its size rules allow, and the image `scale` times larger.

    Size rules: height and width a multiple of `multiple_of` and at least `minimum` (`square`: equal;
    `fixed`: exactly that size, e.g. a face restorer's 512). A runtime pads an image up to the rules
    (reflect) and crops the output back. `alpha`: the model itself takes RGBA; an RGB model given
    RGBA has its alpha upscaled apart and joined back. `tiling`: whether cutting an image into tiles
    is fine (supported), changes results (discouraged) or breaks the model (internal: no tiles)."""

    arch: str
    in_channels: int
    out_channels: int
    scale: int
    multiple_of: int = 1
    minimum: int = 1
    square: bool = False
    fixed: int | None = None
    alpha: bool = False
    tiling: str = "supported"
    input_range: tuple[float, float] = (0.0, 1.0)
    output_range: tuple[float, float] = (0.0, 1.0)
    bytes_per_pixel: int = 0                      # activations per input pixel (sizes the default tile)
    parity_bound: float | None = None
    parity_sizes: tuple[tuple[int, int, int], ...] = field(default=())      # (batch, height, width) proven

    def inputs(self) -> list[TensorSpec]:
        h: int | str = self.fixed or HEIGHT_AXIS
        w: int | str = self.fixed or WIDTH_AXIS
        return [TensorSpec(IMAGE, "float32", (BATCH_AXIS, self.in_channels, h, w), range=self.input_range,
                           doc=f"images, channels first; {self.size_rule()}")]

    def outputs(self) -> list[TensorSpec]:
        h: int | str
        w: int | str
        if self.fixed:
            h = w = self.fixed * self.scale
        else:
            h, w = ((HEIGHT_AXIS, WIDTH_AXIS) if self.scale == 1
                    else (f"{HEIGHT_AXIS}*{self.scale}", f"{WIDTH_AXIS}*{self.scale}"))
        return [TensorSpec(IMAGES, "float32", (BATCH_AXIS, self.out_channels, h, w), range=self.output_range,
                           doc=f"the images {self.scale}x larger" if self.scale > 1 else "the images restored")]

    def size_rule(self) -> str:
        if self.fixed:
            return f"exactly {self.fixed}x{self.fixed}"
        rules = [f"a multiple of {self.multiple_of}"] if self.multiple_of > 1 else []
        rules += [f"at least {self.minimum}"] if self.minimum > 1 else []
        rules += ["square"] if self.square else []
        return "height and width " + (", ".join(rules) if rules else "any")

    def padded(self, height: int, width: int) -> tuple[int, int]:
        """The smallest size at or above (height, width) that the rules take."""
        if self.fixed:
            return self.fixed, self.fixed
        m = self.multiple_of
        h, w = (max(-(-x // m) * m, -(-self.minimum // m) * m) for x in (height, width))
        return (max(h, w), max(h, w)) if self.square else (h, w)

    def contract(self) -> dict:
        return {"inputs": [t.manifest() for t in self.inputs()], "outputs": [t.manifest() for t in self.outputs()]}

    def to_json(self) -> str:
        return json.dumps({"kind": "image-model", **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ImageModelSpec":
        values = json.loads(text)
        if not isinstance(values, dict) or values.pop("kind", None) != "image-model" \
                or set(values) - set(cls.__dataclass_fields__):
            raise ValueError("an image model spec is an object of ImageModelSpec's fields")
        for key in ("input_range", "output_range"):
            if key in values:
                values[key] = tuple(values[key])
        if "parity_sizes" in values:
            values["parity_sizes"] = tuple(tuple(s) for s in values["parity_sizes"])
        return cls(**values)

    def problems(self) -> list[str]:
        """Values no real image model has."""
        p = []
        ints = (self.in_channels, self.out_channels, self.scale, self.multiple_of, self.minimum, self.bytes_per_pixel)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            return ["its sizes are not integers"]
        if not (1 <= self.in_channels <= 4 and 1 <= self.out_channels <= 4):
            p.append(f"channels {self.in_channels} -> {self.out_channels} are not 1..4")
        if not 1 <= self.scale <= 16:
            p.append(f"scale {self.scale} is not in 1..16")
        if not (1 <= self.multiple_of <= 1024 and 1 <= self.minimum <= 4096):
            p.append("its size rules are not a multiple of 1..1024 and a minimum of 1..4096")
        if self.fixed is not None and not (isinstance(self.fixed, int) and 1 <= self.fixed <= 4096):
            p.append(f"fixed size {self.fixed} is not in 1..4096")
        if self.tiling not in TILINGS:
            p.append(f"tiling {self.tiling!r} is not one of {', '.join(TILINGS)}")
        if not 0 <= self.bytes_per_pixel <= 1 << 24:
            p.append(f"bytes_per_pixel {self.bytes_per_pixel} is not in 0..{1 << 24}")
        return p

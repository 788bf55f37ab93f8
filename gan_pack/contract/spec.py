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

from gan_pack.contract.names import BATCH_AXIS, IMAGES, LABELS, NOISE, PSI, PSI_AXIS

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
        """A config.pbtxt entry: dims without the batch axis; a per-image scalar as [1] reshaped to []."""
        dims = [d for d in self.shape[1:]]
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

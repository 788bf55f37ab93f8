"""NVlabs StyleGAN2-ADA generators (stylegan2-ada-pytorch, and stylegan3's `--cfg stylegan2`), rebuilt
from the records of their network pickle by code of ours: none of the pickle's own source runs.

What a record says is read as data: the generator's sizes (z_dim, c_dim, w_dim, img_resolution,
img_channels), each block's architecture (orig, skip, resnet) and each layer's conv_clamp, gains and
activation; every tensor's shape is then checked against the network those numbers describe before
anything is built. The graph computes what NVlabs' forward computes with its reference ops:

- the mapping network: z normalized, the label's embedding (a table lookup of the one-hot product)
  normalized and concatenated, fully connected layers with their learning-rate gains;
- psi, an input of the graph (absent: 1), truncating w around the stored `w_avg`;
- modulated convolutions as in stylegan2.py (style-scaled input, one shared weight, demodulation
  coefficients), the FIR up-sampling as ordinary convolutions, conv_clamp as a clamp;
- noise: const (the stored noise_const times noise_strength, as NVlabs' gen_images.py draws) or none.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_pack.contract.limits import MAX_CLASSES, MAX_NOISE_DIM
from gan_pack.errors import CheckpointError
from gan_pack.pytorch.network_pickle import PersistentObject
from gan_pack.pytorch.stylegan2 import ModulatedConv, ScaledLinear, Upsample

MAX_RESOLUTION = 4096
MAX_CHANNELS = 4096
ARCHITECTURES = ("orig", "skip", "resnet")


def _int(record: PersistentObject, name: str, low: int, high: int, where: str) -> int:
    value = record.attribute(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CheckpointError(f"{where}.{name} is {str(value)[:40]!r}, not a whole number in {low}..{high}")
    return value


def _number(record: PersistentObject, name: str, where: str, optional: bool = False) -> float | None:
    value = record.attribute(name)
    if value is None and optional:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise CheckpointError(f"{where}.{name} is {str(value)[:40]!r}, not a number >= 0")
    return float(value)


def _child(record: PersistentObject, name: str, where: str) -> PersistentObject | None:
    child = record.modules.get(name)
    return child if isinstance(child, PersistentObject) else None


class Dense(ScaledLinear):
    """NVlabs' FullyConnectedLayer: weight * weight_gain, bias * bias_gain, linear or lrelu * sqrt(2)."""

    def __init__(self, record: PersistentObject, where: str, tensors: dict[str, torch.Tensor]):
        activation = record.attribute("activation", "linear")
        if activation not in ("linear", "lrelu"):
            raise CheckpointError(f"{where} uses activation {str(activation)[:20]!r}; only linear and lrelu are "
                                  f"rebuilt")
        gain, bias_gain = _number(record, "weight_gain", where), _number(record, "bias_gain", where)
        super().__init__(tensors[f"{where}.weight"].float() * gain, tensors[f"{where}.bias"].float() * bias_gain,
                         activation == "lrelu")


def normalize(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


class Mapping(nn.Module):
    """z (B, z_dim) [+ labels (B,)] -> w (B, w_dim)."""

    def __init__(self, record: PersistentObject, tensors: dict[str, torch.Tensor], num_classes: int):
        super().__init__()
        count = sum(1 for name in record.modules if name.startswith("fc") and name[2:].isdigit())
        self.layers = nn.ModuleList(Dense(_child(record, f"fc{i}", "mapping"), f"mapping.fc{i}", tensors)
                                    for i in range(count))
        self.num_classes = num_classes
        if num_classes:
            embed = Dense(_child(record, "embed", "mapping"), "mapping.embed", tensors)
            self.register_buffer("embedding", embed.weight.t() + embed.bias)      # (c_dim, features): one-hot rows

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = normalize(z)
        if self.num_classes:
            x = torch.cat([x, normalize(self.embedding[labels])], dim=1)
        for layer in self.layers:
            x = layer(x)
        return x


def layer_conv(record: PersistentObject, where: str, tensors: dict, noise_mode: str, torgb: bool) -> ModulatedConv:
    """A SynthesisLayer (or ToRGBLayer) record as a ModulatedConv."""
    affine = Dense(_child(record, "affine", where), f"{where}.affine", tensors)
    weight, bias = tensors[f"{where}.weight"].float(), tensors[f"{where}.bias"].float()
    clamp = _number(record, "conv_clamp", where, optional=True)
    if torgb:
        gain = _number(record, "weight_gain", where)
        return ModulatedConv(weight * gain, affine, demodulate=False, bias=bias, activate=False, clamp=clamp)
    if record.attribute("activation") != "lrelu":
        raise CheckpointError(f"{where} uses activation {str(record.attribute('activation'))[:20]!r}; only lrelu "
                              f"is rebuilt")
    up = _int(record, "up", 1, 2, where) == 2
    noise = None
    if noise_mode == "const" and record.attribute("use_noise"):
        noise = (tensors[f"{where}.noise_const"] * tensors[f"{where}.noise_strength"]).float()[None, None]
    blur = None
    if up:
        f = resample_filter(tensors[f"{where}.resample_filter"], where)
        k, taps = weight.shape[-1], f.shape[0]
        pad = (k // 2 + (taps + 1) // 2 - (k - 1), k // 2 + (taps - 2) // 2 - (k - 2))
        if min(pad) < 0:
            raise CheckpointError(f"{where}: a {k}x{k} kernel with a {taps}-tap filter is not rebuilt")
        blur = (f * 4, pad)
    return ModulatedConv(weight, affine, demodulate=True, up=up, blur=blur, bias=bias, noise=noise, clamp=clamp)


def resample_filter(f: torch.Tensor, where: str) -> torch.Tensor:
    """NVlabs' setup_filter result as a 2-D kernel (a separable 1-D one as its outer product)."""
    f = f.float()
    if f.dim() == 1:
        f = torch.outer(f, f)
    if f.dim() != 2 or f.shape[0] != f.shape[1] or not 2 <= f.shape[0] <= 16:
        raise CheckpointError(f"{where}.resample_filter has shape {tuple(f.shape)}, not a square FIR kernel")
    return f


class Block(nn.Module):
    """One SynthesisBlock: (const | [skip] conv0, conv1), then the image: upsampled, plus ToRGB."""

    def __init__(self, record: PersistentObject, where: str, tensors: dict, noise_mode: str, img_channels: int):
        super().__init__()
        self.architecture = record.attribute("architecture")
        if self.architecture not in ARCHITECTURES:
            raise CheckpointError(f"{where}.architecture is {str(self.architecture)[:20]!r}, not one of "
                                  f"{', '.join(ARCHITECTURES)}")
        self.first = f"{where}.const" in tensors
        if self.first:
            self.register_buffer("const", tensors[f"{where}.const"].float()[None])
        gain = 1.0 if self.first or self.architecture != "resnet" else math.sqrt(0.5)
        self.conv0 = None if self.first else layer_conv(_child(record, "conv0", where), f"{where}.conv0", tensors,
                                                        noise_mode, False)
        self.conv1 = layer_conv(_child(record, "conv1", where), f"{where}.conv1", tensors, noise_mode, False)
        self.conv1.gain = gain
        self.torgb = (layer_conv(_child(record, "torgb", where), f"{where}.torgb", tensors, noise_mode, True)
                      if _child(record, "torgb", where) is not None else None)
        f = resample_filter(tensors[f"{where}.resample_filter"], where)
        taps = f.shape[0]
        self.upsample = Upsample(f * 4, ((taps + 1) // 2, (taps - 2) // 2), img_channels)
        self.skip = None
        if self.architecture == "resnet" and not self.first:
            skip = _child(record, "skip", where)
            self.skip = Upsample(f * 4, ((taps + 1) // 2, (taps - 2) // 2), tensors[f"{where}.skip.weight"].shape[1])
            self.register_buffer("skip_weight", tensors[f"{where}.skip.weight"].float()
                                 * _number(skip, "weight_gain", f"{where}.skip") * math.sqrt(0.5))

    def forward(self, x: torch.Tensor | None, image: torch.Tensor | None, w: torch.Tensor):
        if self.first:
            x = self.conv1(self.const.expand(w.shape[0], -1, -1, -1), w)
        elif self.skip is not None:
            y = F.conv2d(self.skip(x), self.skip_weight)
            x = y + self.conv1(self.conv0(x, w), w)
        else:
            x = self.conv1(self.conv0(x, w), w)
        if image is not None:
            image = self.upsample(image)
        if self.torgb is not None:
            y = self.torgb(x, w)
            image = y if image is None else image + y
        return x, image


class NVlabsStyleGAN2(nn.Module):
    """noise (B, z_dim) [+ labels (B,)] [+ psi (B,) or (1,)] -> images (B, C, R, R) in [-1, 1]."""

    def __init__(self, mapping: Mapping, blocks: list[Block], w_avg: torch.Tensor):
        super().__init__()
        self.mapping, self.blocks = mapping, nn.ModuleList(blocks)
        self.register_buffer("w_avg", w_avg.float().reshape(1, -1))

    def forward(self, noise: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        labels = rest[0] if self.mapping.num_classes else None
        psi = rest[-1] if len(rest) > (1 if self.mapping.num_classes else 0) else None
        w = self.mapping(noise, labels)                                          # (B, w_dim)
        if psi is not None:
            w = self.w_avg + psi.reshape(-1, 1) * (w - self.w_avg)
        x = image = None
        for block in self.blocks:
            x, image = block(x, image, w)
        return image.clamp(-1.0, 1.0)


def stylegan2_sizes(g: PersistentObject) -> dict:
    """The generator's sizes, from its record, each bounded."""
    return {"z_dim": _int(g, "z_dim", 1, MAX_NOISE_DIM, "G"), "c_dim": _int(g, "c_dim", 0, MAX_CLASSES, "G"),
            "w_dim": _int(g, "w_dim", 1, MAX_NOISE_DIM, "G"),
            "img_resolution": _int(g, "img_resolution", 4, MAX_RESOLUTION, "G"),
            "img_channels": _int(g, "img_channels", 1, 4, "G")}


def mapping_shapes(g: PersistentObject, sizes: dict, tensors: dict[str, torch.Tensor]) -> dict[str, tuple | None]:
    """The mapping network's tensors and their shapes (StyleGAN2 and StyleGAN3 share its layout)."""
    mapping = _child(g, "mapping", "G")
    if mapping is None or _child(g, "synthesis", "G") is None:
        raise CheckpointError("G has no mapping or synthesis network; it is not a StyleGAN generator")
    z, c, w = sizes["z_dim"], sizes["c_dim"], sizes["w_dim"]
    count = sum(1 for name in mapping.modules if name.startswith("fc") and name[2:].isdigit())
    embed = tuple(tensors.get("mapping.embed.weight", torch.zeros(w, 0)).shape)[0] if c else 0
    hidden = tuple(tensors.get("mapping.fc0.weight", torch.zeros(w, 0)).shape)[0] if count > 1 else w
    shapes: dict[str, tuple | None] = {"mapping.w_avg": (w,)}
    if c:
        shapes.update({"mapping.embed.weight": (embed, c), "mapping.embed.bias": (embed,)})
    features = [z + embed] + [hidden] * (count - 1) + [w]
    for i in range(count):
        shapes.update({f"mapping.fc{i}.weight": (features[i + 1], features[i]),
                       f"mapping.fc{i}.bias": (features[i + 1],)})
    return shapes


def expected_shapes(g: PersistentObject, sizes: dict, tensors: dict[str, torch.Tensor]) -> dict[str, tuple | None]:
    """Every tensor the network that `sizes` and the records describe holds, with its shape (None: a
    FIR filter, any size; its form is checked when it is read)."""
    shapes = mapping_shapes(g, sizes, tensors)
    synthesis, w = _child(g, "synthesis", "G"), sizes["w_dim"]
    side, previous = 4, 0
    kernel = tuple(tensors.get("synthesis.b4.conv1.weight", torch.zeros(1, 1, 3, 3)).shape)[-1]
    while side <= sizes["img_resolution"]:
        name = f"b{side}"
        block = _child(synthesis, name, "synthesis")
        if block is None:
            raise CheckpointError(f"synthesis has no block {name} (a {sizes['img_resolution']} px generator has "
                                  f"blocks b4 ... b{sizes['img_resolution']})")
        at = f"synthesis.{name}"
        channels = tuple(tensors.get(f"{at}.conv1.weight", torch.zeros(0)).shape)[:1] or (0,)
        if not 1 <= channels[0] <= MAX_CHANNELS:
            raise CheckpointError(f"{at}.conv1.weight is missing or has {channels[0]} outputs, not 1..{MAX_CHANNELS}")
        channels = channels[0]
        shapes[f"{at}.resample_filter"] = None
        if previous == 0:
            shapes[f"{at}.const"] = (channels, 4, 4)
        convs = [("conv1", channels, side)] if previous == 0 else [("conv0", previous, side), ("conv1", channels, side)]
        for conv, width_in, res in convs:
            layer = f"{at}.{conv}"
            shapes.update({f"{layer}.weight": (channels, width_in, kernel, kernel), f"{layer}.bias": (channels,),
                           f"{layer}.affine.weight": (width_in, w), f"{layer}.affine.bias": (width_in,),
                           f"{layer}.resample_filter": None})
            if (_child(block, conv, at) or block).attribute("use_noise"):
                shapes.update({f"{at}.{conv}.noise_const": (res, res), f"{at}.{conv}.noise_strength": ()})
        if _child(block, "torgb", at) is not None:
            img = sizes["img_channels"]
            shapes.update({f"{at}.torgb.weight": (img, channels, 1, 1), f"{at}.torgb.bias": (img,),
                           f"{at}.torgb.affine.weight": (channels, w), f"{at}.torgb.affine.bias": (channels,)})
        if _child(block, "skip", at) is not None:
            shapes.update({f"{at}.skip.weight": (channels, previous, 1, 1), f"{at}.skip.resample_filter": None})
        previous, side = channels, side * 2
    return shapes


def check_tensors(shapes: dict[str, tuple | None], tensors: dict[str, torch.Tensor], source: str) -> None:
    """The pickle's tensors are exactly those `shapes` names, each of its shape, finite; else one
    error listing what is missing, unexpected and misshaped."""
    missing = [k for k in shapes if k not in tensors]
    unexpected = [k for k in tensors if k not in shapes]
    misshaped = [f"{k} {tuple(tensors[k].shape)} vs {shape}" for k, shape in shapes.items()
                 if k in tensors and shape is not None and tuple(tensors[k].shape) != shape]
    parts = [f"{label}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}"
             for label, items in (("missing", missing), ("unexpected", unexpected), ("other shapes", misshaped))
             if items]
    if parts:
        raise CheckpointError(f"{source} does not fit the StyleGAN2 network its records describe ({'; '.join(parts)})")
    broken = next((k for k, v in tensors.items() if not v.is_floating_point() or not bool(torch.isfinite(v).all())),
                  None)
    if broken is not None:
        raise CheckpointError(f"{source}: {broken} is not finite floating-point numbers; these weights cannot make "
                              f"images")


def rebuild_stylegan2(g: PersistentObject, noise_mode: str, source: str) -> tuple[NVlabsStyleGAN2, dict]:
    """The clean-room network of a StyleGAN2-ADA generator record, and its sizes."""
    sizes = stylegan2_sizes(g)
    if sizes["img_resolution"] & (sizes["img_resolution"] - 1):
        raise CheckpointError(f"G.img_resolution {sizes['img_resolution']} is not a power of two")
    tensors = g.tensors()
    check_tensors(expected_shapes(g, sizes, tensors), tensors, source)
    mapping = Mapping(_child(g, "mapping", "G"), tensors, sizes["c_dim"])
    synthesis = _child(g, "synthesis", "G")
    blocks = [Block(_child(synthesis, f"b{4 << i}", "synthesis"), f"synthesis.b{4 << i}", tensors, noise_mode,
                    sizes["img_channels"]) for i in range(int(math.log2(sizes["img_resolution"])) - 1)]
    architecture = blocks[-1].architecture
    return NVlabsStyleGAN2(mapping, blocks, tensors["mapping.w_avg"]).eval(), {**sizes, "architecture": architecture,
                                                                               "mapping_layers": len(mapping.layers)}

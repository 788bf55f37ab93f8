"""A clean-room StyleGAN2-ADA generator laid out as NVlabs' network pickles record it (the same module
names, attribute names and tensor names), with a deliberately naive forward of its own: per-sample
weights in one grouped convolution, FIR resampling by zero insertion, padding and a flipped 2-D
filter, bias, activation, gain and clamp in NVlabs' order. Written from the format's description, not
from NVlabs' code.

`dump_snapshot` pickles networks as NVlabs' persistence format does: each network object reduces to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, meta holding its class name, a module
source and its state. `unsafe_load` is what `pickle.load` does with such a file when NVlabs' code is
importable: it runs the module source the file carries."""

from __future__ import annotations

import math
import pickle
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SOURCE = "# the module source a network pickle carries\nimport torch\n"


def upfirdn(x, f, up=1, pad=(0, 0), gain=1.0):
    """Zero insertion by `up`, padding (lo, hi) on both axes, true convolution with the 2-D `f` * gain."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def bias_act(x, b, lrelu, gain, clamp):
    x = x + b[None, :, None, None]
    if lrelu:
        x = F.leaky_relu(x, 0.2)
    x = x * gain
    return x if clamp is None else x.clamp(-clamp, clamp)


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features, out_features, activation="linear", lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = np.float64(lr_multiplier / np.sqrt(in_features))
        self.bias_gain = lr_multiplier

    def forward(self, x):
        x = x @ (self.weight * self.weight_gain).t() + self.bias * self.bias_gain
        return F.leaky_relu(x, 0.2) * np.sqrt(2) if self.activation == "lrelu" else x


def normalize_2nd_moment(x):
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class MappingNetwork(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=2):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        embed = w_dim if c_dim else 0
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed)
        widths = [z_dim + embed] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(widths[i], widths[i + 1], "lrelu", lr_multiplier=0.01))
        self.register_buffer("w_avg", torch.randn(w_dim) * 0.3)

    def forward(self, z, c, truncation_psi=1.0):
        x = normalize_2nd_moment(z)
        if self.c_dim:
            x = torch.cat([x, normalize_2nd_moment(self.embed(c))], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return self.w_avg.lerp(x, truncation_psi)


def modulated_conv(x, weight, styles, demodulate, up=1, resample_filter=None):
    b, (o, i, k, _) = x.shape[0], weight.shape
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    x = x.reshape(1, b * i, *x.shape[2:])
    w = w.reshape(b * o, i, k, k)
    if up == 1:
        x = F.conv2d(x, w, padding=k // 2, groups=b)
    else:                       # a transposed convolution: zero insertion, full padding, the flipped kernel
        x = upfirdn(x, torch.ones(1, 1), up=2, pad=(k - 1, k - 1 - 1))
        x = F.conv2d(x, w.flip([2, 3]), groups=b)
        x = x.reshape(b, o, *x.shape[2:])
        return upfirdn(x, resample_filter, pad=(1, 1), gain=4.0)
    return x.reshape(b, o, *x.shape[2:])


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, conv_clamp=256, use_noise=True):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.use_noise, self.activation, self.conv_clamp = use_noise, "lrelu", conv_clamp
        self.act_gain = np.float64(np.sqrt(2))
        self.padding = 1
        self.register_buffer("resample_filter", setup_filter())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.tensor(0.2))
        self.bias = nn.Parameter(torch.randn(out_channels) * 0.1)

    def forward(self, x, w, noise_mode="const", gain=1.0):
        x = modulated_conv(x, self.weight, self.affine(w), True, self.up, self.resample_filter)
        if self.use_noise and noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, True, self.act_gain * gain, clamp)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, conv_clamp=256):
        super().__init__()
        self.in_channels, self.out_channels, self.conv_clamp = in_channels, out_channels, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1) * 0.3)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / np.sqrt(in_channels)

    def forward(self, x, w):
        x = modulated_conv(x, self.weight, self.affine(w) * self.weight_gain, False)
        return bias_act(x, self.bias, False, 1.0, self.conv_clamp)


class Conv2dLayer(nn.Module):
    """The 1x1 up-sampling skip of a resnet block (no bias)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.register_buffer("resample_filter", setup_filter())
        self.weight_gain = np.float64(1 / np.sqrt(in_channels))
        self.up = 2

    def forward(self, x, gain):
        x = upfirdn(x, self.resample_filter, up=2, pad=(2, 1), gain=4.0)
        return F.conv2d(x, self.weight * self.weight_gain) * gain


def setup_filter():
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f)
    return f / f.sum()


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture="skip",
                 conv_clamp=256, use_noise=True):
        super().__init__()
        self.in_channels, self.resolution, self.is_last, self.architecture = in_channels, resolution, is_last, \
            architecture
        self.img_channels = img_channels
        self.register_buffer("resample_filter", setup_filter())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, 2, conv_clamp, use_noise)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, 1, conv_clamp, use_noise)
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        if in_channels and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels)

    def forward(self, x, img, w, noise_mode):
        if self.in_channels == 0:
            x = self.conv1(self.const[None].repeat(w.shape[0], 1, 1, 1), w, noise_mode)
        elif self.architecture == "resnet":
            y = self.skip(x, np.sqrt(0.5))
            x = self.conv1(self.conv0(x, w, noise_mode), w, noise_mode, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x, w, noise_mode), w, noise_mode)
        if img is not None:
            img = upfirdn(img, self.resample_filter, up=2, pad=(2, 1), gain=4.0)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, w)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim, img_resolution, img_channels, channel_base=512, channel_max=32, **block_kwargs):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, int(np.log2(img_resolution)) + 1)]
        self.size = np.broadcast_to(np.asarray(img_resolution), [2])     # a numpy array in the record
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        for r in self.block_resolutions:
            block = SynthesisBlock(channels[r // 2] if r > 4 else 0, channels[r], w_dim, r, img_channels,
                                   r == img_resolution, **block_kwargs)
            setattr(self, f"b{r}", block)

    def forward(self, w, noise_mode):
        x = img = None
        for r in self.block_resolutions:
            x, img = getattr(self, f"b{r}")(x, img, w, noise_mode)
        return img


class Generator(nn.Module):
    def __init__(self, z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3, mapping_kwargs=None,
                 **synthesis_kwargs):
        super().__init__()
        self._init_args, self._init_kwargs = (), dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim,
                                                      img_resolution=img_resolution, img_channels=img_channels,
                                                      mapping_kwargs=mapping_kwargs or {}, **synthesis_kwargs)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, 0, **(mapping_kwargs or {}))

    @torch.no_grad()
    def forward(self, z, c, truncation_psi=1.0, noise_mode="const"):
        return self.synthesis(self.mapping(z, c, truncation_psi), noise_mode)


NETWORK_CLASSES = (FullyConnectedLayer, MappingNetwork, SynthesisLayer, ToRGBLayer, Conv2dLayer, SynthesisBlock,
                   SynthesisNetwork, Generator)


def images(g: Generator, z: np.ndarray, labels: np.ndarray | None = None, psi: float = 1.0, noise_mode="const"):
    """NVlabs' gen_images.py convention: one-hot labels, psi, images clamped to [-1, 1]."""
    c = None if labels is None else F.one_hot(torch.from_numpy(labels), g.c_dim).float()
    return g(torch.from_numpy(z), c, psi, noise_mode).clamp(-1, 1).numpy()


# ---------------------------------------------------------------- NVlabs' persistence format

def _install_format_modules() -> types.ModuleType:
    """torch_utils.persistence and dnnlib.util as pickle finds them by name; the reconstruct function
    does what NVlabs' does: it runs the module source the file carries."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        module = types.ModuleType("_imported_module")
        exec(compile(meta["module_src"], "<pickle>", "exec"), module.__dict__)   # what makes pickle.load unsafe
        cls = {c.__name__: c for c in NETWORK_CLASSES}[meta["class_name"]]
        obj = cls.__new__(cls)
        obj.__dict__.update(meta["state"])
        return obj

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                        "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util})
    return persistence


class _PersistencePickler(pickle.Pickler):
    def __init__(self, file, source: str, extra_state: dict | None):
        super().__init__(file, protocol=4)
        self.source, self.extra_state = source, extra_state or {}
        self.reconstruct = sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj

    def reducer_override(self, obj):
        if isinstance(obj, NETWORK_CLASSES):
            state = {**obj.__dict__, **(self.extra_state if isinstance(obj, Generator) else {})}
            if isinstance(obj, Generator):
                state["_init_kwargs"] = sys.modules["dnnlib.util"].EasyDict(obj._init_kwargs)
            meta = dict(type="class", version=6, module_src=self.source, class_name=type(obj).__name__, state=state)
            return self.reconstruct, (meta,)
        return NotImplemented


def dump_snapshot(path, networks: dict, source: str = SOURCE, extra_state: dict | None = None,
                  extra: dict | None = None) -> None:
    """A network-snapshot pickle: {'G': ..., 'D': None, 'G_ema': ..., 'augment_pipe': None, ...}."""
    import io

    _install_format_modules()
    buffer = io.BytesIO()
    _PersistencePickler(buffer, source, extra_state).dump({**networks, "augment_pipe": None,
                                                           "training_set_kwargs": {"resolution": 16}, **(extra or {})})
    with open(path, "wb") as f:
        f.write(buffer.getvalue())


def unsafe_load(path):
    """pickle.load with NVlabs' format modules importable: how such files are usually opened."""
    _install_format_modules()
    with open(path, "rb") as f:
        return pickle.load(f)


def exported_session(g, folder, capsys, family: str):
    """`ganpack export` of g's snapshot with no --from (it must say `family`), opened in onnxruntime."""
    import onnxruntime as ort

    from conftest import run_cli

    path = folder / "network-snapshot-000100.pkl"
    dump_snapshot(path, {"G": g, "D": None, "G_ema": g})
    code, out, err = run_cli(["export", path, "-o", folder / "sg.onnx"], capsys)
    assert code == 0, err
    assert f"{family})" in out
    return ort.InferenceSession(str(folder / "sg.onnx"), providers=["CPUExecutionProvider"]), path


def small_generator(seed=0, c_dim=0, img_resolution=16, architecture="skip", conv_clamp=256,
                    img_channels=3) -> Generator:
    torch.manual_seed(seed)
    return Generator(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=img_resolution, img_channels=img_channels,
                     mapping_kwargs={"num_layers": 2}, architecture=architecture, conv_clamp=conv_clamp).eval()


__all__ = ["dump_snapshot", "unsafe_load", "small_generator", "images", "math"]

"""Pure-PyTorch stand-ins for the custom CUDA ops of the StyleGAN2 lineage (`upfirdn2d`,
`fused_leaky_relu`), and `stylegan2_torch_generator()`, which imports the PyPI package
`stylegan2-torch` with them in place.

That package compiles its ops with nvcc when imported (`torch.utils.cpp_extension.load`) and imports
`distutils` (gone in Python 3.12), so on a CPU machine, or on 3.12, it does not import at all. The
stand-ins compute the same functions with ordinary torch ops (the lineage's own CPU reference
implementation), so its `Generator` runs anywhere, as a user without nvcc would run it.
"""

from __future__ import annotations

import contextlib
import sys
import types
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from gan_pack.errors import ConfigError

PACKAGE = "stylegan2_torch"
OP_MODULES = (f"{PACKAGE}.op.upfirdn2d", f"{PACKAGE}.op.fused_act")


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def upfirdn2d(input: torch.Tensor, kernel: torch.Tensor, up=1, down=1, pad=(0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter with the FIR `kernel`, downsample: per channel.
    `pad` is (x0, x1) for both axes or (x0, x1, y0, y1), as the CUDA op takes it."""
    (up_x, up_y), (down_x, down_y) = _pair(up), _pair(down)
    pad_x0, pad_x1, pad_y0, pad_y1 = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else pad
    batch, channels, height, width = input.shape
    x = input.reshape(batch * channels, 1, height, 1, width, 1)
    x = F.pad(x, [0, up_x - 1, 0, 0, 0, up_y - 1]).reshape(batch * channels, 1, height * up_y, width * up_x)
    x = F.pad(x, [max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    x = x[:, :, max(-pad_y0, 0):x.shape[2] - max(-pad_y1, 0), max(-pad_x0, 0):x.shape[3] - max(-pad_x1, 0)]
    x = F.conv2d(x, torch.flip(kernel, [0, 1]).to(x.dtype)[None, None])
    x = x[:, :, ::down_y, ::down_x]
    return x.reshape(batch, channels, x.shape[2], x.shape[3])


def fused_leaky_relu(input: torch.Tensor, bias: torch.Tensor | None = None, negative_slope: float = 0.2,
                     scale: float = 2 ** 0.5) -> torch.Tensor:
    """(input + bias per channel), leaky ReLU, times `scale`."""
    if bias is not None:
        input = input + bias.view(1, -1, *[1] * (input.ndim - 2))
    return F.leaky_relu(input, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """The lineage's activation layer, with its parameter named as in its checkpoints (`bias`)."""

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2, scale: float = 2 ** 0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope, self.scale = negative_slope, scale

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)


def _stand_in_modules() -> dict[str, types.ModuleType]:
    upfirdn = types.ModuleType(OP_MODULES[0])
    upfirdn.upfirdn2d = upfirdn2d
    fused = types.ModuleType(OP_MODULES[1])
    fused.fused_leaky_relu, fused.FusedLeakyReLU = fused_leaky_relu, FusedLeakyReLU
    return {OP_MODULES[0]: upfirdn, OP_MODULES[1]: fused}


@contextlib.contextmanager
def stand_ins() -> Iterator[None]:
    """The stand-in op modules in sys.modules while the package is imported, and afterwards
    sys.modules as it was: a later `import stylegan2_torch` of the user's meets the real package."""
    before = {name: module for name, module in sys.modules.items() if name.split(".")[0] == PACKAGE}
    for name in before:
        del sys.modules[name]
    sys.modules.update(_stand_in_modules())
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        sys.modules.update(before)


def stylegan2_torch_generator() -> type:
    """`stylegan2_torch.Generator`, imported with the stand-ins in place of its compiled ops."""
    with stand_ins():
        try:
            import stylegan2_torch
        except ModuleNotFoundError as e:
            if e.name not in (PACKAGE, "torch_conv_gradfix"):
                raise
            raise ConfigError(f"--from stylegan2-torch needs the package {e.name.replace('_', '-')}: "
                              f"pip install stylegan2-torch==1.3.0") from None
        return stylegan2_torch.Generator


def distutils_shim() -> types.ModuleType | None:
    """`distutils.util.strtobool` where Python (3.12+) has no distutils: what the package's op modules
    import. None where distutils is there."""
    try:
        import distutils.util  # noqa: F401
        return None
    except ModuleNotFoundError:
        pass

    def strtobool(value: str) -> int:
        value = value.lower()
        if value in ("y", "yes", "t", "true", "on", "1"):
            return 1
        if value in ("n", "no", "f", "false", "off", "0"):
            return 0
        raise ValueError(f"invalid truth value {value!r}")

    package, util = types.ModuleType("distutils"), types.ModuleType("distutils.util")
    util.strtobool, package.util = strtobool, util
    return package


def compiled_stylegan2_torch_generator() -> type:
    """`stylegan2_torch.Generator` with its own CUDA ops, compiled here with nvcc (a GPU machine;
    TORCH_CUDA_ARCH_LIST=9.0 shortens the build on an H100/H200): what its export is compared with
    on a GPU."""
    shim = distutils_shim()
    if shim is not None:
        sys.modules.setdefault("distutils", shim)
        sys.modules.setdefault("distutils.util", shim.util)
    import stylegan2_torch

    return stylegan2_torch.Generator

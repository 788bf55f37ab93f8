"""`--from stylegan2-torch --init`: stylegan2_torch.Generator's arguments, checked before anything is
built, and the size of the network they ask for, computed from the numbers alone. No torch."""

from __future__ import annotations

from gan_pack.contract.limits import MAX_NOISE_DIM
from gan_pack.core.numbers import integer_in, number
from gan_pack.errors import ConfigError

MEAN_LATENT_SAMPLES = 10_000
RESOLUTIONS = tuple(2 ** k for k in range(3, 11))             # 8 .. 1024
MAX_MAPPING_LAYERS = 64
MAX_WIDTH = 4096
MAX_NETWORK_BYTES = 1 << 30     # the weights and the mean latent's activations a --init may ask for
# stylegan2_torch.utils.default_channels (importing the package would build its CUDA ops)
DEFAULT_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}


def parse_stylegan2_init(init: dict) -> dict:
    """--init for stylegan2_torch.Generator, checked before anything is built: each value of its type
    and range (JSON's strings, NaN and 64.9 refused, not converted), a channel table that covers every
    resolution from 4 up, and a network whose size, computed from these numbers, fits
    MAX_NETWORK_BYTES. Every problem is said at once."""
    init, problems = dict(init), []
    resolution = init.get("resolution")
    if resolution not in RESOLUTIONS or not integer_in(resolution, 8, 1024):
        problems.append(f"\"resolution\" must be one of {', '.join(map(str, RESOLUTIONS))}, "
                        f"not {repr(resolution)[:20]}")
        resolution = None
    if not integer_in(init.get("latent_dim", 512), 1, MAX_NOISE_DIM):
        problems.append(f"latent_dim must be an integer in 1..{MAX_NOISE_DIM}")
    if not integer_in(init.get("n_mlp", 8), 1, MAX_MAPPING_LAYERS):
        problems.append(f"n_mlp must be an integer in 1..{MAX_MAPPING_LAYERS}")
    if not (number(init.get("lr_mlp_mult", 0.01)) and init.get("lr_mlp_mult", 0.01) > 0):
        problems.append("lr_mlp_mult must be a positive number")
    kernel = init.get("blur_kernel", [1, 3, 3, 1])
    if not (isinstance(kernel, list) and 1 <= len(kernel) <= 8 and all(number(k) and k >= 0 for k in kernel)
            and sum(kernel) > 0):
        problems.append("blur_kernel must be a list of 1 to 8 numbers >= 0, like [1, 3, 3, 1]")
    if "channels" in init:
        channels = _channels(init["channels"], resolution, problems)
        if channels is not None:
            init["channels"] = channels
    if not problems and resolution is not None:
        need = network_bytes(init)
        if need > MAX_NETWORK_BYTES:
            problems.append(f"this network would take about {need / 2**30:,.1f} GiB (weights and the mean latent's "
                            f"{MEAN_LATENT_SAMPLES} samples), over the {MAX_NETWORK_BYTES >> 30} GiB an import may "
                            f"take; check latent_dim, n_mlp and channels")
    if problems:
        raise ConfigError(f"--init: {'; '.join(problems)}")
    return init


def _channels(table, resolution: int | None, problems: list[str]) -> dict[int, int] | None:
    """The {resolution: width} table, its keys JSON's strings of resolutions, its widths whole numbers."""
    fix = "like {\"4\": 512, \"8\": 256}"
    if not isinstance(table, dict) or not all(isinstance(k, str) and k.isdigit() and len(k) <= 5 for k in table):
        problems.append(f"channels must map resolutions to widths, {fix}")
        return None
    widths = {int(k): v for k, v in table.items()}
    if not all(integer_in(v, 1, MAX_WIDTH) for v in widths.values()):
        problems.append(f"channels' widths must be whole numbers in 1..{MAX_WIDTH}, {fix}")
        return None
    if resolution is not None:
        needed = [2 ** k for k in range(2, resolution.bit_length())]
        lacking = [r for r in needed if r not in widths]
        if lacking:
            problems.append(f"channels has no width for resolution {', '.join(map(str, lacking))}: resolution "
                            f"{resolution} needs one for each of {', '.join(map(str, needed))}")
            return None
    return widths


def network_bytes(init: dict) -> int:
    """What stylegan2_torch.Generator(**init) takes in float32, from its arguments alone: the mapping
    network, each resolution's convolutions and to-RGB layer with their style affines, and the mean
    latent's batch of MEAN_LATENT_SAMPLES (two activations at a time)."""
    latent, layers = init.get("latent_dim", 512), init.get("n_mlp", 8)
    channels = init.get("channels", DEFAULT_CHANNELS)
    sides = [2 ** k for k in range(2, int(init["resolution"]).bit_length())]
    params = layers * (latent * latent + latent) + channels[4] * 16
    for previous, side in zip([None, *sides], sides):
        width = channels[side]
        params += 9 * width * width + latent * width + latent * width + 3 * width       # conv, to-RGB
        if previous is not None:
            params += 9 * channels[previous] * width + latent * channels[previous]       # the up conv
    return 4 * (params + 2 * MEAN_LATENT_SAMPLES * latent)

"""Portable seeded noise: the same numbers in numpy, JavaScript and any language with 32-bit integers
and float64. Image k of a request depends only on (seed, k), never on n or the batch size.

The definition (docs/noise.md says it once more, for other languages):

    mix(x)      = lowbias32: x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16
                  (all uint32, multiplication modulo 2**32)
    key(s, k)   = mix(mix(mix(s ^ 0x9e3779b9) ^ k_hi) ^ k_lo)        k_hi, k_lo: the two 32-bit halves of k
    bits(key, c)= mix(key ^ mix(c ^ 0x632be5ab))
    unit(b)     = ((b >> 8) + 0.5) / 2**24                          in (0, 1), exact in float32 and float64
    z[k, j]     = sqrt(-2 ln unit(bits(key, 2c))) * cos(2 pi unit(bits(key, 2c + 1))),  c = j + noise_dim * a

computed in float64 and rounded to float32, with a = 0. Truncation (psi): a component with |z| > psi
is drawn again with a = 1, 2, ... until |z| <= psi (the BigGAN trick), at most MAX_REDRAWS times;
after that it is clipped to +-psi. Deterministic, and the same in every runtime.
"""

from __future__ import annotations

import os
import re

import numpy as np

from gan_pack.core.numbers import number
from gan_pack.errors import ModelError

SEED_MAX = 2**32 - 1          # seeds are 32-bit everywhere (training takes the same range)
MAX_REDRAWS = 256
MIN_TRUNCATION = 0.1         # below it, redraws would rarely succeed: P(|z| <= 0.1) = 8%
_GOLDEN, _C = np.uint32(0x9E3779B9), np.uint32(0x632BE5AB)


def mix(x: np.ndarray) -> np.ndarray:
    """lowbias32 (Chris Wellons' 32-bit integer hash), elementwise on uint32."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def keys(seed: int, start: int, count: int) -> np.ndarray:
    """key(seed, k) for k = start .. start + count - 1, uint32."""
    k = np.arange(start, start + count, dtype=np.uint64)
    high, low = (k >> np.uint64(32)).astype(np.uint32), (k & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    seeds = np.full(count, seed, dtype=np.uint32)          # arrays: uint32 products wrap without warnings
    return mix(mix(mix(seeds ^ _GOLDEN) ^ high) ^ low)


def _normals(key: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """Box-Muller on two hashed uniforms per (key, counter), float64."""
    first = mix(key ^ mix((np.uint32(2) * counters) ^ _C))
    second = mix(key ^ mix((np.uint32(2) * counters + np.uint32(1)) ^ _C))
    u1 = ((first >> np.uint32(8)).astype(np.float64) + 0.5) * 2.0**-24
    u2 = ((second >> np.uint32(8)).astype(np.float64) + 0.5) * 2.0**-24
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def check_truncation(truncation: float | None) -> None:
    """A threshold the noise is drawn with: None (none) or a number >= MIN_TRUNCATION."""
    if truncation is not None and not (number(truncation) and truncation >= MIN_TRUNCATION):
        raise ModelError(f"truncation must be a number >= {MIN_TRUNCATION}, not {truncation}")


def check_truncation_option(given: float | None, name: str = "truncation") -> None:
    """A threshold a user may give: None (the model's default), 0 (none) or a number >= MIN_TRUNCATION;
    `name` is what the user called it (--truncation on a command line)."""
    if given is not None and not (number(given) and (given == 0 or given >= MIN_TRUNCATION)):
        raise ModelError(f"{name} must be a number >= {MIN_TRUNCATION} (or 0 for none), not {given}")


def effective_truncation(given: float | None, default: float | None) -> float | None:
    """The threshold sampling uses: the one given (0: none), else the model's default (None: none)."""
    check_truncation_option(given)
    if given is None:
        return default
    return None if given == 0 else given


NOISE_BLOCK = 512          # rows made at once: their temporaries (400 KB) stay in cache, and threads scale


def portable_noise(seed: int, start: int, count: int, dim: int, truncation: float | None = None) -> np.ndarray:
    """(count, dim) float32 standard normals of images start .. start + count - 1 of `seed`, made
    NOISE_BLOCK rows at a time (the same numbers as one block, faster)."""
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be in 0..{SEED_MAX}, not {seed}")
    check_truncation(truncation)
    out = np.empty((count, dim), dtype=np.float32)
    for first in range(0, count, NOISE_BLOCK):
        rows = min(NOISE_BLOCK, count - first)
        out[first:first + rows] = _noise_block(seed, start + first, rows, dim, truncation)
    return out


def _noise_block(seed: int, start: int, count: int, dim: int, truncation: float | None) -> np.ndarray:
    key = keys(seed, start, count)[:, None]                          # (count, 1)
    columns = np.arange(dim, dtype=np.uint32)[None, :]                # (1, dim)
    z = _normals(key, columns)
    if truncation is not None:
        rows, cols = np.nonzero(np.abs(z) > truncation)
        for attempt in range(1, MAX_REDRAWS + 1):
            if not len(rows):
                break
            counters = cols.astype(np.uint32) + np.uint32(dim) * np.uint32(attempt)
            z[rows, cols] = _normals(key[rows, 0], counters)
            keep = np.abs(z[rows, cols]) > truncation
            rows, cols = rows[keep], cols[keep]
        z[rows, cols] = np.clip(z[rows, cols], -truncation, truncation)
    return z


def random_seed() -> int:
    """A seed for a request that gave none."""
    return int.from_bytes(os.urandom(4), "little")


MAX_SEEDS = 100_000
SEED_ITEM = re.compile(r"([0-9]{1,10})(?:-([0-9]{1,10}))?")


def parse_seeds(text: str) -> list[int]:
    """'0-99', '1,5,9', '3,10-12' -> the seeds, in order: ASCII digits and ranges, comma-separated,
    at most MAX_SEEDS in all."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = SEED_ITEM.fullmatch(part)
        if match is None:
            raise ModelError(f"--seeds takes seeds and ranges like 0-99 or 1,5,9, not {text[:60]!r}")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low or max(low, high) > SEED_MAX:
            raise ModelError(f"--seeds takes ranges low-high within 0..{SEED_MAX}, not {part!r}")
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise ModelError(f"--seeds names more than {MAX_SEEDS} seeds")
        seeds.extend(range(low, high + 1))
    return seeds

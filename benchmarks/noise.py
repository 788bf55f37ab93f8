"""Speed of the portable noise against numpy's own generator (PCG64), side by side (not a test).

Usage: .venv/bin/python benchmarks/noise.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from gan_pack.core.noise import portable_noise


def rate(draw, per_call: int, seconds: float) -> float:
    draw()                                                       # warm up
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        draw()
        done += per_call
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}; normals per second (millions), "
          f"noise_dim 100")
    print(f"{'rows per call':>14} {'portable':>10} {'trunc 1.0':>10} {'numpy PCG64':>12} {'portable/numpy':>15}")
    rng = np.random.default_rng(0)
    for rows in (64, 1024, 16384):
        values = rows * 100
        portable = rate(lambda: portable_noise(1, 0, rows, 100), values, args.seconds)
        truncated = rate(lambda: portable_noise(1, 0, rows, 100, truncation=1.0), values, args.seconds)
        pcg = rate(lambda: rng.standard_normal((rows, 100), dtype=np.float32), values, args.seconds)
        print(f"{rows:>14} {portable / 1e6:>10.1f} {truncated / 1e6:>10.1f} {pcg / 1e6:>12.1f} "
              f"{portable / pcg:>14.2f}x")


if __name__ == "__main__":
    main()

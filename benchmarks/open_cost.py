"""What opening a package folder costs over opening its .onnx alone: the folder's model file is hashed
and checked against the manifest before onnxruntime reads it (gan_pack/runtime/package.py). Not a test.

Runs `ganpack sample PACKAGE/ -n 64` (A) and `ganpack sample PACKAGE/NAME.onnx -n 64` (B), the same
model and work but for the check, each as a fresh process, in turn A B A B ..., after a warm-up of
each. Prints each one's median wall time and peak resident memory (from wait4), and the median of the
paired differences.

Usage: .venv-runtime/bin/python benchmarks/open_cost.py [--package exported/mnist-cgan] [--rounds 21]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-400:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=Path("exported/mnist-cgan"))
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    ganpack = shutil.which("ganpack", path=str(Path(sys.executable).parent)) or "ganpack"
    out = Path(tempfile.mkdtemp()) / "s.png"
    folder = [ganpack, "sample", f"{args.package}/", "-n", "64", "-o", str(out)]
    lone = [ganpack, "sample", str(args.package / f"{args.package.name}.onnx"), "-n", "64", "-o", str(out)]
    run(folder), run(lone)                                  # warm-up: the page cache holds both
    a, b = [], []
    for _ in range(args.rounds):
        a.append(run(folder))
        b.append(run(lone))
    wall_diff = statistics.median(x[0] - y[0] for x, y in zip(a, b)) * 1000
    peak_diff = statistics.median(x[1] - y[1] for x, y in zip(a, b))
    print(f"{args.rounds} rounds, A = the package folder (hashed, checked), B = its .onnx alone")
    for name, runs in (("A folder", a), ("B .onnx", b)):
        print(f"{name}: wall {statistics.median(r[0] for r in runs) * 1000:.1f} ms, "
              f"peak {statistics.median(r[1] for r in runs):.1f} MiB (medians)")
    print(f"A - B, median of the pairs: {wall_diff:+.1f} ms wall, {peak_diff:+.2f} MiB peak")


if __name__ == "__main__":
    main()

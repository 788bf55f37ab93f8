"""The process's memory allocator, set up for training on the CPU.

glibc's malloc gives a large block back to the kernel the moment it is freed (mmap/munmap for
blocks over its threshold, a trim for the top of the heap). A CPU training step allocates and frees
activations of tens of MB each (a 64 px D at batch 128: 128 x 64 x 32 x 32 floats is 32 MiB), so
every step asks the kernel for fresh pages and pays a page fault to zero each of them: on a 2-core
machine that is about half of a step (benchmarks/cpu_training.py). Keeping freed memory in the
process for reuse, as PyTorch's own CUDA allocator does on the GPU, removes that cost; the price is
that the process holds on to its peak memory until it exits, which a training process does anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1           # mallopt parameters (malloc.h)
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30            # freed memory kept for reuse before the heap's top is trimmed
MMAP_THRESHOLD = 1 << 30        # blocks below this come from the heap, not a fresh mapping


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; True if it took every setting. A no-op elsewhere
    (macOS, Windows, musl), where the allocator is another and already keeps it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, KEEP_BYTES), (M_TOP_PAD, KEEP_BYTES))
    return all([mallopt(param, value) == 1 for param, value in settings])

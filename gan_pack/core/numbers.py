"""What counts as a number in a value someone else gave us (a file, a flag, a JSON field): the one
check every reader uses. Standard library only."""

from __future__ import annotations

import math
import numbers


def number(value) -> bool:
    """A finite real number (an int, a float, numpy's too), never a bool: a figure read from a file or
    given by someone else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:                   # an int too large for a float
        return False


def integer_in(value, low: int, high: int) -> bool:
    """An integer (an int, numpy's too; never a bool or a float that looks whole) in low..high."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= int(value) <= high

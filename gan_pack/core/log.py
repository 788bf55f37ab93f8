"""Stage lines for long steps: library functions take `log` (a callable, or None for silence) and say
what they start, so a user whose output is a log file, CI or nohup sees where the time goes."""

from __future__ import annotations

from typing import Callable, Optional

Log = Optional[Callable[[str], None]]


def say(log: Log, message: str) -> None:
    if log is not None:
        log(message)

"""Progress is a callback; when nobody listens, a do-nothing callback stands in."""

from __future__ import annotations

from typing import Callable

ProgressFn = Callable[[float, float], None]
"""progress(done, total): units are the engine's own (tokens, steps, seconds of audio)."""


def null_progress(done: float, total: float) -> None:
    return None

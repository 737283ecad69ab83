"""What every engine shares: the shape of the API and seed handling.

An engine is a plain class: construct it with a model id or path, call `load()` once, then call
`generate(request, progress)` as often as needed. Settings arrive with each request; the engine
holds only loaded weights, so one instance can serve many requests (and many Modal inputs).
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from muse_cli.progress import ProgressFn


class Engine(Protocol):
    name: str
    model_id: str

    def load(self) -> None: ...

    def generate(self, request: Any, progress: ProgressFn = ...) -> Any: ...


def resolve_seed(seed: int | None) -> int:
    """The seed to use: the user's, or a fresh random one that gets recorded in the result."""
    return int(seed) if seed is not None else secrets.randbelow(2**32)


def derive_seed(seed: int, index: int) -> int:
    """Seed of the index-th sample of a request, so sample k reproduces on its own."""
    return (seed + 7919 * index) % 2**32

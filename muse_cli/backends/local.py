"""The local backend: the same engines, in this process, on CPU or a local GPU."""

from __future__ import annotations

import threading
from typing import Any

from muse_cli.backends.registry import family as get_family
from muse_cli.progress import ProgressFn, null_progress


class LocalBackend:
    name = "local"

    def __init__(self) -> None:
        self._engines: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def _key(self, family: str, model: str | None, options: dict[str, Any] | None) -> tuple:
        return (family, model or get_family(family).default_model, tuple(sorted((options or {}).items())))

    def engine(self, family: str, model: str | None = None, options: dict[str, Any] | None = None) -> Any:
        """The loaded engine for (family, model, options): built and loaded once, then reused."""
        key = self._key(family, model, options)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._engines:
                engine = get_family(family).engine_class()(key[1], **(options or {}))
                engine.load()
                self._engines[key] = engine
            return self._engines[key]

    @staticmethod
    def _with_precision(family: str, request: Any, options: dict[str, Any] | None) -> dict[str, Any] | None:
        """An engine that takes a precision is loaded at the request's: it is quantized or cast once, at
        load, so the precision is part of the engine's cache key (two precisions, two engines)."""
        precision = getattr(request, "precision", None)
        if precision is None or not getattr(get_family(family).engine_class(), "takes_precision", False):
            return options
        return {**(options or {}), "precision": precision}

    def run(
        self,
        family: str,
        request: Any,
        *,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        progress: ProgressFn = null_progress,
    ) -> Any:
        """Run one request. `options` are engine constructor settings (e.g. trust for a checkpoint)."""
        options = self._with_precision(family, request, options)
        engine = self.engine(family, model, options)
        # One request at a time per engine: models are not re-entrant, settings travel per call.
        with self._locks[self._key(family, model, options)]:
            return engine.generate(request, progress=progress)


_shared: LocalBackend | None = None


def shared() -> LocalBackend:
    """One in-process backend for work that never leaves this machine whatever --backend says
    (the etude composer, a checkpoint given as a local file), so its engines load once."""
    global _shared
    if _shared is None:
        _shared = LocalBackend()
    return _shared

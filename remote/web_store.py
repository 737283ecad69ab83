"""Where the HTTP API keeps results too large to answer inline: random keys in one folder."""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("muse.web")

FILE_TTL_S = 24 * 3600
KEY_RE = re.compile(r"[0-9a-f]{32}\.(wav|flac|mp3|png|mid)")
MEDIA_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "png": "image/png",
    "mid": "audio/midi",
}


class FileStore:
    """Results too large to inline, under random keys in one folder; nothing else is reachable.

    A key is 32 hex digits and a known suffix, matched whole before any path is built, so no
    request names a file outside `root`. Files older than `ttl_s` are swept as new ones arrive.
    `on_put` / `on_miss` let a shared volume commit after a write and reload before a miss.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        ttl_s: float = FILE_TTL_S,
        on_put: Callable[[], None] | None = None,
        on_miss: Callable[[], None] | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._on_put = on_put
        self._on_miss = on_miss
        self._swept = 0.0
        self._lock = threading.Lock()

    def put(self, data: bytes, suffix: str) -> str:
        from muse_cli.output import Target, write_group

        if suffix not in MEDIA_TYPES:
            raise ValueError(f"no stored files of type {suffix!r}")
        self.sweep()
        stem = secrets.token_hex(16)
        write_group(Target(self.root, stem), {f".{suffix}": data})
        if self._on_put is not None:
            self._on_put()
        return f"{stem}.{suffix}"

    def path(self, key: str) -> Path | None:
        if not KEY_RE.fullmatch(key):
            return None
        path = self.root / key
        if not path.is_file() and self._on_miss is not None:
            try:
                self._on_miss()
            except Exception:  # a failed reload is a miss, not a server error
                log.warning("storage reload failed", exc_info=True)
        if not path.is_file() or path.resolve().parent != self.root:
            return None
        return path

    def sweep(self, now: float | None = None) -> int:
        """Delete expired files (at most once a minute); returns how many went."""
        now = time.time() if now is None else now
        with self._lock:
            if now - self._swept < 60:
                return 0
            self._swept = now
        removed = 0
        for path in self.root.iterdir():
            try:
                if KEY_RE.fullmatch(path.name) and now - path.stat().st_mtime > self.ttl_s:
                    path.unlink()
                    removed += 1
            except OSError:  # another worker removed it first
                continue
        return removed

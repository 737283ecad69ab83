"""A quick "can we reach it?" check, so offline runs fail in seconds instead of after retries."""

from __future__ import annotations

import socket
from urllib.parse import urlparse


def can_connect(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Open (and close) a TCP connection to the URL's host; returns (ok, "host:port (why)")."""
    parsed = urlparse(url)
    host = parsed.hostname or url
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port}"
    except OSError as exc:
        return False, f"{host}:{port} ({exc.strerror or type(exc).__name__})"

"""How `muse serve` runs the HTTP API with uvicorn: bounded connections, a bound socket, clean logs.

uvicorn 0.54's h11 protocol arms no timer between accepting a connection and the end of the first
request's headers (uvicorn/protocols/http/h11_impl.py: `connection_made` starts none, and
`data_received` cancels the keep-alive timer on every byte), so a client that never finishes its
headers holds a socket forever. `BoundedH11Protocol` adds that deadline. The body has its own
deadline in the Gate (muse_cli/http/gate.py), so it also holds on Modal, where uvicorn is not ours.
uvicorn is imported only when `muse serve` runs.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
from typing import Any

HEADER_TIMEOUT_S = 10.0
"""A connection must deliver a request's whole header block within this long, however it drips."""
KEEP_ALIVE_S = 5
"""An idle keep-alive connection is closed after this long."""
MAX_CONNECTIONS = 1000
"""Above this many open connections, new requests are answered 503 at once (uvicorn limit_concurrency)."""
MAX_HEADER_BYTES = 16 * 1024
"""Largest incomplete request head uvicorn buffers (h11_max_incomplete_event_size); more is a 400."""

SECRET_QUERY = re.compile(r"(?i)([?&](?:[a-z0-9_.-]*(?:token|secret|password|signature|credential|api[_-]?key|auth)"
                          r"[a-z0-9_.-]*)=)[^&#\s]*")


def redact_query(text: str) -> str:
    """`/x?token=abc&n=1` -> `/x?token=[redacted]&n=1`: secrets sent in a URL never reach a log line."""
    return SECRET_QUERY.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """For uvicorn's access log, whose record args carry the full path with its query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def bound_protocol(header_timeout: float = HEADER_TIMEOUT_S) -> type:
    """uvicorn's H11Protocol with a deadline for each request's headers (see the module docstring)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        _header_timer: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_timed_out)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_timed_out(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self.transport.close()  # still waiting for (the rest of) a request's headers

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self._header_timer is not None and self.conn.their_state is not h11.IDLE:
                self._disarm()  # headers are in: the body is the Gate's to time

        def on_response_complete(self) -> None:
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same deadline
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return BoundedH11Protocol


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or OSError with a cause a person can act on.

    Bound before anything is announced, so "muse API on ..." is printed only when it is true.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host}:{port}: {host!r} is not an address of this machine "
                      f"({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "the port is in use (choose another --port)",
               errno.EADDRNOTAVAIL: "that address is not on this machine",
               errno.EACCES: "permission denied (ports below 1024 need privileges)"}.get(exc.errno, exc.strerror)
        raise OSError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def raise_file_limit(wanted: int) -> int:
    """Lift the soft open-files limit towards `wanted` (never above the hard limit); returns it."""
    try:
        import resource
    except ImportError:  # not on this platform
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    return soft

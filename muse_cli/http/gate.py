"""What every HTTP request meets first (the bearer token, the body size) and how errors answer.

`Gate` is ASGI middleware, so an unauthenticated or oversized request is refused before its
body is read; `ApiError` and `from_muse_error` give every failure one JSON shape and status.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from typing import Any
from urllib.parse import parse_qsl

PUBLIC_PATHS = frozenset({"/health"})
UPLOAD_PATHS = frozenset({"/v1/analyze"})
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "auth", "bearer"})
BODY_IDLE_S = 10.0
"""A request body that sends nothing for this long is answered 408 and its connection closed."""
BODY_TOTAL_S = 300.0
"""However it trickles, a whole body must arrive within this long (50 MB at 170 kB/s)."""


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def check_token(header: str | None, token_digest: bytes) -> str | None:
    """None when `Authorization: Bearer <token>` carries the token, else why not.

    Both sides are hashed first, so the comparison takes the same time whatever the length.
    """
    if not header:
        return "missing bearer token: send Authorization: Bearer <token>"
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return "malformed Authorization header: use Authorization: Bearer <token>"
    given = given.strip()
    try:  # ASGI servers decode header bytes as latin-1; clients send a non-ASCII token as UTF-8
        given = given.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    if not hmac.compare_digest(digest(given), token_digest):
        return "invalid token"
    return None


def error_body(kind: str, message: str, hint: str | None = None, fields: list | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if hint:
        error["hint"] = hint
    if fields:
        error["fields"] = fields
    return {"success": False, "error": error}


def http_words(text: str) -> str:
    """A contract message for HTTP clients: `--time-signature` (the CLI's flag) -> `time_signature`."""
    return re.sub(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)", lambda m: m.group(1).replace("-", "_"), text)


class Gate:
    """ASGI middleware run before any route: no token in the URL, the bearer token, then the body.

    Checked here rather than in the routes so an unauthenticated or oversized request is refused
    before its body is read. The body is read whole (at most the limit, each chunk within
    `body_idle_s`, all of it within `body_total_s`) and replayed to the app.
    """

    def __init__(self, app: Any, *, token_digest: bytes, max_json: int, max_upload: int,
                 body_idle_s: float = BODY_IDLE_S, body_total_s: float = BODY_TOTAL_S) -> None:
        self.app = app
        self.token_digest = token_digest
        self.max_json = max_json
        self.max_upload = max_upload
        self.body_idle_s = body_idle_s
        self.body_total_s = body_total_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"").decode("latin-1")
        if any(name.lower() in QUERY_TOKEN_NAMES for name, _ in parse_qsl(query, keep_blank_values=True)):
            # Refused, not read: URLs land in access logs, proxies and browser history.
            await _send_json(send, 400, error_body(
                "token_in_url", "a token in the URL is refused: send Authorization: Bearer <token>"))
            return
        if path not in PUBLIC_PATHS:
            problem = check_token(headers.get("authorization"), self.token_digest)
            if problem is not None:
                await _send_json(send, 401, error_body("unauthorized", problem), {"www-authenticate": "Bearer"})
                return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.max_upload if path in UPLOAD_PATHS else self.max_json
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(send, limit)
            return
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_total_s
        while True:
            wait = min(self.body_idle_s, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
            except asyncio.TimeoutError:
                await _send_json(send, 408, error_body(
                    "timeout", f"the request body stalled: send it whole within {self.body_total_s:g} s, "
                    f"with no pause over {self.body_idle_s:g} s"), {"connection": "close"})
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Any, limit: int) -> None:
    message = f"request body is larger than {limit // (1024 * 1024)} MB"
    await _send_json(send, 413, error_body("too_large", message), {"connection": "close"})


async def _send_json(send: Any, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    import json

    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class ApiError(Exception):
    """An error answered as JSON with its status; raised by routes, rendered by one handler."""

    def __init__(self, status: int, kind: str, message: str, *, hint: str | None = None,
                 fields: list | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.hint, self.fields, self.headers = hint, fields, headers


def field_errors(errors: list[dict]) -> list[dict[str, str]]:
    """pydantic errors -> [{"field": "duration", "message": "..."}], without the input echoed."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        message = http_words(str(err.get("msg", "invalid value")).removeprefix("Value error, "))
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def invalid(fields: list[dict[str, str]]) -> ApiError:
    first = fields[0] if fields else {"field": "body", "message": "invalid input"}
    return ApiError(422, "invalid_input", f"{first['field']}: {first['message']}", fields=fields)


def from_muse_error(exc: Exception) -> ApiError:
    """InputError 422; cannot run here 503; retryable 503; any other failure 500, one line."""
    from muse_cli.errors import InputError, TransientFailure, Unavailable

    message = http_words((getattr(exc, "message", None) or str(exc) or type(exc).__name__).splitlines()[0])
    hint = getattr(exc, "hint", None)
    if isinstance(exc, InputError):
        return ApiError(422, "invalid_input", message, hint=hint)
    if isinstance(exc, TransientFailure):
        return ApiError(503, "temporarily_unavailable", message, hint=hint, headers={"retry-after": "5"})
    if isinstance(exc, Unavailable):  # not deployed, not installed, not downloaded: 503, not "it broke"
        return ApiError(503, "unavailable", message, hint=hint)
    return ApiError(500, "failed", message)

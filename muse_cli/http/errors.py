"""Every failure a route can raise, answered in the one JSON shape of gate.error_body.

One table, exception type -> ApiError; Starlette picks the handler by the exception's class
hierarchy, so `Exception` only catches what nothing nearer does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from muse_cli.errors import MuseError
from muse_cli.http.gate import ApiError, error_body, field_errors, from_muse_error, invalid
from muse_cli.http.store import StorageError

log = logging.getLogger("muse.web")


def render(err: ApiError) -> JSONResponse:
    return JSONResponse(error_body(err.kind, err.message, err.hint, err.fields), err.status, err.headers)


def _storage(exc: StorageError) -> ApiError:
    log.warning("%s", exc)
    return ApiError(503, "storage_unavailable", str(exc), headers={"retry-after": "30"})


def _http(exc: StarletteHTTPException) -> ApiError:
    kinds = {404: "not_found", 405: "method_not_allowed"}
    return ApiError(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail),
                    headers=dict(exc.headers or {}))


def _unexpected(exc: Exception) -> ApiError:
    log.error("unexpected %s", type(exc).__name__, exc_info=exc)
    return ApiError(500, "internal", "internal error: the server log has the details")


# Any: each row takes its own exception type.
AS_API_ERROR: dict[type[Exception], Callable[[Any], ApiError]] = {
    ApiError: lambda exc: exc,
    RequestValidationError: lambda exc: invalid(field_errors(list(exc.errors()))),
    MuseError: from_muse_error,
    StorageError: _storage,
    StarletteHTTPException: _http,
    Exception: _unexpected,
}


def install(api: FastAPI) -> None:
    """Register a handler per row of AS_API_ERROR."""
    for kind, convert in AS_API_ERROR.items():
        api.add_exception_handler(kind, _handler(convert))


def _handler(convert: Callable[[Any], ApiError]) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return render(convert(exc))

    return handle

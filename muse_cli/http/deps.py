"""What every router shares: the token check, the app's settings, body models, jobs and delivery."""

from __future__ import annotations

from collections.abc import Mapping
from copy import copy
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from muse_cli.http.gate import ApiError, check_token, field_errors, from_muse_error, invalid
from muse_cli.http.settings import Backend, Settings
from muse_cli.kinds import KINDS, Outcome
from muse_cli.kinds.base import Deliver, b64


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(app_settings)]

bearer = HTTPBearer(auto_error=False, description="the server's API token")


def authorized(
    settings: AppSettings, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    # The Gate middleware has already refused bad tokens; this declares the scheme in
    # OpenAPI and guards any route should the app be mounted without the Gate.
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    problem = check_token(header, settings.token_digest)
    if problem is not None:
        raise ApiError(401, "unauthorized", problem, headers={"www-authenticate": "Bearer"})


AUTH = [Depends(authorized)]


class Failure(BaseModel):
    success: bool = False
    error: dict[str, Any]


FAILURES: dict[int | str, dict[str, Any]] = {code: {"model": Failure} for code in (401, 413, 422, 500, 503)}
"""The error replies every authenticated route declares in OpenAPI."""


# --------------------------------------------------------------------------------- body models


def contract_field(contract: type[BaseModel], name: str) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of a contract field, copied so a body model can reuse it."""
    info = copy(contract.model_fields[name])
    return info.annotation, info


def subset(name: str, contract: type[BaseModel], names: tuple[str, ...], *, extra: str = "forbid",
           overrides: Mapping[str, tuple[Any, Any]] | None = None, doc: str = "") -> type[BaseModel]:
    """An HTTP body model with some of a contract's fields, ranges and defaults included.

    The contract stays the one source of names and ranges; the body only chooses which of its
    fields a route accepts (and the JSON schema that OpenAPI shows for them).
    """
    defs: dict[str, Any] = {field: contract_field(contract, field) for field in names}
    defs.update(overrides or {})
    config = ConfigDict(extra=extra, allow_inf_nan=False)  # type: ignore[typeddict-item]
    return create_model(name, __config__=config, __doc__=doc or None, **defs)


# ----------------------------------------------------------------------------------------- jobs


def validate(contract: type[BaseModel], fields: dict[str, Any]) -> BaseModel:
    """Build a contract; its validators' complaints become field-level 422s."""
    try:
        return contract.model_validate(fields)
    except ValidationError as exc:
        raise invalid(field_errors(exc.errors())) from None


def run_job(kind_name: str, fields: dict[str, Any], backend: Backend) -> tuple[BaseModel, Outcome]:
    """Validate, check and run one job of `kinds.KINDS`; returns (request, Outcome)."""
    from muse_cli.errors import MuseError
    from muse_cli.progress import null_progress

    kind = KINDS[kind_name]
    request = validate(kind.request_type, fields)
    try:
        kind.check(request)
        return request, kind.run(request, backend, null_progress)
    except MuseError as exc:
        raise from_muse_error(exc) from None


# ------------------------------------------------------------------------------------- delivery


Delivery = Annotated[
    Literal["auto", "inline", "key"],
    Query(description="auto: inline up to the server's limit, else a key for GET /v1/files/{key}"),
]

Delivered = tuple[str | None, str | None]
"""(base64, None) when inline, (None, key) when stored."""


def deliver(settings: Settings, data: bytes, suffix: str, delivery: str) -> Delivered:
    """A result inline as base64, or stored under a key for GET /v1/files/{key}."""
    if delivery == "inline" or (delivery == "auto" and len(data) <= settings.inline_max_bytes):
        return b64(data), None
    return None, settings.store.put(data, suffix)


def deliverer(settings: Settings, delivery: str) -> Deliver:
    """`deliver` for one request, as the kinds' `reply` takes it."""
    return lambda data, suffix: deliver(settings, data, suffix, delivery)

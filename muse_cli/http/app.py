"""`create_app`: one FastAPI app with every capability's router, its settings on `app.state`."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType

from fastapi import FastAPI

from muse_cli import __version__
from muse_cli.contracts import AudioRequest
from muse_cli.http import analyze, audio, errors, files, midi, seed, service, songs
from muse_cli.http.gate import BODY_IDLE_S, Gate, digest
from muse_cli.http.settings import (
    INLINE_MAX_BYTES,
    MAX_JSON_BYTES,
    MAX_UPLOAD_BYTES,
    MIN_TOKEN_CHARS,
    Backend,
    Settings,
)
from muse_cli.http.store import FileStore, S3Store

ROUTERS = (service.router, midi.router, audio.router, songs.router, analyze.router, seed.router, files.router)
"""In this order in OpenAPI: the service, the v1 capabilities (each with its older route), seed 004, files."""


def create_app(
    backend: Backend,
    *,
    token: str,
    storage_dir: str | os.PathLike,
    model_aliases: Mapping[str, str] | None = None,
    default_audio_model: str | None = None,
    models: Callable[[], dict[str, list[str]]] | None = None,
    max_json_bytes: int = MAX_JSON_BYTES,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    inline_max_bytes: int = INLINE_MAX_BYTES,
    cors_origins: tuple[str, ...] = (),
    on_store: Callable[[], None] | None = None,
    on_miss: Callable[[], None] | None = None,
    body_idle_s: float = BODY_IDLE_S,
    store: FileStore | S3Store | None = None,
) -> FastAPI:
    """The FastAPI app serving every muse capability through `backend`.

    token: the bearer token every route but /health requires (at least 16 characters).
    storage_dir: where results too large to inline are kept for `GET /v1/files/{key}`.
    store: instead of that folder, an `S3Store` (muse_cli/http/store.py): results go to its bucket.
    model_aliases: extra MusicGen model names this server accepts, mapped to what the backend
        loads (a local folder, a hub id): HTTP clients never name server paths themselves.
    default_audio_model: the model for requests that name none (and for /generate_endpoint).
    models: what /health lists as available; by default probed from the local backend.
    body_idle_s: a request body that sends nothing for this long is answered 408 (the Gate).
    """
    if not token or len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the API token must have at least {MIN_TOKEN_CHARS} characters")
    if store is None:
        store = FileStore(storage_dir, on_put=on_store, on_miss=on_miss)
    aliases = MappingProxyType(dict(model_aliases or {}))
    settings = Settings(
        backend=backend, token_digest=digest(token), store=store, aliases=aliases,
        default_audio_model=default_audio_model or AudioRequest.model_fields["model"].default,
        models=models or functools.partial(service.local_models, aliases),
        max_json_bytes=max_json_bytes, max_upload_bytes=max_upload_bytes, inline_max_bytes=inline_max_bytes,
        body_idle_s=body_idle_s,
    )

    api = FastAPI(
        title="muse",
        version=__version__,
        description="Music generation and analysis: MIDI, audio, songs and performance reports. "
        "Every route but /health needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # service.py serves it, behind the token like everything but /health
    )
    api.state.settings = settings
    api.state.store = store
    errors.install(api)
    for router in ROUTERS:
        api.include_router(router)

    api.add_middleware(Gate, token_digest=settings.token_digest, max_json=settings.max_json_bytes,
                       max_upload=settings.max_upload_bytes, body_idle_s=settings.body_idle_s)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        # Outermost, so a browser's preflight (which carries no token) is answered before the Gate.
        api.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type", "accept"],
                           expose_headers=["x-muse-seed", "x-muse-sample-rate", "x-muse-duration", "x-muse-model"])
    return api

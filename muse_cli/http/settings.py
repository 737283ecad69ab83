"""What one app serves with, fixed when it is built: limits, the token's digest, backend and store.

Kept free of FastAPI so the Modal deployment (remote/web.py) can read the constants where only
modal is installed; routes reach the `Settings` through `request.app.state` (deps.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from muse_cli.http.gate import BODY_IDLE_S

if TYPE_CHECKING:
    from muse_cli.http.store import FileStore, S3Store

TOKEN_ENV = "MUSE_API_TOKEN"
MIN_TOKEN_CHARS = 16

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Largest multipart body (`/v1/analyze`): about 5 minutes of 44.1 kHz stereo WAV."""
MAX_JSON_BYTES = 1024 * 1024
"""Largest JSON body: the longest valid request (8000 characters of lyrics) is far smaller."""
INLINE_MAX_BYTES = 16 * 1024 * 1024
"""Results larger than this are stored and returned as a key for `GET /v1/files/{key}`."""


class Backend(Protocol):
    """Where jobs run: muse_cli.backends' LocalBackend or ModalBackend (or a test's stand-in)."""

    name: str

    def run(self, family: str, request: Any, **options: Any) -> Any: ...


@dataclass(frozen=True)
class Settings:
    """One app's configuration, on `app.state.settings`: what the routes used to close over."""

    backend: Backend
    token_digest: bytes
    store: FileStore | S3Store
    aliases: Mapping[str, str]
    """Extra MusicGen names this server accepts -> what the backend loads (never shown to clients)."""
    default_audio_model: str
    models: Callable[[], dict[str, list[str]]]
    """What /health lists as available."""
    max_json_bytes: int = MAX_JSON_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    inline_max_bytes: int = INLINE_MAX_BYTES
    body_idle_s: float = BODY_IDLE_S

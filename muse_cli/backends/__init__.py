"""Where a job runs: `modal` (deployed classes on Modal GPUs) or `local` (engines in-process).

Both expose `run(family, request, *, model=None, progress=...) -> result contract`, so commands,
batch and the song pipeline never care which one they hold.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Protocol

from muse_cli.errors import InputError
from muse_cli.progress import ProgressFn

BackendName = Literal["auto", "modal", "local"]


class Backend(Protocol):
    """What the job kinds need of a backend: its name and a per-family call."""

    name: str

    def run(self, family: str, request: Any, *, model: str | None = None, options: dict[str, Any] | None = None,
            progress: ProgressFn = ...) -> Any: ...


def modal_credentials_present() -> bool:
    """Modal credentials configured? Read the env and ~/.modal.toml without importing modal."""
    if os.environ.get("MODAL_IS_REMOTE") == "1":  # inside a Modal container its own identity authenticates
        return True
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    config = Path(os.environ.get("MODAL_CONFIG_PATH") or Path.home() / ".modal.toml")
    try:
        text = config.read_text()
    except OSError:
        return False
    return "token_id" in text and "token_secret" in text


def choose(name: str | None) -> str:
    """--backend / $MUSE_BACKEND / auto -> 'modal' or 'local'."""
    value = (name or os.environ.get("MUSE_BACKEND") or "auto").strip().lower()
    if value not in ("auto", "modal", "local"):
        raise InputError(f"unknown backend {value!r}: use auto, modal or local")
    if value == "auto":
        return "modal" if modal_credentials_present() else "local"
    return value


def get_backend(name: str | None) -> Backend:
    """A backend instance for --backend NAME (see `choose`)."""
    if choose(name) == "modal":
        from muse_cli.backends.modal import ModalBackend

        return ModalBackend()
    from muse_cli.backends.local import LocalBackend

    return LocalBackend()

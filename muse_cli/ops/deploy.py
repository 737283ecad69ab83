"""Deploying the Modal app, and describing it without deploying (`muse deploy --dry-run`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from muse_cli.errors import InputError, MuseError, RuntimeFailure


def _import_remote() -> Any:
    """Import remote.app (it lives next to muse_cli in a checkout and in the installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path and (root / "remote" / "app.py").exists():
        sys.path.insert(0, str(root))
    try:
        import remote.app as remote_app
    except ModuleNotFoundError as exc:
        raise InputError(f"the Modal app definition is missing ({exc.name}): reinstall muse") from None
    return remote_app


def plan() -> list[dict[str, Any]]:
    """Every class and function of the app with its settings, as plain dicts (no network)."""
    _import_remote()
    from remote.images import IMAGES
    from remote.plan import SERVICES

    entries = []
    for svc in SERVICES.values():
        entry = svc.as_dict()
        spec = IMAGES[svc.image]
        entry["packages"] = list(spec.every_pin)
        entry["no_deps"] = list(spec.no_deps)
        entry["git"] = [p for p in spec.every_pin if "git+" in p] + [c for c in spec.commands if "git+" in c]
        entry["apt"] = list(spec.apt)
        entry["python"] = spec.python
        entries.append(entry)
    return entries


def ensure_secrets() -> dict[str, str]:
    """Create the Secrets the app mounts that do not exist yet, each with a new random token.

    A missing Secret would fail the whole deploy. Returns {secret name: "KEY=token"} for the ones
    created, so the caller can show the token once (Modal never shows a Secret's value again).
    """
    import secrets as token_source

    import modal
    import modal.exception

    from muse_cli.http.settings import TOKEN_ENV
    from remote.plan import SERVICES
    from remote.web import SECRET_NAME

    generated = {SECRET_NAME: TOKEN_ENV}
    created: dict[str, str] = {}
    for name in sorted({s for svc in SERVICES.values() for s in svc.secrets}):
        try:
            modal.Secret.from_name(name).hydrate()
            continue
        except modal.exception.NotFoundError:
            pass
        if name not in generated:
            raise RuntimeFailure(f"the Modal Secret {name!r} does not exist", hint=f"modal secret create {name} KEY=value")
        token = token_source.token_urlsafe(32)
        modal.Secret.objects.create(name, {generated[name]: token}, allow_existing=True)
        created[name] = f"{generated[name]}={token}"
    return created


def deploy_app(show_logs: bool = False, on_secret: Any = None) -> str | None:
    """Deploy with Modal's public API; returns the deployed app's dashboard URL.

    `on_secret(name, "KEY=token")` hears of each Secret created, before the deploy starts, so a
    failing deploy cannot lose a token Modal will never show again.
    """
    from muse_cli.backends.modal import require_modal, translate

    require_modal(setup_hint="run `modal setup` (or set MODAL_TOKEN_ID/MODAL_TOKEN_SECRET)")
    remote_app = _import_remote()
    import contextlib

    import modal

    output = modal.enable_output() if show_logs else contextlib.nullcontext()

    try:
        for name, assignment in ensure_secrets().items():
            if on_secret is not None:
                on_secret(name, assignment)
        with output:
            remote_app.app.deploy(name=remote_app.APP_NAME)
    except MuseError:
        raise
    except Exception as exc:
        raise translate(exc) from exc
    # modal 1.6's App has no `app_page_url`; after deploy() it holds the app id, and
    # `App.get_dashboard_url()` (modal/app.py) turns that into the dashboard link.
    return remote_app.app.get_dashboard_url() if remote_app.app.app_id else None

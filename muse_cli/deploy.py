"""Deploying the Modal app, and describing it without deploying (`muse deploy --dry-run`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from muse_cli.errors import InputError, RuntimeFailure


def _import_remote() -> Any:
    """Import remote.app (it lives next to muse_cli in a checkout and in the installed wheel)."""
    root = Path(__file__).resolve().parent.parent
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
        entry["packages"] = list(spec.all_packages)
        entry["git"] = [c for c in spec.commands if "git+" in c]
        entries.append(entry)
    return entries


def deploy_app(show_logs: bool = False) -> str | None:
    """Deploy with Modal's public API; returns the app's dashboard URL when Modal gives one."""
    from muse_cli.backends import modal_credentials_present
    from muse_cli.backends.modal import HINT_OFFLINE, HINT_SETUP, reachable, translate

    if not modal_credentials_present():
        raise RuntimeFailure("no Modal credentials found", hint=HINT_SETUP.replace(", or use --backend local", ""))
    ok, where = reachable()
    if not ok:
        raise RuntimeFailure(f"cannot reach Modal at {where}", hint=HINT_OFFLINE)
    remote_app = _import_remote()
    import contextlib

    import modal

    output = modal.enable_output() if show_logs else contextlib.nullcontext()
    try:
        with output:
            remote_app.app.deploy(name=remote_app.APP_NAME)
    except Exception as exc:
        raise translate(exc) from exc
    return getattr(remote_app.app, "app_page_url", None)

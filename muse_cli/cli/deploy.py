"""`muse deploy`: deploy (or describe) the muse Modal app with every model family."""

from __future__ import annotations

from typing import Annotated

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o


@app.command("deploy")
def deploy(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be deployed; needs no network or credentials.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Resolve every image's pinned packages against PyPI (needs the index, not Modal); exit 1 if any would not build.")] = False,
    image: Annotated[list[str] | None, typer.Option("--image", help="With --check: only this image (repeatable).", show_default=False)] = None,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Deploy the "muse" app to Modal: every class and function in remote/, images pinned."""
    from muse_cli import ui as ui_mod
    from muse_cli.ops.deploy import deploy_app, plan

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    from muse_cli.errors import InputError

    if image and not check:
        raise InputError("--image chooses what --check resolves: add --check (a deploy always deploys every image)")
    if dry_run and check:
        raise InputError("--dry-run needs no network but --check asks the package index: give one of them")
    if check:
        from muse_cli.ops.deploy_check import run

        run(image or None)
        return
    entries = plan()
    if dry_run:
        if json_out:
            ui.print_json({"app": "muse", "entries": entries})
        else:
            _show(ui, entries, title="muse deploy --dry-run: what would be deployed")
        return
    created: dict[str, str] = {}

    def keep(name: str, assignment: str) -> None:
        # A token is shown once and never again: -q must not drop it, so it is an `always` warning
        # on stderr, printed at once in case the deploy then fails, and part of the --json result.
        created[name] = assignment
        ui.warn(f"created the Modal Secret {name} with {assignment}: keep it, the HTTP API asks for it and Modal will not show it again", always=True)

    with ui.progress("deploying the muse app to Modal (building images the first time takes minutes)"):
        url = deploy_app(show_logs=ui.interactive, on_secret=keep)
    _show(ui, entries, title=f"deployed: {url}" if url else "deployed")
    ui.result([url] if url else [], {"app": "muse", "url": url, "secrets_created": created, "entries": entries})


def _show(ui, entries: list[dict], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("name", "kind", "gpu", "timeout", "scaledown", "snapshot", "volumes", "secrets", "image"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e["name"], e["kind"], e["gpu"] or "-", f"{e['timeout']}s", f"{e['scaledown_window']}s" if e["scaledown_window"] else "-",
            "yes" if e["memory_snapshot"] else "no", ", ".join(e["volumes"]) or "-", ", ".join(e["secrets"]) or "-", e["image"],
        )
    ui.rich(table)
    images = Table(title="images (debian-slim, Python 3.11; every pin exact)", title_justify="left")
    for column in ("image", "pins", "key versions", "from git"):
        images.add_column(column)
    seen: dict[str, dict] = {}
    for e in entries:
        seen.setdefault(e["image"], e)
    for name, e in seen.items():
        key = [p for p in e["packages"] if p.split("==")[0].split("[")[0].lower() in _KEY]
        images.add_row(name, str(len(e["packages"])), ", ".join(key) or "-", "\n".join(e["git"]) or "-")
    ui.rich(images)


_KEY = ("torch", "transformers", "huggingface_hub", "diffusers", "vllm", "jax", "flax", "fastapi", "numpy")

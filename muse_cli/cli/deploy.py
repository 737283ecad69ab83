"""`muse deploy`: deploy (or describe) the muse Modal app with every model family."""

from __future__ import annotations

from typing import Annotated

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o


@app.command("deploy")
def deploy(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be deployed; needs no network or credentials.")] = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Deploy the "muse" app to Modal: every class and function in remote/, images pinned."""
    from muse_cli import ui as ui_mod
    from muse_cli.deploy import deploy_app, plan

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    entries = plan()
    if dry_run:
        if json_out:
            ui.print_json({"app": "muse", "entries": entries})
        else:
            _show(ui, entries, title="muse deploy --dry-run: what would be deployed")
        return
    with ui.progress("deploying the muse app to Modal (building images the first time takes minutes)"):
        url = deploy_app(show_logs=ui.interactive)
    _show(ui, entries, title=f"deployed: {url}" if url else "deployed")
    ui.result([url] if url else [], {"app": "muse", "url": url, "entries": entries})


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

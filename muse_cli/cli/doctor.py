"""`muse doctor`: what works on this machine and in the Modal workspace, quickly."""

from __future__ import annotations

from typing import Annotated

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o


@app.command("doctor")
def doctor(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Modal before calling it unreachable.")] = 5.0,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Report muse's version, Python, Modal credentials and app, local runtimes, CUDA and caches."""
    from muse_cli import ui as ui_mod
    from muse_cli.diagnostics import collect

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    report = collect(timeout=timeout)
    if json_out:
        ui.print_json(report)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in _rows(report):
        table.add_row(label, value)
    if quiet:
        return
    ui.console.print(table)


def _rows(report: dict) -> list[tuple[str, str]]:
    def yes(flag: bool, good: str = "yes", bad: str = "no") -> str:
        return f"[green]{good}[/green]" if flag else f"[yellow]{bad}[/yellow]"

    modal = report["modal"]
    rows = [
        ("muse", report["muse_version"]),
        ("python", f"{report['python']} ({report['platform']})"),
        ("backend (auto)", report["backend_auto"]),
        ("modal credentials", yes(modal["credentials"], "found", "not found (run modal setup)")),
        ("modal api", yes(modal["reachable"], f"reachable {modal['server']}", f"unreachable {modal['server']}")),
        ("muse app", modal["app"]),
    ]
    for name, version in report["runtimes"].items():
        rows.append((name, f"[green]{version}[/green]" if version else "[dim]not installed[/dim]"))
    rows.append(("cuda", report["cuda"] or "[dim]none[/dim]"))
    for name, path in report["caches"].items():
        rows.append((name, path))
    return rows

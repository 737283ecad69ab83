"""`muse doctor`: what works on this machine and in the Modal workspace, and what makes the rest work."""

from __future__ import annotations

from typing import Annotated

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o


@app.command("doctor")
def doctor(
    timeout: Annotated[float, typer.Option(min=0.1, max=120.0, help="Seconds to wait for Modal before calling it unreachable (0.1..120).")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
    debug: o.Debug = False,
) -> None:
    """Report everything at once, on stdout: runtimes, models, caches, Modal, and per capability
    ready or the one command that makes it ready (`muse doctor > report.txt` for a bug report)."""
    from muse_cli import ui as ui_mod
    from muse_cli.ops.diagnostics import collect

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, debug=debug))
    report = collect(timeout=timeout)
    if json_out:
        ui.print_json(report)
        return
    from rich.console import Console
    from rich.markup import escape as esc
    from rich.table import Table

    # The report is the result: stdout, full width when redirected to a file.
    console = Console(file=ui.stdout, no_color=ui_mod._no_color(), highlight=False, soft_wrap=True,
                      width=None if ui.stdout.isatty() else 120)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in _rows(report):
        table.add_row(label, value)
    console.print(table)
    ready = Table(title="capabilities", title_justify="left", box=None, pad_edge=False)
    ready.add_column("capability", style="bold")
    ready.add_column("state", overflow="fold")
    for row in report["capabilities"]:
        # Escaped: fixes name extras such as muse-cli[analysis], which rich would read as markup.
        state = "[green]ready[/green]" if row["ready"] else f"[yellow]{esc('; '.join(row['missing']))}[/yellow]\n  run: {esc(row['fix'])}"
        ready.add_row(row["capability"], state)
    console.print()
    console.print(ready)


def _rows(report: dict) -> list[tuple[str, str]]:
    from rich.markup import escape as esc

    from muse_cli.ops.cache import human_size

    def yes(flag: bool, good: str = "yes", bad: str = "no") -> str:
        return f"[green]{esc(good)}[/green]" if flag else f"[yellow]{esc(bad)}[/yellow]"

    modal = report["modal"]
    app_state = modal["app"]
    app = app_state["state"]
    if "deployed_version" in app_state:
        app = (f"{app}: deployed {app_state['deployed_version']} (protocol {app_state['deployed_protocol']}), "
               f"client {app_state['client_version']} (protocol {app_state['client_protocol']})")
    rows = [
        ("muse", esc(report["muse_version"])),
        ("python", esc(f"{report['python']} ({report['platform']})")),
        ("backend (auto)", esc(report["backend_auto"])),
        ("modal credentials", yes(modal["credentials"], "found", "not found (run modal setup)")),
        ("modal api", yes(modal["reachable"], f"reachable {modal['server']}", f"unreachable {modal['server']}")),
        ("muse app", esc(app)),
    ]
    for name, version in report["runtimes"].items():
        rows.append((name, f"[green]{esc(version)}[/green]" if version else "[dim]not installed[/dim]"))
    rows.append(("cuda", esc(report["cuda"] or "") or "[dim]none[/dim]"))
    rows.append(("transcription model", esc(report["transcription_model"] or "") or "[yellow]not downloaded (muse models pull transcription)[/yellow]"))
    fluid = report["fluidsynth"]
    rows.append(("fluidsynth", yes(fluid["available"], "available", "not available")))
    rows.append(("soundfonts", esc(", ".join(fluid["soundfonts"])) or "[dim]none in the usual folders (pass --soundfont FILE)[/dim]"))
    for name, path in report["caches"].items():
        rows.append((name, esc(str(path))))
    cached = report["cached_models"]
    rows.append(("cached models", f"{len(cached)}, {human_size(sum(c['size_bytes'] for c in cached))}" if cached else "[dim]none[/dim]"))
    for item in cached:
        rows.append((f"  {item['name']}", esc(f"{human_size(item['size_bytes'])}  {item['path']}")))
    return rows

"""One object owns the streams: results to stdout, everything else to stderr.

Modes are chosen once per command (human, --json, --quiet), so commands never branch on them:
they call `ui.result(...)`, `ui.info(...)`, `ui.progress(...)` and the mode decides what shows.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Iterator

from muse_cli.progress import ProgressFn, null_progress


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


@dataclass
class UI:
    json: bool = False
    quiet: bool = False
    debug: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    finished: int = 0  # results printed so far: what an interrupted run reports as done

    def __post_init__(self) -> None:
        from rich.console import Console

        # Not a terminal (a log, CI): rich would assume 80 columns and cut tables; logs can be wide.
        width = None if self.stderr.isatty() else 160
        self.console = Console(file=self.stderr, no_color=_no_color(), highlight=False, soft_wrap=True, width=width)

    @property
    def interactive(self) -> bool:
        """Progress bars only for a person watching a terminal."""
        return not (self.quiet or self.json) and self.stderr.isatty()

    # ---- stdout: results only
    def result(self, paths: list[str] | None = None, data: dict[str, Any] | None = None) -> None:
        """One result: its paths (a line each), or with --json one JSON object."""
        if self.json:
            payload = dict(data or {})
            payload.setdefault("outputs", paths or [])
            self.stdout.write(json.dumps(payload, default=str) + "\n")
        else:
            for path in paths or []:
                self.stdout.write(f"{path}\n")
        self.stdout.flush()
        self.finished += 1

    def print_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, default=str, indent=None) + "\n")
        self.stdout.flush()

    # ---- stderr: people
    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False)

    def rich(self, renderable: Any) -> None:
        """A table or panel for people; never in --json or --quiet mode."""
        if not (self.quiet or self.json):
            self.console.print(renderable)

    def notice(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"note: {message}", style="cyan", markup=False)

    def warn(self, message: str, always: bool = False) -> None:
        """--quiet drops warnings (nothing on stderr but errors), except `always` ones: a fact
        shown once and never again, such as a newly created API token."""
        if always or not self.quiet:
            self.console.print(f"warning: {message}", style="yellow", markup=False)

    def error(self, message: str, hint: str | None = None) -> None:
        self.console.print(f"error: {message}", style="bold red", markup=False)
        if hint:
            self.console.print(f"hint: {hint}", style="dim", markup=False)

    @contextmanager
    def progress(self, description: str, total: float | None = None) -> Iterator[ProgressFn]:
        """A progress callback: a bar on a terminal, a start line otherwise, nothing when quiet."""
        if not self.interactive:
            if not (self.quiet or self.json):
                self.info(f"{description}...")
            yield null_progress
            return
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        with bar:
            task = bar.add_task(description, total=total)

            def update(done: float, total_now: float) -> None:
                bar.update(task, completed=done, total=total_now)

            yield update


_current: UI | None = None
_real_stdout: IO[str] | None = None


def set_current(ui: UI) -> UI:
    """Make `ui` the running command's UI: the one error handler in `main` uses its mode.

    From here on only the UI writes to stdout: anything a library prints (pyfluidsynth does when
    $CI is set; some model code does too) goes to stderr, so `--json` output stays parseable.
    """
    global _current, _real_stdout
    _current = ui
    if _real_stdout is None:
        _real_stdout = sys.stdout
        sys.stdout = ui.stderr
    return ui


def release() -> None:
    """Give stdout back (the command is over)."""
    global _current, _real_stdout
    if _real_stdout is not None:
        sys.stdout = _real_stdout
        _real_stdout = None
    _current = None


def current() -> UI:
    return _current or UI()

"""`muse batch`: many jobs from a JSONL/CSV file (or stdin), resumable, streamed to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o

EXAMPLES = """\b
Examples:
  muse batch jobs.jsonl --out-dir out                 # one JSON object per line
  muse batch jobs.csv --concurrency 16 --backend modal
  cat jobs.jsonl | muse batch - --json > results.jsonl
  muse batch jobs.jsonl --out-dir out                 # again: finished jobs are skipped

\b
A line: {"kind": "audio", "id": "intro", "prompt": "jazz piano", "duration": 10}
Fields are the command options' names (underscores); paths are relative to the jobs file.
Exit codes: 0 all ok, 1 some failed (or another batch holds the out-dir: see --wait),
2 invalid lines (nothing ran), 130 interrupted.
"""

DEFAULT_CONCURRENCY = {"local": 1, "modal": 8}


@app.command("batch", epilog=EXAMPLES)
@o.shared("out_dir", "backend", "json_out", "quiet", "debug")
def batch(
    jobs_file: Annotated[str, typer.Argument(help="JSONL or CSV jobs file; - reads stdin.", show_default=False)],
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", "-c", min=1, max=1000, help="Jobs in flight at once. [default: 1 local, 8 modal]", show_default=False)] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, max=20, help="Retries of a job after a transient failure (never after bad input).")] = 2,
    resume: Annotated[Optional[bool], typer.Option("--resume/--no-resume", help="Skip jobs the folder's manifest.jsonl records as done. [default: on when a manifest exists]", show_default=False)] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Run the valid lines even when some are invalid.")] = False,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Kind for lines without a \"kind\" field.", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto (by extension, else by content), jsonl or csv.")] = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show what would run; run nothing.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="If another muse batch is running in the out-dir, wait for it, then run what it left (default: exit 1 at once).")] = False,
    *,
    shared: o.Shared,
) -> int:
    """Run many jobs (audio, midi, ...) from a file: validated first, saved as each finishes, resumable."""
    from muse_cli import batch as B
    from muse_cli.errors import InputError

    ui, out_dir, backend = shared.ui, shared.out_dir, shared.backend
    if fmt not in ("auto", "jsonl", "csv"):
        raise InputError(f"--format {fmt!r}: use auto, jsonl or csv")
    text, base = B.read_text(jobs_file)
    rows, errors = B.parse_rows(text, B.detect_format(jobs_file, text) if fmt == "auto" else fmt)
    return execute(
        ui, rows, errors, base=base, default_kind=kind, out_dir=out_dir, backend=backend, concurrency=concurrency,
        retries=retries, resume=resume, skip_invalid=skip_invalid, dry_run=dry_run, wait=wait,
    )


def run_prompts(ui: Any, kind: str, prompts_file: Path, defaults: dict[str, Any], *, out_dir: Any, backend: str, prompt_field: str = "prompt") -> int:
    """`muse gen <kind> --prompts-file F`: one job per prompt, the command's options as defaults."""
    from muse_cli import batch as B

    text, base = B.read_text(str(prompts_file))
    return execute(
        ui, B.prompt_rows(text, prompt_field), [], base=base, defaults=defaults, default_kind=kind,
        out_dir=out_dir, backend=backend,
    )


def prompts_conflict(*, prompt: Any, output: Any) -> None:
    """Options that name one result do not mix with --prompts-file."""
    from muse_cli.errors import InputError

    if prompt is not None:
        raise InputError("give a prompt or --prompts-file, not both")
    if output is not None:
        raise InputError("-o/--output names one file: with --prompts-file use --out-dir")


def execute(
    ui: Any,
    rows: list[tuple[int, dict[str, Any]]],
    errors: list[Any],
    *,
    base: Path,
    out_dir: Any,
    backend: str,
    defaults: dict[str, Any] | None = None,
    default_kind: str | None = None,
    concurrency: int | None = None,
    retries: int = 2,
    resume: bool | None = None,
    skip_invalid: bool = False,
    dry_run: bool = False,
    wait: bool = False,
) -> int:
    """Validate everything, then run on one long-lived backend; returns the exit code."""
    from muse_cli import batch as B
    from muse_cli.errors import ExitCode
    from muse_cli.output import resolve_out_dir

    plan = B.plan(rows, base=base, defaults=defaults, default_kind=default_kind, errors=errors)
    for err in plan.errors:
        (ui.warn if skip_invalid else ui.error)(str(err))
    if plan.errors and not skip_invalid:
        ui.error(f"{len(plan.errors)} invalid line{'s' if len(plan.errors) != 1 else ''}: nothing was run", "fix them, or use --skip-invalid")
        return ExitCode.USAGE
    for line, first in plan.repeats:
        ui.notice(f"line {line} repeats the request of line {first}: it runs once (give a seed to get another take)")
    if not plan.jobs:
        ui.info("no jobs to run")
        return ExitCode.OK

    folder = resolve_out_dir(out_dir)
    if dry_run:
        return _plan_only(ui, plan, folder, resume)
    with B.folder_lock(folder, wait=wait, on_wait=ui.info):  # read the manifest only once it is ours
        return _run_locked(ui, plan, folder, backend=backend, concurrency=concurrency, retries=retries, resume=resume)


def _plan_only(ui: Any, plan: Any, folder: Path, resume: bool | None) -> int:
    """--dry-run: what would run, from the manifest as it is now (no lock: nothing is written)."""
    from muse_cli import batch as B
    from muse_cli.errors import ExitCode

    manifest = B.Manifest(folder)
    resume = manifest.exists if resume is None else resume
    waiting, done = B.pending(plan.jobs, manifest, resume)
    if done:
        ui.info(f"{done} of {len(plan.jobs)} jobs already done in {manifest.path}: skipped")
    for job in waiting:
        if ui.json:
            ui.print_json({"id": job.id, "line": job.line, "kind": job.kind, "hash": job.hash, "seed": job.seed})
        else:
            ui.info(f"would run line {job.line} ({job.kind}, id {job.id})")
    ui.info(f"{len(waiting)} to run, {done} done, {len(plan.errors)} invalid")
    return ExitCode.OK


def _run_locked(ui: Any, plan: Any, folder: Path, *, backend: str, concurrency: int | None, retries: int, resume: bool | None) -> int:
    import signal
    import threading

    from muse_cli import batch as B
    from muse_cli.backends import choose, get_backend
    from muse_cli.errors import ExitCode

    manifest = B.Manifest(folder)
    resume = manifest.exists if resume is None else resume
    waiting, done = B.pending(plan.jobs, manifest, resume)
    name = choose(backend)
    concurrency = concurrency or DEFAULT_CONCURRENCY.get(name, 1)
    if done:
        ui.info(f"{done} of {len(plan.jobs)} jobs already done in {manifest.path}: skipped")
    if not waiting:
        ui.info(f"all {len(plan.jobs)} jobs are done (see {manifest.path}); use --no-resume to run them again")
        return ExitCode.OK

    chosen = get_backend(name)
    if hasattr(chosen, "check"):
        chosen.check()  # unreachable or undeployed: one clear error now, not one per job
    stop = threading.Event()
    restore = _on_interrupt(signal, threading, stop)
    try:
        with _Display(ui, len(waiting), folder) as display:
            summary = B.run(waiting, chosen, folder, resume=resume, concurrency=concurrency, retries=retries, reporter=display, stop=stop)
    finally:
        restore()

    parts = [f"{summary.ok} ok", f"{summary.failed} failed"]
    if done:
        parts.append(f"{done} already done")
    if plan.errors:
        parts.append(f"{len(plan.errors)} invalid skipped")
    if summary.interrupted:
        parts.append(f"{summary.not_run} not run")
    rate = summary.ok / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    ui.info(f"batch: {', '.join(parts)} in {summary.elapsed_s:.1f} s ({rate:.2f} jobs/s); manifest {manifest.path}")
    if summary.removed_partials:
        ui.info(f"removed {summary.removed_partials} file(s) an interrupted run had started to write")
    if summary.interrupted:
        ui.error("interrupted", "rerun the same command to finish the remaining jobs")
        return ExitCode.INTERRUPTED
    return ExitCode.FAILURE if summary.failed else ExitCode.OK


def _on_interrupt(signal: Any, threading: Any, stop: Any) -> Any:
    """First Ctrl-C: start no new job, finish saving, exit 130. A second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)


class _Display:
    """Reports jobs: a bar plus a line per job on a terminal, a line per job otherwise, JSON on stdout."""

    def __init__(self, ui: Any, total: int, folder: Path):
        self.ui, self.total, self.folder, self.done, self.running = ui, total, folder, 0, 0
        self._bar: Any = None
        self._task: Any = None
        self._noticed: set[str] = set()

    def __enter__(self) -> "_Display":
        if self.ui.interactive:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), console=self.ui.console, transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("batch", total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def started(self, job: Any) -> None:
        if self._bar is not None:
            self.running += 1  # read by the drawing thread only: a stale count is harmless
            self._bar.update(self._task, description=f"batch ({self.running} running)")

    def finished(self, job: Any, entry: dict[str, Any]) -> None:
        self.done += 1
        self.running = max(0, self.running - 1)
        took = sum(entry["timings"].values())
        if entry["status"] == "ok":
            names = ", ".join(entry["outputs"]) or "no files"
            line = f"[{self.done}/{self.total}] ok line {job.line} ({job.kind}): {names} ({took:.1f} s)"
        else:
            line = f"[{self.done}/{self.total}] FAILED line {job.line} ({job.kind}, id {job.id}): {entry['error']}"
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"batch ({self.running} running)")
            self._bar.console.print(line, markup=False, highlight=False, style=None if entry["status"] == "ok" else "red")
        elif entry["status"] == "ok":
            self.ui.info(line)
        else:
            self.ui.error(line)  # a failed job is an error: shown under --quiet too
        for notice in entry.get("notices") or []:  # e.g. the MIDI-LLM fallback: once per batch
            if notice not in self._noticed:
                self._noticed.add(notice)
                self.ui.notice(notice)
        paths = [str(self.folder / n) for n in entry["outputs"]]  # the manifest keeps bare names
        if self.ui.json:
            self.ui.print_json({**entry, "outputs": paths, "sidecars": [str(self.folder / n) for n in entry["sidecars"]]})
        elif entry["status"] == "ok":
            self.ui.result(paths)

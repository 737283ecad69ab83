"""Running a validated plan: jobs in worker threads, each result saved and recorded as it ends.

Results are saved and recorded in the calling thread, one at a time, so a file group and its
manifest line are never half-written by us; a re-run skips every hash the manifest records as done.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from muse_cli.batch.jobsfile import Job, kind_of
from muse_cli.batch.manifest import JOURNAL, Manifest
from muse_cli.errors import InputError, MuseError, RuntimeFailure, TransientFailure
from muse_cli.output import Journal, Target, land_together, slugify
from muse_cli.progress import null_progress

if TYPE_CHECKING:
    from muse_cli.backends import Backend

COMMAND = "batch"
RETRY_DELAY_S = 1.0  # first back-off; doubles per attempt, capped
RETRY_DELAY_MAX_S = 30.0

class Reporter(Protocol):
    def started(self, job: Job) -> None: ...

    def finished(self, job: Job, entry: dict[str, Any]) -> None: ...


class _Silent:
    def started(self, job: Job) -> None:
        pass

    def finished(self, job: Job, entry: dict[str, Any]) -> None:
        pass


@dataclass
class Summary:
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already done in the manifest
    not_run: int = 0  # left when interrupted
    interrupted: bool = False
    removed_partials: int = 0  # files of unfinished jobs the journal proved ours, removed before the run
    elapsed_s: float = 0.0
    entries: list[dict[str, Any]] = field(default_factory=list)


def pending(jobs: list[Job], manifest: Manifest, resume: bool) -> tuple[list[Job], int]:
    """Jobs still to run, and how many the manifest already records as done."""
    if not resume:
        return list(jobs), 0
    done = manifest.done()
    waiting = [j for j in jobs if j.hash not in done]
    return waiting, len(jobs) - len(waiting)


def run(
    jobs: list[Job],
    backend: Backend,
    folder: Path,
    *,
    resume: bool = True,
    concurrency: int = 1,
    retries: int = 2,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Run jobs on one long-lived backend, `concurrency` at a time; save and record each as it ends.

    Jobs run in worker threads (for Modal each is a remote call, so N in flight means N
    containers busy); results are saved and recorded in this thread, one at a time, so a file
    group and its manifest line are never half-written by us. Setting `stop` (Ctrl-C) starts no
    new job and returns after the result being saved; jobs in flight are abandoned and run again
    on resume.
    """
    reporter = reporter or _Silent()
    stop = stop or threading.Event()
    start = time.perf_counter()
    manifest = Manifest(folder)
    journal = Journal(folder / JOURNAL)
    summary = Summary(removed_partials=journal.recover(manifest.finished))
    waiting, summary.skipped = pending(jobs, manifest, resume)
    inbox: queue.Queue[Job] = queue.Queue()
    for job in waiting:
        inbox.put(job)
    results: queue.Queue[tuple[Job, Any, dict[str, float], int]] = queue.Queue()

    def work() -> None:
        while not stop.is_set():
            try:
                job = inbox.get_nowait()
            except queue.Empty:
                return
            reporter_started(job)
            results.put(_attempt(job, backend, retries, stop, sleep))

    def reporter_started(job: Job) -> None:
        try:
            reporter.started(job)
        except Exception:  # a display problem must not lose a job
            pass

    workers = [threading.Thread(target=work, name=f"muse-batch-{i}", daemon=True) for i in range(max(1, min(concurrency, len(waiting))))]
    for worker in workers:
        worker.start()
    remaining = len(waiting)
    try:
        while remaining and not stop.is_set():
            try:
                job, outcome, timings, attempts = results.get(timeout=0.1)
            except queue.Empty:
                if not any(w.is_alive() for w in workers) and results.empty():
                    break
                continue
            remaining -= 1
            entry = _finish(job, outcome, timings, attempts, folder, manifest, journal)
            summary.entries.append(entry)
            if entry["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
            reporter.finished(job, entry)
    finally:
        stop.set()  # workers take no new job, whatever ended the loop
    journal.clear()  # every intent is committed to the manifest or rolled back
    summary.not_run = remaining
    summary.interrupted = remaining > 0
    summary.elapsed_s = time.perf_counter() - start
    return summary


def _attempt(job: Job, backend: Backend, retries: int, stop: threading.Event, sleep: Callable[[float], None]) -> tuple[Job, Any, dict[str, float], int]:
    """Run one job; transient failures are retried with back-off, bad input and others are not."""
    kind = kind_of(job.kind)
    attempts = 0
    t0 = time.perf_counter()
    while True:
        attempts += 1
        try:
            request = job.request()
            outcome = kind.run(request, backend, null_progress)
            return job, outcome, {"run_s": time.perf_counter() - t0}, attempts
        except TransientFailure as exc:
            if attempts > retries or stop.is_set():
                return job, exc, {"run_s": time.perf_counter() - t0}, attempts
            delay = min(RETRY_DELAY_MAX_S, RETRY_DELAY_S * 2 ** (attempts - 1))
            sleep(delay * (0.5 + random.random() / 2))
        except MuseError as exc:
            return job, exc, {"run_s": time.perf_counter() - t0}, attempts
        except Exception as exc:  # an engine bug fails its job, not the batch
            text = str(exc).splitlines()[0] if str(exc) else ""
            return job, RuntimeFailure(f"unexpected {type(exc).__name__}: {text}"), {"run_s": time.perf_counter() - t0}, attempts


def _finish(
    job: Job, outcome: Any, timings: dict[str, float], attempts: int, folder: Path, manifest: Manifest, journal: Journal
) -> dict[str, Any]:
    """Save a finished job's files as one group, then append its manifest line (the line is the commit).

    The journal records the group's names before they are written, so a run killed between the
    files and the line leaves nothing the next run cannot prove and remove.
    """
    entry: dict[str, Any] = {"id": job.id, "line": job.line, "kind": job.kind, "hash": job.hash}
    outputs: list[str] = []
    sidecars: list[str] = []
    error: MuseError | None = outcome if isinstance(outcome, MuseError) else None
    notices: list[str] = []
    backend_name = None
    group = None
    if error is None:
        t0 = time.perf_counter()
        try:
            kind = kind_of(job.kind)
            request = job.request()
            stem = f"{job.prefix}-{slugify(kind.stem(request, outcome))}"
            extra = {"render": job.render} if job.render is not None else {}
            saved, group = land_together(lambda: kind.save(request, outcome, Target(folder, stem), COMMAND, **extra), journal, job.hash)
            outputs = [p.name for item in saved for p in item.outputs]  # relative to the manifest
            sidecars = [item.sidecar.name for item in saved if item.sidecar]
            notices = list(dict.fromkeys(outcome.notices))
            backend_name = outcome.backend
        except MuseError as exc:
            error = exc
        except Exception as exc:
            error = RuntimeFailure(f"unexpected {type(exc).__name__} while saving: {str(exc).splitlines()[0] if str(exc) else ''}")
        timings["save_s"] = time.perf_counter() - t0
    entry.update(
        status="failed" if error else "ok",
        outputs=outputs,
        sidecars=sidecars,
        seed=job.seed,
        error=error.message if error else None,
        error_type=_error_type(error) if error else None,
        attempts=attempts,
        backend=backend_name,
        notices=notices,
        timings={k: round(v, 4) for k, v in timings.items()},
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    try:
        manifest.append(entry)
    except BaseException:
        if group is not None:
            group.rollback()  # files without their manifest line would be nobody's
        raise
    if group is not None:
        group.finish()
    return entry


def _error_type(error: MuseError) -> str:
    if isinstance(error, InputError):
        return "input"
    if isinstance(error, TransientFailure):
        return "transient"
    return "runtime"

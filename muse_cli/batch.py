"""Batch jobs: read a jobs file, validate every line, run the jobs, stream results to disk.

Engine-agnostic: a line's `kind` names a `jobs.KINDS` entry, its other fields are that kind's
request contract. Every line is validated before anything runs. Each finished job is saved at
once (atomic files plus sidecar) and then recorded as one line of `manifest.jsonl`, appended and
flushed, so a killed run loses at most the jobs that were in flight; a re-run skips every request
hash the manifest records as done. Nothing here prints: the caller passes a `Reporter`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
import random
import secrets
import threading
import time
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from pydantic import ValidationError

from muse_cli.errors import InputError, MuseError, RuntimeFailure, TransientFailure
from muse_cli.output import Journal, Target, land_together, slugify
from muse_cli.progress import null_progress

MANIFEST = "manifest.jsonl"
LOCK = "manifest.lock"  # flock'ed by the one run that owns the folder; holds its pid; never deleted
JOURNAL = "manifest.journal"  # the exact names each job is about to write (see output.Journal)
COMMAND = "batch"
RESERVED = ("kind", "id", "render")  # line fields that are not request fields
FILE_SUFFIX = "_file"  # `lyrics_file: a.txt` fills the text field `lyrics` from a file
RETRY_DELAY_S = 1.0  # first back-off; doubles per attempt, capped
RETRY_DELAY_MAX_S = 30.0


# ------------------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One validated line: what to run, under which id, and the hash that marks it done."""

    id: str
    line: int
    kind: str
    hash: str
    prefix: str  # file-name prefix, unique in the batch: the id, or the zero-padded line number
    seed: int | None
    fields: dict[str, Any]  # request fields with input files as paths, read again at run time
    render: Any = None  # a RenderRequest: also render the job's MIDI to audio
    _request: Any = field(default=None, repr=False)  # kept when it holds no file data

    def request(self) -> Any:
        if self._request is not None:
            return self._request
        contract = kind_of(self.kind).request_type()
        request = contract.model_validate(_load_files(contract, self.fields))
        return _with_seed(request, self.seed)


@dataclass
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Plan:
    """A validated jobs file: jobs to run, invalid lines, and lines repeating an earlier request."""

    jobs: list[Job]
    errors: list[LineError]
    repeats: list[tuple[int, int]]  # (line, first line with the same request)


def kind_of(name: str) -> Any:
    from muse_cli.jobs import KINDS

    return KINDS[name]


def kind_names() -> list[str]:
    from muse_cli.jobs import KINDS

    return sorted(KINDS)


def job_hash(kind: str, request: Any, render: Any = None) -> str:
    """The request's content hash plus its kind (and render settings): the key `--resume` skips on."""
    from muse_cli.contracts import request_hash

    extra = f":render:{request_hash(render)}" if render is not None else ""
    return hashlib.sha256(f"{kind}:{request_hash(request)}{extra}".encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- reading


def read_text(source: str | Path, stdin: typing.IO[str] | None = None) -> tuple[str, Path]:
    """The jobs file's text and the folder its relative paths resolve against (cwd for stdin)."""
    import sys

    if str(source) == "-":
        return (stdin or sys.stdin).read(), Path.cwd()
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputError(f"jobs file {str(source)!r}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig"), path.resolve().parent
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"jobs file {str(source)!r}: cannot read ({exc})") from None


def detect_format(source: str | Path, text: str) -> str:
    """csv for *.csv; jsonl for *.jsonl/*.json/*.ndjson; else by the first content line."""
    suffix = Path(str(source)).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return "jsonl" if stripped.startswith("{") else "csv"
    return "jsonl"


def parse_rows(text: str, fmt: str) -> tuple[list[tuple[int, dict[str, Any]]], list[LineError]]:
    """(line number, raw fields) per job line; blank lines and `#` comments skipped."""
    return _parse_csv(text) if fmt == "csv" else _parse_jsonl(text)


def _parse_jsonl(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[LineError]]:
    rows, errors = [], []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            errors.append(LineError(number, f"expected a JSON object, got {type(value).__name__}"))
            continue
        rows.append((number, value))
    return rows, errors


def _parse_csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[LineError]]:
    """A header row names the fields; empty cells mean the default."""
    rows, errors = [], []
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    start = 1
    for cells in reader:
        number, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes or "" in header:
                errors.append(LineError(number, f"CSV header has empty or repeated column names {dupes or ['']}"))
                return [], errors
            continue
        if len(cells) != len(header):
            errors.append(LineError(number, f"{len(cells)} cells, the header has {len(header)} columns"))
            continue
        rows.append((number, {h: c for h, c in zip(header, cells) if c.strip() != ""}))
    return rows, errors


def prompt_rows(text: str, prompt_field: str = "prompt") -> list[tuple[int, dict[str, Any]]]:
    """A prompts file: one prompt per line, blank lines and `#` comments skipped."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            rows.append((number, {prompt_field: stripped}))
    return rows


# ------------------------------------------------------------------------------- validation


def plan(
    rows: Iterable[tuple[int, dict[str, Any]]],
    *,
    base: Path,
    defaults: dict[str, Any] | None = None,
    default_kind: str | None = None,
    errors: list[LineError] | None = None,
) -> Plan:
    """Validate every row into a Job; collect every problem with its line number.

    `defaults` (a command's options, for --prompts-file) apply under each line's own fields.
    Relative paths in file fields resolve against `base` (the jobs file's folder).
    """
    errors = list(errors or [])
    jobs: list[Job] = []
    seen_ids: dict[str, int] = {}
    seen_hashes: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for number, raw in rows:
        try:
            job = _job(number, raw, base=base, defaults=defaults or {}, default_kind=default_kind)
        except InputError as exc:
            errors.append(LineError(number, exc.message))
            continue
        except _LineErrors as exc:
            errors.extend(LineError(number, m) for m in exc.messages)
            continue
        if job.prefix in seen_ids:
            errors.append(LineError(number, f"id {job.id!r} names the same files as line {seen_ids[job.prefix]}"))
            continue
        seen_ids[job.prefix] = number
        if job.hash in seen_hashes:
            repeats.append((number, seen_hashes[job.hash]))
            continue
        seen_hashes[job.hash] = number
        jobs.append(job)
    errors.sort(key=lambda e: e.line)
    return Plan(jobs, errors, repeats)


class _LineErrors(Exception):
    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


def _job(number: int, raw: dict[str, Any], *, base: Path, defaults: dict[str, Any], default_kind: str | None) -> Job:
    kind = raw.get("kind", default_kind)
    if kind is None:
        raise InputError(f"no \"kind\" (use one of {', '.join(kind_names())})")
    if not isinstance(kind, str) or kind not in kind_names():
        raise InputError(f"unknown kind {kind!r} (use one of {', '.join(kind_names())})")
    job_id = raw.get("id")
    if job_id is not None and (isinstance(job_id, bool) or not isinstance(job_id, (str, int)) or not str(job_id).strip()):
        raise InputError(f"id {job_id!r} must be a non-empty string or a number")
    contract = kind_of(kind).request_type()
    given = {k: v for k, v in raw.items() if k not in RESERVED}
    fields = {**{k: v for k, v in defaults.items() if v is not None and k not in RESERVED}, **given}
    fields = _resolve_paths(contract, fields, base)
    render = _render(kind, raw["render"] if "render" in raw else defaults.get("render"), base)
    request = _validate(contract, _load_files(contract, fields))
    check = kind_of(kind).check  # kind-specific checks that need more than the contract
    if check is not None:
        check(request)
    digest = job_hash(kind, request, render)  # before a seed is drawn: an unseeded job hashes without one
    seed = None
    if "seed" in contract.model_fields:
        seed = getattr(request, "seed", None)
        if seed is None or seed < 0:  # None or -1: "random", drawn here so retries and the manifest agree
            seed = secrets.randbelow(2**32)
    has_files = any(_file_field(contract, k) for k in fields)
    return Job(
        id=str(job_id).strip() if job_id is not None else str(number),
        line=number,
        kind=kind,
        hash=digest,
        prefix=slugify(str(job_id)) if job_id is not None else f"{number:04d}",
        seed=seed,
        fields=fields,
        render=render,
        _request=None if has_files else _with_seed(request, seed),
    )


def _render(kind: str, value: Any, base: Path) -> Any:
    """A line's `render`: true, a format ("flac"), or RenderRequest fields ({"soundfont": ...})."""
    if value is None or value is False:
        return None
    if not kind_of(kind).renders:
        raise InputError(f"render: only midi jobs render, not {kind} jobs")
    from muse_cli.contracts import RenderRequest

    if value is True:
        value = {}
    elif isinstance(value, str):
        value = {"format": value}
    elif not isinstance(value, dict):
        raise InputError(f"render: expected true, a format (wav, flac) or an object, got {value!r}")
    try:
        request = RenderRequest.model_validate(value)
    except ValidationError as exc:
        raise _LineErrors([_describe({**err, "loc": ("render", *err.get("loc", ()))}) for err in exc.errors()]) from None
    if request.soundfont:
        path = Path(request.soundfont).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise InputError(f"render.soundfont {request.soundfont!r}: no such file")
        request = request.model_copy(update={"soundfont": str(path)})
    return request


def _with_seed(request: Any, seed: int | None) -> Any:
    if seed is None or getattr(request, "seed", None) == seed:
        return request
    return request.model_copy(update={"seed": seed})


def _validate(contract: Any, fields: dict[str, Any]) -> Any:
    try:
        return contract.model_validate(fields)
    except ValidationError as exc:
        raise _LineErrors([_describe(err) for err in exc.errors()]) from None


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"unknown field {loc!r}"
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, (dict, bytes)) or value is None or not loc or repr(value) in message else f" (got {value!r})"
    return f"{loc}: {message}{shown}" if loc else message


def _file_field(contract: Any, name: str) -> bool:
    """Does this field take an input file (an AudioInput: audio or MIDI bytes plus a name)?"""
    from muse_cli.contracts import AudioInput

    info = contract.model_fields.get(name)
    if info is None:
        return name.endswith(FILE_SUFFIX) and name[: -len(FILE_SUFFIX)] in contract.model_fields
    stack = [info.annotation]
    while stack:
        tp = stack.pop()
        if tp is AudioInput:
            return True
        stack.extend(typing.get_args(tp))
    return False


def _resolve_paths(contract: Any, fields: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(fields)
    for name, value in fields.items():
        if isinstance(value, (str, os.PathLike)) and _file_field(contract, name):
            path = Path(value).expanduser()
            out[name] = str(path if path.is_absolute() else (base / path))
    return out


def _load_files(contract: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Path strings in file fields -> their contents: AudioInput fields get bytes, `x_file` text."""
    out = dict(fields)
    for name, value in fields.items():
        if not (isinstance(value, str) and _file_field(contract, name)):
            continue
        path = Path(value)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{name}: {value!r}: no such file") from None
        except OSError as exc:
            raise InputError(f"{name}: {value!r}: cannot read ({exc.strerror})") from None
        if name in contract.model_fields:
            out[name] = {"name": path.name, "data": data}
        else:
            del out[name]
            target = name[: -len(FILE_SUFFIX)]
            if target in fields:
                raise InputError(f"give either {target!r} or {name!r}, not both")
            try:
                out[target] = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InputError(f"{name}: {value!r} is not UTF-8 text") from None
    return out


# --------------------------------------------------------------------------------- manifest


class Manifest:
    """`manifest.jsonl`: one JSON line per finished job, appended and fsynced as jobs finish."""

    def __init__(self, folder: Path):
        self.path = folder / MANIFEST
        self.entries: list[dict[str, Any]] = []
        self._recorded: set[str] = set()
        self._lock = threading.Lock()
        if os.path.lexists(self.path) and not self.path.is_file():
            kind = "a folder" if self.path.is_dir() else "not a regular file"
            raise InputError(f"{self.path} is {kind}, not a muse manifest", hint="move it away, or use another --out-dir")
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace") if self.path.exists() else ""
        except OSError as exc:
            raise RuntimeFailure(f"cannot read {self.path}: {exc.strerror}") from None
        for number, line in enumerate(text.splitlines(), 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn last line of a killed run
            if isinstance(entry, dict) and "hash" in entry:
                problem = _entry_problem(entry)
                if problem:
                    raise InputError(f"{self.path} line {number}: {problem}", hint="fix or delete that line (it was edited by hand?)")
                self._add(entry)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def done(self) -> set[str]:
        return {e["hash"] for e in self.entries if e.get("status") == "ok"}

    def recorded_files(self) -> set[str]:
        """Names of the files that finished jobs wrote (bare names, in the manifest's folder)."""
        return set(self._recorded)

    def finished(self, key: str, names: list[str]) -> bool:
        """Does an ok line record job `key` with all these files? (A journal intent it confirms.)"""
        return any(
            e["hash"] == key and e.get("status") == "ok" and set(names) <= {*e.get("outputs", []), *e.get("sidecars", [])}
            for e in self.entries
        )

    def _add(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        if entry.get("status") == "ok":
            self._recorded.update(str(n) for n in [*entry.get("outputs", []), *entry.get("sidecars", [])])

    def append(self, entry: dict[str, Any]) -> None:
        data = json.dumps(entry, default=str, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                with open(self.path, "ab") as fh:
                    if fh.tell() > 0 and not _ends_with_newline(self.path):
                        fh.write(b"\n")  # after a torn line, start clean
                    fh.write(data.encode())
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise RuntimeFailure(
                    f"cannot record job {entry.get('id')!r} in {self.path}: {exc.strerror}",
                    hint="free some space and run the same command again: finished jobs are kept",
                ) from None
            self._add(entry)


def _entry_problem(entry: dict[str, Any]) -> str | None:
    """What is wrong with a hand-edited manifest line's types, or None."""
    if not isinstance(entry["hash"], str):
        return f"\"hash\" must be a string, not {type(entry['hash']).__name__}"
    if "status" in entry and not isinstance(entry["status"], str):
        return f"\"status\" must be a string, not {type(entry['status']).__name__}"
    for key in ("outputs", "sidecars"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            return f"\"{key}\" must be a list of file names"
    return None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class FolderBusy(RuntimeFailure):
    """Another muse batch holds the folder's lock."""


@contextmanager
def folder_lock(folder: Path, *, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """One batch per folder: an exclusive flock on `manifest.lock`, released when the process ends
    however it ends. Busy: FolderBusy (exit 1) at once, or with `wait` block until it is free."""
    import fcntl

    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise RuntimeFailure(f"cannot open the lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise FolderBusy(
                    f"another muse batch{holder} is running in {folder}", hint="let it finish, or rerun with --wait to queue behind it"
                ) from None
            if on_wait:
                on_wait(f"waiting for the muse batch{holder} running in {folder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


# ---------------------------------------------------------------------------------- running


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
    backend: Any,
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


def _attempt(job: Job, backend: Any, retries: int, stop: threading.Event, sleep: Callable[[float], None]) -> tuple[Job, Any, dict[str, float], int]:
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

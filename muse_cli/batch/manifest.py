"""`manifest.jsonl` (one line per finished job: the commit of its files) and the folder lock."""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from muse_cli.errors import InputError, RuntimeFailure

MANIFEST = "manifest.jsonl"
LOCK = "manifest.lock"  # flock'ed by the one run that owns the folder; holds its pid; never deleted
JOURNAL = "manifest.journal"  # the exact names each job is about to write (see output.Journal)

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

"""The error types muse raises and the exit codes they map to.

Engines and domain code raise these; the CLI catches them in one place and prints one line.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130


class MuseError(Exception):
    """Base class: a one-line message, an optional hint naming the next command to run."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(MuseError):
    """The user's input is invalid: rejected before any model or GPU time is spent."""

    exit_code = ExitCode.USAGE


class RuntimeFailure(MuseError):
    """Valid input, but the work failed: backend unreachable, not deployed, out of memory, ..."""

    exit_code = ExitCode.FAILURE


class Unavailable(RuntimeFailure):
    """The work cannot run here as things stand: not deployed, not installed, not downloaded,
    unreachable, no credentials or checkpoint. The hint says what makes it available."""


class TransientFailure(RuntimeFailure):
    """A failure worth retrying (timeouts, lost containers, connection drops)."""

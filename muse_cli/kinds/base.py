"""What every job kind defines, once, for the three faces (CLI commands, `muse batch`, HTTP API).

A kind (`kinds/midi.py`, `audio.py`, `song.py`, `analysis.py`) is a `Kind` subclass typed with its
own contracts: how its request is built and checked before any GPU time, which family runs it on a
backend, how its outputs are named and saved with their sidecar, and the JSON an HTTP client gets
back. The faces only parse their own input (options, a jobs-file line, a request body) into fields
and report what the kind returns. Nothing here prints: notices travel in the `Outcome`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from muse_cli.errors import InputError
from muse_cli.progress import ProgressFn, null_progress

if TYPE_CHECKING:
    from muse_cli.backends import Backend
    from muse_cli.contracts import RenderRequest
    from muse_cli.output import Target

C = TypeVar("C", bound=BaseModel)
Req = TypeVar("Req", bound=BaseModel)
Res = TypeVar("Res")

Deliver = Callable[[bytes, str], "tuple[str | None, str | None]"]
"""How the HTTP face hands over a file: (base64, None) inline, or (None, key) stored."""


def b64(data: bytes) -> str:
    """A file inside a JSON reply."""
    return base64.b64encode(data).decode("ascii")


def build(contract: type[C], /, **fields: Any) -> C:
    """Validate fields into a contract; the first problem becomes a one-line InputError (exit 2).

    Options the user did not give (None) are left out so the contract's defaults apply.
    """
    try:
        return contract.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc)) from None


POSITIONAL = {"prompt": "PROMPT", "description": "DESCRIPTION"}  # fields the commands take as arguments


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem in CLI words: `--top-p: ...`, `PROMPT: ...`."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    name = (POSITIONAL.get(loc[0]) or f"--{loc[0].replace('_', '-')}") if loc else "input"
    message = first.get("msg", "invalid value")
    message = message.removeprefix("Value error, ")
    value = first.get("input")
    hidden = isinstance(value, (dict, bytes)) or value is None or not loc or repr(value) in message
    shown = "" if hidden else f" (got {value!r})"
    return f"{name}: {message}{shown}" if loc else message


@dataclass
class Saved:
    """One saved result: its files (sidecar last, where it has one) and the JSON-able summary."""

    paths: list[Path]
    summary: dict[str, Any] = field(default_factory=dict)
    has_sidecar: bool = True

    @property
    def outputs(self) -> list[Path]:
        """The files the user asked for (what stdout lists)."""
        return self.paths[:-1] if self.has_sidecar else list(self.paths)

    @property
    def sidecar(self) -> Path | None:
        return self.paths[-1] if self.has_sidecar else None

    def as_result(self) -> tuple[list[str], dict[str, Any]]:
        """What `ui.result` prints: the outputs on stdout, or with --json the summary and every file."""
        return [str(p) for p in self.outputs], {**self.summary, "outputs": [str(p) for p in self.paths]}


@dataclass
class Outcome(Generic[Res]):
    """What running a job produced: the result contract, where it ran, notices for the user."""

    result: Res
    backend: str
    notices: list[str] = field(default_factory=list)


class Kind(Generic[Req, Res]):
    """One kind of job: `"kind"` in a batch line, one capability of the HTTP API."""

    name: ClassVar[str]
    request_type: type[Req]
    renders: ClassVar[bool] = False  # `save` takes render= (a RenderRequest): its MIDI is also rendered

    def request(self, **fields: Any) -> Req:
        """The request from a face's fields (exit 2 on the first problem), checked."""
        request = build(self.request_type, **fields)
        self.check(request)
        return request

    def check(self, request: Req) -> None:
        """Checks beyond the contract that need no backend, run before any job: InputError."""

    def ready(self, request: Req, backend: Backend) -> None:
        """What this machine must have for `request` on `backend`, all gaps in one error."""

    def run(self, request: Req, backend: Backend, progress: ProgressFn = null_progress) -> Outcome[Res]:
        raise NotImplementedError

    def stem(self, request: Req, outcome: Outcome[Res]) -> str:
        """The file stem when the caller does not choose one."""
        raise NotImplementedError

    def save(
        self, request: Req, outcome: Outcome[Res], target: Target, command: str, *, render: RenderRequest | None = None
    ) -> list[Saved]:
        raise NotImplementedError

    def reply(self, outcome: Outcome[Res], deliver: Deliver) -> dict[str, Any]:
        """The HTTP API's JSON for this outcome (see docs/http-api.md)."""
        raise NotImplementedError

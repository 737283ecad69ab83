"""Jobs files: read JSONL/CSV (or a prompts file), validate every line into a `Job` before anything runs.

A line's `kind` names a `kinds.KINDS` entry and its other fields are that kind's request contract;
`render` (MIDI jobs) and `id` are the batch's own. Every problem is collected with its line number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from pydantic import BaseModel, ValidationError

from muse_cli.errors import InputError
from muse_cli.output import slugify

if TYPE_CHECKING:
    from muse_cli.contracts import RenderRequest
    from muse_cli.kinds import Kind

RESERVED = ("kind", "id", "render")  # line fields that are not request fields
FILE_SUFFIX = "_file"  # `lyrics_file: a.txt` fills the text field `lyrics` from a file

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
    render: RenderRequest | None = None  # also render the job's MIDI to audio
    _request: BaseModel | None = field(default=None, repr=False)  # kept when it holds no file data

    def request(self) -> BaseModel:
        if self._request is not None:
            return self._request
        contract = kind_of(self.kind).request_type
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


def kind_of(name: str) -> Kind:
    from muse_cli.kinds import KINDS

    return KINDS[name]


def kind_names() -> list[str]:
    from muse_cli.kinds import KINDS

    return sorted(KINDS)


def job_hash(kind: str, request: BaseModel, render: RenderRequest | None = None) -> str:
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
    contract = kind_of(kind).request_type
    given = {k: v for k, v in raw.items() if k not in RESERVED}
    fields = {**{k: v for k, v in defaults.items() if v is not None and k not in RESERVED}, **given}
    fields = _resolve_paths(contract, fields, base)
    render = _render(kind, raw["render"] if "render" in raw else defaults.get("render"), base)
    request = _validate(contract, _load_files(contract, fields))
    kind_of(kind).check(request)  # kind-specific checks that need more than the contract
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


def _render(kind: str, value: Any, base: Path) -> RenderRequest | None:
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


def _with_seed(request: BaseModel, seed: int | None) -> BaseModel:
    if seed is None or getattr(request, "seed", None) == seed:
        return request
    return request.model_copy(update={"seed": seed})


def _validate(contract: type[BaseModel], fields: dict[str, Any]) -> BaseModel:
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


def _file_field(contract: type[BaseModel], name: str) -> bool:
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


def _resolve_paths(contract: type[BaseModel], fields: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(fields)
    for name, value in fields.items():
        if isinstance(value, (str, os.PathLike)) and _file_field(contract, name):
            path = Path(value).expanduser()
            out[name] = str(path if path.is_absolute() else (base / path))
    return out


def _load_files(contract: type[BaseModel], fields: dict[str, Any]) -> dict[str, Any]:
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

"""Where outputs go and how they land: safe names, atomic writes, sidecar JSON.

Every file is written to a hidden temporary name in its target folder and then linked or renamed
into place, so a reader (or a killed process) never sees half a file. Without --force an existing
name is never replaced: the next free stem (`name-2`) is chosen, checked across every file of the
group so an output and its sidecar always share a stem.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muse_cli.errors import InputError, RuntimeFailure

MAX_STEM = 64
PART_SUFFIX = ".muse-part"


def slugify(text: str, max_len: int = MAX_STEM, fallback: str = "muse") -> str:
    """'Jazz piano, late night!' -> 'jazz-piano-late-night'. Never empty, hidden or a path."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0] if "-" in slug[:max_len] else slug[:max_len]
    return slug.strip("-.") or fallback


def resolve_out_dir(out_dir: str | os.PathLike | None) -> Path:
    """--out-dir, else $MUSE_OUT_DIR, else the current folder. Created if missing."""
    path = Path(out_dir or os.environ.get("MUSE_OUT_DIR") or ".").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {str(path)!r}: {exc.strerror}") from None
    if not path.is_dir():
        raise InputError(f"output folder {str(path)!r} is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"output folder {str(path)!r} is not writable")
    return path


@dataclass(frozen=True)
class Target:
    """Where a job's files go: a folder and a base stem; suffixes are added per file."""

    folder: Path
    stem: str
    force: bool = False

    @classmethod
    def plan(
        cls,
        *,
        stem: str,
        out_dir: str | os.PathLike | None = None,
        output: str | os.PathLike | None = None,
        force: bool = False,
    ) -> "Target":
        """-o FILE fixes folder and stem (its extension is the caller's business); else out-dir + stem.

        Checked before any model runs, so an unwritable destination fails in a second, not after
        minutes of GPU time.
        """
        if output is not None:
            out = Path(output).expanduser()
            if out.name in ("", ".", "..") or out.is_dir():
                raise InputError(f"-o/--output {str(output)!r} must be a file name, not a folder")
            folder = resolve_out_dir(out.parent if str(out.parent) else ".")
            return cls(folder, out.stem, force)
        return cls(resolve_out_dir(out_dir), slugify(stem), force)

    def numbered(self, index: int, count: int) -> "Target":
        """The index-th of count results: `stem-1`, `stem-2`, ... when there are several."""
        return self if count == 1 else Target(self.folder, f"{self.stem}-{index + 1}", self.force)


def output_format(output: str | os.PathLike | None, given: str | None, allowed: tuple[str, ...]) -> str | None:
    """The format `-o FILE` names: `-o take.flac` means flac. None: neither says (the default applies).

    A suffix the command cannot write, or one that contradicts --format, is an error rather than
    a file whose name lies about its content.
    """
    suffix = Path(output).suffix.lower().lstrip(".") if output is not None else ""
    if not suffix:
        return given
    if suffix not in allowed:
        names = [f".{a}" for a in allowed]
        names = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise InputError(f"-o/--output {str(output)!r}: this command writes {names}")
    if given is not None and given != suffix:
        raise InputError(f"-o/--output {str(output)!r} is {suffix} but --format is {given}: give one of them")
    return suffix


def write_group(
    target: Target, files: dict[str, bytes], sidecar: dict[str, Any] | None = None, *, sidecar_suffix: str = ".json"
) -> list[Path]:
    """Write files sharing one stem ({suffix: data}, suffix like ".wav" or ".lyrics.txt") atomically.

    Returns the final paths (sidecar last). The sidecar records the final file names. A command
    whose input already has `<stem>.json` (render, next to a generated MIDI) names its own
    sidecar apart, so the two never collide.
    """
    suffixes = list(files) + ([sidecar_suffix] if sidecar is not None else [])
    stem = _free_stem(target, suffixes)
    paths = {suffix: target.folder / f"{stem}{suffix}" for suffix in suffixes}
    payloads = dict(files)
    if sidecar is not None:
        record = dict(sidecar)
        record["outputs"] = [paths[s].name for s in files]
        payloads[sidecar_suffix] = (json.dumps(record, indent=2, default=str) + "\n").encode()
    written: list[Path] = []
    try:
        for suffix in suffixes:
            _atomic_write(paths[suffix], payloads[suffix], overwrite=target.force)
            written.append(paths[suffix])
    except FileExistsError:
        # Another process took the name between the check and the write: undo ours and retry.
        for path in written:
            path.unlink(missing_ok=True)
        return write_group(target, files, sidecar, sidecar_suffix=sidecar_suffix)
    return written


def _free_stem(target: Target, suffixes: list[str]) -> str:
    if target.force:
        return target.stem
    for n in range(1, 10_000):
        stem = target.stem if n == 1 else f"{target.stem}-{n}"
        if not any((target.folder / f"{stem}{s}").exists() for s in suffixes):
            return stem
    raise RuntimeFailure(f"no free file name for {target.stem!r} in {target.folder}", hint="use --force or another --out-dir")


def _atomic_write(path: Path, data: bytes, overwrite: bool) -> None:
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{PART_SUFFIX}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the name exists: never replaces someone's file
    except FileExistsError:
        raise
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_file(path: Path, data: bytes, force: bool = False) -> Path:
    """One standalone file (no sidecar): atomic, never overwriting without force."""
    target = Target(path.parent, path.name[: -len("".join(path.suffixes))] or path.name, force)
    suffix = "".join(path.suffixes)
    return write_group(target, {suffix: data})[0]


def clean_partials(folder: Path) -> int:
    """Remove temporary files a killed run left behind; returns how many."""
    removed = 0
    for part in folder.glob(f".*{PART_SUFFIX}"):
        part.unlink(missing_ok=True)
        removed += 1
    return removed


def sidecar(
    *,
    command: str,
    engine: str,
    model: str,
    backend: str,
    request: Any,
    seed: int | None,
    timings: dict[str, float],
    metadata: dict[str, Any] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce an output, next to it as <stem>.json."""
    import datetime
    import platform

    from muse_cli import __version__
    from muse_cli.contracts import PROTOCOL_VERSION, record

    return {
        "muse_version": __version__,
        "protocol": PROTOCOL_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "engine": engine,
        "model": model,
        "backend": backend,
        "device": device,
        "seed": seed,
        "request": record(request) if hasattr(request, "model_dump") else request,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "metadata": metadata or {},
        "python": platform.python_version(),
    }

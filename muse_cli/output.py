"""Where outputs go and how they land: safe names, atomic writes, sidecar JSON.

Every file is written to a hidden temporary name in its target folder and then linked or renamed
into place, so a reader (or a killed process) never sees half a file. Without --force an existing
name is never replaced: the next free stem (`name-2`) is chosen, checked across every file of the
group so an output and its sidecar always share a stem.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import secrets
import stat
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from muse_cli.errors import InputError, RuntimeFailure

T = TypeVar("T")
MAX_STEM = 64
PART_SUFFIX = ".muse-part"


# A note name with an accidental, as a word of its own: F#, f#, C♯, Bb, E♭ (a flat needs a capital
# letter, so "ab" or "eb" in plain words stay words), optionally F#m / Bbmin for minor.
_ACCIDENTAL = re.compile(r"(?<![A-Za-z0-9])(?:([A-Ga-g])\s?(#|♯)|([A-G])(b|♭)|([a-g])(♭))(m(?:in(?:or)?)?)?(?![A-Za-z])")


def _spell_accidentals(text: str) -> str:
    def word(m: re.Match[str]) -> str:
        letter = (m.group(1) or m.group(3) or m.group(5)).lower()
        name = "sharp" if m.group(2) else "flat"
        return f" {letter}-{name}{'-minor' if m.group(7) else ''} "

    return _ACCIDENTAL.sub(word, text)


def slugify(text: str, max_len: int = MAX_STEM, fallback: str = "muse") -> str:
    """'Jazz piano, late night!' -> 'jazz-piano-late-night'. Never empty, hidden or a path.

    Sharps and flats become words ('F# minor' -> 'f-sharp-minor', 'Bb' -> 'b-flat'), so a
    name never claims another key than the one asked for.
    """
    text = _spell_accidentals(text)
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


def _special(path: Path) -> str | None:
    """What a non-regular existing file is ('a character device', ...), None for a file or nothing."""
    try:
        mode = os.stat(path).st_mode  # through links: -o /dev/stdout is the device it points to
    except OSError:
        return None
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None


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
            text = os.fspath(output)
            if text.endswith(("/", os.sep)):  # `-o newdir/` names a folder, as in cp and rsync
                if out_dir is not None:
                    raise InputError(f"-o/--output {text!r} is a folder: give it or --out-dir, not both")
                return cls(resolve_out_dir(text), slugify(stem), force)
            out = Path(text).expanduser()
            if out.name in ("", ".", "..") or out.is_dir():
                raise InputError(f"-o/--output {text!r} must be a file name, not a folder", hint=f"-o {text}/ writes into it")
            special = _special(out)
            if special:
                raise InputError(f"-o/--output {text!r} is {special}: muse writes only regular files")
            folder = resolve_out_dir(out.parent if str(out.parent) else ".")
            return cls(folder, out.stem, force)
        return cls(resolve_out_dir(out_dir), slugify(stem), force)

    def numbered(self, index: int, count: int) -> "Target":
        """The index-th of count results: `stem-1`, `stem-2`, ... when there are several."""
        return self if count == 1 else Target(self.folder, f"{self.stem}-{index + 1}", self.force)


def names_file(output: str | os.PathLike | None) -> bool:
    """Does -o name a file (`-o take.mid`), rather than nothing or a folder (`-o takes/`)?"""
    return output is not None and not os.fspath(output).endswith(("/", os.sep))


def output_format(output: str | os.PathLike | None, given: str | None, allowed: tuple[str, ...]) -> str | None:
    """The format `-o FILE` names: `-o take.flac` means flac. None: neither says (the default applies).

    A suffix the command cannot write, or one that contradicts --format, is an error rather than
    a file whose name lies about its content.
    """
    suffix = Path(output).suffix.lower().lstrip(".") if names_file(output) else ""
    if not suffix:
        return given
    if suffix not in allowed:
        names = [f".{a}" for a in allowed]
        names = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise InputError(f"-o/--output {str(output)!r}: this command writes {names}")
    if given is not None and given != suffix:
        raise InputError(f"-o/--output {str(output)!r} is {suffix} but --format is {given}: give one of them")
    return suffix


class NameTaken(Exception):
    """Another process took a planned name between the check and the link: plan again."""


class Journal:
    """Intent log beside a batch manifest: each write's exact temporary and final names, fsynced
    before the temporary is created. Cleanup after a killed run reads only this, never a glob.
    """

    def __init__(self, path: Path):
        self.path = path

    def record(self, key: str, pairs: list[tuple[Path, Path]]) -> None:
        line = json.dumps({"job": key, "files": [[t.name, f.name] for t, f in pairs]}, separators=(",", ":")) + "\n"
        try:
            with open(self.path, "ab") as fh:
                fh.write(line.encode())
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RuntimeFailure(f"cannot write {self.path}: {exc.strerror}") from None

    def intents(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(job key, [(temporary, final)]) per recorded write; a torn last line is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RuntimeFailure(f"cannot read {self.path}: {exc.strerror}") from None
        out = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                pairs = [(str(t), str(f)) for t, f in entry["files"]]
                out.append((str(entry["job"]), pairs))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def recover(self, finished: Any) -> int:
        """Undo every recorded write that `finished(key, finals)` does not confirm; returns files removed.

        A final name is removed only while it is still a hard link to our own temporary (same
        inode): then it is provably the file this journal's run wrote. Temporaries are removed by
        their exact recorded names. Then the journal is emptied.
        """
        folder = self.path.parent
        removed = 0
        for key, pairs in self.intents():
            keep = finished(key, [f for _, f in pairs])
            for tmp_name, final_name in pairs:
                tmp, final = folder / tmp_name, folder / final_name
                if not keep and _same_file(tmp, final):
                    final.unlink(missing_ok=True)
                    removed += 1
                if _is_regular(tmp):
                    tmp.unlink(missing_ok=True)
                    removed += 1
        self.clear()
        return removed

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class Group:
    """Files that appear together or not at all: all temporaries written first, then all linked.

    Inside `together()`, every write_group call only stages its files; leaving the block links
    them all. If anything fails, exactly the names this group linked are removed again. With a
    journal, the temporaries stay (hard links of the finals) until `finish()`, so a killed run's
    leftovers can be told from anyone else's files by inode.
    """

    def __init__(self, journal: Journal | None = None, key: str = ""):
        self.journal, self.key = journal, key
        self.staged: list[tuple[Path, Path, bool]] = []  # (temporary, final, overwrite)
        self.linked: list[Path] = []

    def names(self) -> set[Path]:
        return {final for _, final, _ in self.staged}

    def stage(self, paths: dict[str, Path], payloads: dict[str, bytes | Path], overwrite: bool) -> None:
        pairs = [(_temp_name(path), path) for path in paths.values()]
        if self.journal is not None:
            self.journal.record(self.key, pairs)  # the intent is on disk before any byte is written
        for (tmp, path), suffix in zip(pairs, paths):
            self.staged.append((tmp, path, overwrite))
            _write_temp(tmp, payloads[suffix], path)

    def link(self) -> None:
        try:
            for tmp, final, overwrite in self.staged:
                try:
                    if overwrite:
                        os.replace(tmp, final) if self.journal is None else _replace_keep(tmp, final)
                    else:
                        os.link(tmp, final)  # fails if the name exists: never replaces someone's file
                except FileExistsError:
                    raise NameTaken(str(final)) from None
                except OSError as exc:
                    raise RuntimeFailure(f"cannot write {final}: {exc.strerror}") from None
                self.linked.append(final)
        except BaseException:
            self.rollback()
            raise
        if self.journal is None:
            self.finish()

    def finish(self) -> None:
        """The group is committed: drop the temporaries (the finals keep the data)."""
        for tmp, _, _ in self.staged:
            tmp.unlink(missing_ok=True)

    def rollback(self) -> None:
        """Remove exactly what this group linked, and its temporaries."""
        temps = {final: tmp for tmp, final, _ in self.staged}
        for final in self.linked:
            tmp = temps[final]
            if not tmp.exists() or _same_file(tmp, final):
                final.unlink(missing_ok=True)
        self.linked = []
        self.finish()


_GROUP: contextvars.ContextVar[Group | None] = contextvars.ContextVar("muse_output_group", default=None)


@contextmanager
def together(journal: Journal | None = None, key: str = "") -> Iterator[Group]:
    """Every write_group inside the block lands as one group (see Group). Raises NameTaken
    when a name was taken by another process meanwhile: nothing of the group is left; retry."""
    group = Group(journal, key)
    token = _GROUP.set(group)
    try:
        yield group
    except BaseException:
        group.rollback()
        raise
    finally:
        _GROUP.reset(token)
    group.link()


def land_together(save: Callable[[], T], journal: Journal | None = None, key: str = "") -> tuple[T, Group]:
    """Run `save` (which calls write_group any number of times) so that its files land as one
    group; a name taken meanwhile by another process means planning the names again."""
    for _ in range(100):
        try:
            with together(journal, key) as group:
                result = save()
            return result, group
        except NameTaken:
            continue
    raise RuntimeFailure("no free file names: another process keeps taking them", hint="use another --out-dir")


def write_group(
    target: Target, files: dict[str, bytes | Path], sidecar: dict[str, Any] | None = None, *, sidecar_suffix: str = ".json"
) -> list[Path]:
    """Write files sharing one stem ({suffix: data}, suffix like ".wav" or ".lyrics.txt") atomically.

    Returns the final paths (sidecar last). The sidecar records the final file names. A command
    whose input already has `<stem>.json` (render, next to a generated MIDI) names its own
    sidecar apart, so the two never collide. Inside `together()` the files land with the rest of
    the group when the block ends; otherwise at once, all of them or none.
    """
    outer = _GROUP.get()
    for _ in range(100):  # a name taken by a racing process: choose again
        group = outer or Group()
        paths = _plan_group(target, files, sidecar, sidecar_suffix, group.names())
        payloads = dict(files)
        if sidecar is not None:
            record = dict(sidecar)
            record["outputs"] = [paths[s].name for s in files]
            payloads[sidecar_suffix] = (json.dumps(record, indent=2, default=str) + "\n").encode()
        try:
            group.stage(paths, payloads, overwrite=target.force)
        except BaseException:
            if outer is None:
                group.rollback()
            raise
        if outer is not None:
            return list(paths.values())
        try:
            group.link()
        except NameTaken:
            continue
        return list(paths.values())
    raise RuntimeFailure(f"no free file name for {target.stem!r} in {target.folder}", hint="use another --out-dir")


def _plan_group(target: Target, files: dict[str, bytes], sidecar: Any, sidecar_suffix: str, reserved: set[Path]) -> dict[str, Path]:
    suffixes = list(files) + ([sidecar_suffix] if sidecar is not None else [])
    stem = _free_stem(target, suffixes, reserved)
    return {suffix: target.folder / f"{stem}{suffix}" for suffix in suffixes}


def _free_stem(target: Target, suffixes: list[str], reserved: set[Path] = frozenset()) -> str:  # type: ignore[assignment]
    """The first stem whose every name is free. With --force, a regular file (an earlier output)
    may be replaced; a link, a folder or a device never is: those names count as taken."""
    for n in range(1, 10_000):
        stem = target.stem if n == 1 else f"{target.stem}-{n}"
        paths = [target.folder / f"{stem}{s}" for s in suffixes]
        if any(p in reserved for p in paths):
            continue
        if target.force:
            if not any(os.path.lexists(p) and not _is_regular(p) for p in paths):
                return stem
        elif not any(os.path.lexists(p) for p in paths):  # lexists: a dangling link takes its name too
            return stem
    raise RuntimeFailure(f"no free file name for {target.stem!r} in {target.folder}", hint="use --force or another --out-dir")


def _temp_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(8)}{PART_SUFFIX}"


def staging_path(target: Target, suffix: str) -> Path:
    """A fresh temporary name in the target folder for a file too large to pass as bytes: write
    it there, then give write_group its Path; the caller removes it once write_group returns."""
    return _temp_name(target.folder / f"{target.stem}{suffix}")


def _write_temp(tmp: Path, data: bytes | Path, final: Path) -> None:
    try:
        if isinstance(data, Path):  # a staged file of ours (staging_path): linked, never copied
            with open(data, "rb+") as fh:
                os.fsync(fh.fileno())
            os.link(data, tmp)
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # ours alone: never an existing file
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {final}: {exc.strerror}", hint=_hint(exc)) from None


def _replace_keep(tmp: Path, final: Path) -> None:
    """--force with a journal: replace `final` by a second link of tmp, keeping tmp."""
    spare = _temp_name(final)
    os.link(tmp, spare)
    os.replace(spare, final)


def _hint(exc: OSError) -> str | None:
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free some space (or use another --out-dir) and run it again"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def write_file(path: Path, data: bytes, force: bool = False) -> Path:
    """One standalone file (no sidecar): atomic, never overwriting without force."""
    target = Target(path.parent, path.name[: -len("".join(path.suffixes))] or path.name, force)
    suffix = "".join(path.suffixes)
    return write_group(target, {suffix: data})[0]


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
    precision: str | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce an output, next to it as <stem>.json.

    `precision` is what the model ran at (int8 where the request said auto on a CPU); the request
    keeps what was asked.
    """
    import datetime
    import platform

    from muse_cli import __version__
    from muse_cli.contracts import PROTOCOL_VERSION, record

    written = {
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
    if precision is not None:
        written["precision"] = precision
    return written

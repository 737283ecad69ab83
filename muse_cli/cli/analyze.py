"""`muse analyze`: a piano performance report from audio or MIDI, for a pianist or teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".mid", ".midi")

EXAMPLES = """\b
Examples:
  muse analyze performance.wav                    # table on stderr, performance.analysis.json
  muse analyze take1.flac take2.flac --plot --midi
  muse analyze recordings/ --out-dir reports --json
  muse analyze performance.wav --checkpoint ~/models/percepiano.msgpack   # + 19-D perceptual scores
  muse analyze take.wav --score exercise.mid --plot   # practice feedback against the score
"""


@app.command("analyze", epilog=EXAMPLES)
@o.shared("out_dir", "force", "backend", "json_out", "quiet", "debug")
def analyze(
    ctx: typer.Context,
    inputs: Annotated[List[Path], typer.Argument(metavar="FILE_OR_FOLDER", help="WAV, FLAC, OGG, MP3 or MIDI files, or folders of them.", show_default=False)],
    transcribe: Annotated[Optional[bool], typer.Option("--transcribe/--no-transcribe", help="Note transcription of audio (default: on when installed).", show_default=False)] = None,
    notes: Annotated[bool, typer.Option("--notes", help="Include every note in the JSON report.")] = False,
    midi: Annotated[bool, typer.Option("--midi", help="Write the transcription as <stem>.transcription.mid.")] = False,
    plot: Annotated[bool, typer.Option("--plot", help="Write <stem>.analysis.png: waveform, loudness, tempo, piano roll.")] = False,
    max_duration: Annotated[float, typer.Option("--max-duration", help="Longest input in seconds.")] = 1800.0,
    checkpoint: Annotated[Optional[str], typer.Option(help="Perceptual model checkpoint: a local file, or a name uploaded with `muse models upload piano`.", show_default=False)] = None,
    trust_checkpoint: o.TrustCheckpoint = False,
    score: Annotated[Optional[Path], typer.Option("--score", metavar="FILE", help="The score played (MIDI or MusicXML): wrong, missed and extra notes, timing, tempo, per bar (docs/practice.md).", show_default=False)] = None,
    onset_threshold: Annotated[float, typer.Option("--onset-threshold", metavar="0..1", help="Transcription: onset confidence (0..1) a note must reach to start.")] = 0.5,
    frame_threshold: Annotated[float, typer.Option("--frame-threshold", metavar="0..1", help="Transcription: note confidence (0..1) below which a note ends.")] = 0.3,
    minimum_note_length: Annotated[float, typer.Option("--minimum-note-length", help="Transcription: shortest note kept, in ms.")] = 58.0,
    *,
    shared: o.Shared,
) -> int:
    """Analyse piano performances: timing, dynamics, articulation, pedal, timbre, harmony, notes."""
    from muse_cli.backends import get_backend
    from muse_cli.errors import ExitCode, MuseError
    from muse_cli.kinds.analysis import KIND
    from muse_cli.output import Target

    ui, out_dir, force, backend, json_out = shared.ui, shared.out_dir, shared.force, shared.backend, shared.json_out
    request = KIND.request(
        transcribe=transcribe, notes=notes, midi=midi, plot=plot, max_duration=max_duration,
        checkpoint=checkpoint, trust_checkpoint=trust_checkpoint, score=_score_input(score), onset_threshold=onset_threshold,
        frame_threshold=frame_threshold, minimum_note_length=minimum_note_length,
    )
    files = _expand(inputs)
    _refuse_ignored(ctx, request, files, get_backend_name(backend))
    stems = _report_stems(files, out_dir)
    chosen = get_backend(backend)
    failures: list[tuple[Path, MuseError]] = []
    shown_notices: set[str] = set()
    for path in files:
        try:
            target = Target.plan(stem=stems[path], out_dir=out_dir or path.parent, force=force)
            with ui.progress(f"analysing {path.name}", total=1.0) as progress:
                outcome = KIND.run(request, chosen, progress, source=path)
            (saved,) = KIND.save(request, outcome, target, "analyze")
        except MuseError as exc:
            if len(files) == 1:
                raise
            ui.error(exc.message, exc.hint)
            failures.append((path, exc))
            continue
        for notice in outcome.notices + outcome.result.report.warnings:
            if notice not in shown_notices:
                ui.notice(notice)
                shown_notices.add(notice)
        _show(ui, outcome.result.report)
        paths = [str(p) for p in saved.outputs]
        if json_out:
            ui.print_json({**saved.summary["report"], "outputs": paths})
        else:
            ui.result(paths)
    if failures:
        ui.error(f"{len(failures)} of {len(files)} files could not be analysed: " + ", ".join(p.name for p, _ in failures))
        return ExitCode.FAILURE
    return ExitCode.OK


def _score_input(path: Path | None) -> dict[str, Any] | None:
    """--score PATH as the request's file field (its bytes and name); a missing file exits 2."""
    from muse_cli.errors import InputError
    from muse_cli.music.score import MAX_SCORE_BYTES

    if path is None:
        return None
    if not path.is_file():
        raise InputError(f"--score: {str(path)!r}: no such file")
    if path.stat().st_size > MAX_SCORE_BYTES:
        raise InputError(f"--score: {str(path)!r} is larger than {MAX_SCORE_BYTES // 2**20} MB")
    try:
        return {"name": path.name, "data": path.read_bytes()}
    except OSError as exc:
        raise InputError(f"--score: {str(path)!r}: cannot be read ({exc.strerror})") from None


def get_backend_name(backend: str) -> str:
    from muse_cli.backends import choose

    return choose(backend)


TRANSCRIPTION_OPTIONS = {
    "transcribe": "--transcribe/--no-transcribe", "midi": "--midi", "onset_threshold": "--onset-threshold",
    "frame_threshold": "--frame-threshold", "minimum_note_length": "--minimum-note-length",
}


def _refuse_ignored(ctx: Any, request: Any, files: list[Path], backend: str) -> None:
    """Options no input of this call would use exit 2 now, before any analysis runs."""
    from muse_cli.pipelines.analysis import MIDI_SUFFIXES
    from muse_cli.cli import conflicts

    def is_midi(path: Path) -> bool:
        if path.suffix.lower() in MIDI_SUFFIXES:
            return True
        with open(path, "rb") as handle:
            return handle.read(4) == b"MThd"

    if all(is_midi(p) for p in files):
        conflicts.not_with(ctx, "MIDI input", TRANSCRIPTION_OPTIONS, "the notes come from the MIDI itself")
        conflicts.not_with(ctx, "MIDI input", {"checkpoint": "--checkpoint", "trust_checkpoint": "--trust-checkpoint"},
                           "perceptual scores need audio")
    if request.transcribe is False:
        conflicts.not_with(ctx, "--no-transcribe", {k: v for k, v in TRANSCRIPTION_OPTIONS.items() if k != "transcribe"},
                           "they set the transcription")
    conflicts.needs(ctx, "--trust-checkpoint", "trust_checkpoint", "applies to a --checkpoint: give one", request.checkpoint is not None)
    if request.checkpoint is not None:
        _check_checkpoint(request.checkpoint, backend)


def _check_checkpoint(checkpoint: str, backend: str) -> None:
    """A checkpoint path must exist; a name must be found here when it runs here (on Modal it names
    a file on the weights Volume, which the call itself checks)."""
    import os

    from muse_cli.errors import InputError, Unavailable

    path = Path(checkpoint).expanduser()
    looks_like_path = os.sep in checkpoint or checkpoint.startswith(("~", ".")) or path.suffix in (".msgpack", ".safetensors", ".pkl", ".pickle", ".ckpt")
    if path.is_file():
        return
    if looks_like_path:
        raise InputError(f"--checkpoint {checkpoint!r}: no such file")
    if backend == "local":
        from muse_cli.engines.piano import resolve_checkpoint

        try:
            resolve_checkpoint(checkpoint)
        except Unavailable as exc:
            raise InputError(f"--checkpoint: {exc.message}") from None


def _expand(inputs: list[Path]) -> list[Path]:
    """Files as given; folders become their audio/MIDI files (sorted). Missing paths: exit 2."""
    from muse_cli.errors import InputError

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise InputError(f"folder {str(item)!r} has no audio or MIDI files ({', '.join(AUDIO_SUFFIXES)})")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{str(item)!r}: no such file or folder")
    return files


def _report_stems(files: list[Path], out_dir: Path | None) -> dict[Path, str]:
    """Each input's report stem: its own, or with its type added when another input's report
    would share the name (take.wav and take.mid -> take-wav, take-mid), so none is take-2."""
    from collections import Counter

    def place(path: Path) -> tuple[Path, str]:
        return ((out_dir or path.parent).resolve(), path.stem)

    shared = Counter(place(p) for p in files)
    return {p: p.stem if shared[place(p)] == 1 else f"{p.stem}-{p.suffix.lstrip('.').lower()}" for p in files}


AREAS = (
    ("timing", "timing"), ("dynamics", "loudness"), ("articulation", "articulation"),
    ("pedal", "pedal"), ("timbre", "timbre"), ("notes", "notes"),
)


def _show(ui: Any, report: Any) -> None:
    """The report as a table grouped by area: value with unit, and what it means in words."""
    from rich.table import Table

    from muse_cli.contracts import Measure

    table = Table(title=f"{report.source.name}", title_justify="left", show_lines=False)
    table.add_column("area", style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("reading", style="cyan")

    def row(area: str, name: str, m: Measure) -> None:
        value = "-" if m.value is None else (f"{m.value:g}" if isinstance(m.value, (int, float)) else str(m.value))
        table.add_row(area, name.replace("_", " "), f"{value} {m.unit}".strip(), m.reading or "")

    row("overall", "duration", report.duration_s)
    row("overall", "tempo", report.tempo_bpm)
    table.add_row("harmony", "key", report.key or "-", f"confidence {report.key_confidence.value:g}" if report.key_confidence.value is not None else "")
    for area, attr in AREAS:
        section = getattr(report, attr)
        for name, value in section:
            if isinstance(value, Measure):
                row(area, name, value)
    if report.perceptual:
        dims, mean, spread = report.perceptual["dimensions"], report.perceptual["mean"], report.perceptual["spread"]
        for dim, m, s in zip(dims, mean, spread):
            table.add_row("perceptual", dim.replace("_", " "), f"{m:.2f} ± {s:.2f}", "")
    else:
        table.add_row("perceptual", "19 PercePiano dimensions", "-", "absent: no model checkpoint (see docs/piano-model.md)")
    ui.rich(table)
    if report.score is not None:
        from muse_cli.pipelines.practice import score_tables

        for extra in score_tables(report.score):
            ui.rich(extra)

"""`muse analyze` for one input: read audio or MIDI, measure, transcribe, build the report, plot it.

The report (contracts.AnalysisReport, documented key by key in docs/analysis-schema.md) holds
measured values with units and a plain-words reading for a pianist or teacher. Audio gives every
measure; a MIDI performance gives the note-level ones (tempo, timing, articulation, pedal, notes,
key) straight from its notes, and no loudness or timbre.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from muse_cli.contracts import (
    AnalysisReport,
    AnalysisSource,
    AnalyzeRequest,
    ArticulationSection,
    AudioInput,
    Curve,
    LoudnessSection,
    Measure,
    NoteEvent,
    NotesSection,
    PedalSection,
    Swell,
    TimbreSection,
    TimingSection,
)
from muse_cli.errors import InputError, RuntimeFailure
from muse_cli.music import features as ft
from muse_cli.music.transcribe import Note
from muse_cli.progress import ProgressFn, null_progress

PerceptualFn = Callable[[np.ndarray, int], "Mapping[str, Any] | Any | None"]
"""perceptual(audio [channels, samples] float32, sample_rate) -> scores (a dict or a contract) or None."""

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
ENVELOPE_POINTS = 2000


@dataclass(frozen=True)
class Analysis:
    """A report plus what the outputs next to it are made from."""

    report: AnalysisReport
    notes: tuple[Note, ...] = ()
    midi: bytes | None = None  # the transcription, when request.midi
    png: bytes | None = None  # the plot, when request.plot
    envelope: np.ndarray | None = field(default=None, repr=False)  # [2, k] min/max of the mono waveform
    score_png: bytes | None = None  # the practice plot, when request.score and request.plot
    posteriors: Any = field(default=None, repr=False)  # transcribe.Posteriors of audio, when request.score


@dataclass(frozen=True)
class _Measured:
    """Raw numbers from either input kind, before units and readings are attached."""

    duration: float
    beats: np.ndarray
    notes: tuple[Note, ...]
    pedal_intervals: list[tuple[float, float]] | None = None
    integrated: float | None = None
    short_term: tuple[np.ndarray, np.ndarray] | None = None  # (times_s, LUFS), 3 s windows
    momentary: tuple[np.ndarray, np.ndarray] | None = None  # (times_s, LUFS), 0.4 s windows
    brightness: float | None = None
    chroma: np.ndarray | None = None


# ---------------------------------------------------------------------------------- entry point


def analyze_source(
    source: str | Path | bytes | AudioInput,
    request: AnalyzeRequest,
    perceptual: PerceptualFn | None = None,
    *,
    name: str | None = None,
    progress: ProgressFn = null_progress,
) -> Analysis:
    """Analyse one WAV/FLAC/OGG/MP3 recording or MIDI performance. Bad input raises InputError.

    `progress(done, 1.0)` reports the fraction done.
    """
    from muse_cli.pipelines import practice

    from muse_cli.ops import readiness

    data, label = _read_source(source, name)
    score = practice.read_request_score(request)  # a bad score is refused before any model runs
    audio = isinstance(data, Path) or not _is_midi(data, label)
    readiness.require("analysis", readiness.analysis(audio=audio, plot=request.plot),
                      modal_route=False)
    if isinstance(data, Path):  # audio on disk is decoded from the file, block by block
        analysis = _analyze_audio(data, label, request, perceptual, progress)
    elif _is_midi(data, label):
        analysis = _analyze_midi(data, label, request, perceptual is not None)
    else:
        analysis = _analyze_audio(data, label, request, perceptual, progress)
    return practice.attach(analysis, score, request) if score is not None else analysis


def _read_source(source: str | Path | bytes | AudioInput, name: str | None) -> tuple[bytes | Path, str]:
    """The input's bytes, or for an audio file on disk its path (it is read in blocks)."""
    if isinstance(source, AudioInput):
        return source.data, name or source.name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "input"
    path = Path(source)
    label = name or str(path)
    if not path.exists():
        raise InputError(f"{label}: file not found")
    if not path.is_file():
        raise InputError(f"{label}: is not a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        return (path.read_bytes() if _is_midi(head, label) else path), label
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc.strerror})") from None


def _is_midi(data: bytes, label: str) -> bool:
    return data.startswith(b"MThd") or label.lower().endswith(MIDI_SUFFIXES)


SERVER_MAX_DURATION_S = 1800.0
SERVER_MAX_DURATION_ENV = "MUSE_SERVE_MAX_DURATION"
"""The longest input an HTTP client may ask the server to analyse; the operator may change it."""


def server_max_duration() -> float:
    """The server's cap on `max_duration`: $MUSE_SERVE_MAX_DURATION seconds, else 1800."""
    import os

    text = os.environ.get(SERVER_MAX_DURATION_ENV, "").strip()
    try:
        value = float(text) if text else SERVER_MAX_DURATION_S
    except ValueError:
        value = SERVER_MAX_DURATION_S
    return value if math.isfinite(value) and value > 0 else SERVER_MAX_DURATION_S


def client_duration_problem(max_duration: float | None) -> str | None:
    """Why an HTTP client's `max_duration` is refused (above the server's cap), or None."""
    cap = server_max_duration()
    if max_duration is not None and max_duration > cap:
        return f"max_duration {max_duration:g} s is above this server's limit of {cap:g} s"
    return None


def _check_duration(label: str, duration: float, request: AnalyzeRequest) -> None:
    if duration > request.max_duration:
        raise InputError(
            f"{label}: is {duration:.0f} s long; at most {request.max_duration:.0f} s is analysed "
            "(raise --max-duration)"
        )


# ---------------------------------------------------------------------------------------- audio


BLOCK_S = 30.0
"""Audio is decoded and measured this many seconds at a time: memory does not grow with length."""
MODEL_QUEUE = 2
"""Mono blocks that may wait for the transcription model (each BLOCK_S of 22050 Hz float32)."""
MODEL_THREADS = max(1, os.cpu_count() or 1)
"""The transcription model's operator threads: every core. The model is the critical path: the
spectra, now one pass, finish long before it and the main thread then waits. On 2 cores a 3-minute
take with --score took 4.3-4.4 s with two threads against 5.3-5.5 s with one (same report)."""


def _analyze_audio(data, label, request, perceptual, progress) -> Analysis:
    """Two passes over the decoded audio, block by block (both decode the file again).

    Pass one: loudness, the 22050 Hz mono spectra (brightness, chroma, the mel maximum the onset
    envelope's floor needs) and the waveform outline, while the transcription model runs on the
    same mono blocks in a worker thread (onnxruntime releases the GIL, so the model and the
    spectra share the cores; at most MODEL_QUEUE blocks wait for it); the silence check follows.
    Pass two: the onset envelope. Only per-frame numbers are kept, and the posteriors go to a
    temporary file, so memory is flat in the input's length.
    """
    from concurrent.futures import ThreadPoolExecutor

    from muse_cli.music import audio as au
    from muse_cli.music import transcribe as tr

    reader = au.AudioReader(data, label)
    _check_duration(label, reader.duration, request)  # from the header, before decoding
    use_notes, warnings = _transcription_plan(request)
    sr = reader.sample_rate
    block = int(BLOCK_S * sr)
    limit = int(math.ceil(request.max_duration * sr))
    expected = max(1, reader.frames)

    stream = tr.PosteriorStream(threads=MODEL_THREADS) if use_notes else None
    model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="muse-transcription") if use_notes else None
    pending: list = []

    def transcribe(mono: np.ndarray) -> None:
        if stream is None or not len(mono):
            return
        while len(pending) >= MODEL_QUEUE:
            pending.pop(0).result()
        pending.append(model.submit(stream.add, mono.copy()))

    try:
        loudness, spectra, outline = ft.LoudnessStream(sr), ft.Spectra(), ft.Outline()
        resampler, peak, seen, mono_len = au.MonoResampler(sr, ft.ANALYSIS_RATE), 0.0, 0, 0
        for chunk in reader.blocks(block, limit):
            peak = max(peak, float(np.max(np.abs(chunk))))
            loudness.add(chunk)
            mono = resampler.add(au.to_mono(chunk)[0])
            transcribe(mono)
            spectra.add(mono)
            outline.add(mono)
            seen, mono_len = seen + chunk.shape[1], mono_len + len(mono)
            progress(0.6 * seen / expected, 1.0)
        mono = resampler.add(np.zeros(0, np.float32), last=True)
        transcribe(mono)
        spectra.add(mono)
        outline.add(mono)
        mono_len += len(mono)
        pad = np.zeros(max(0, ft.N_FFT - mono_len), np.float32)  # a clip shorter than one FFT frame
        spectra.add(pad)
        spectra.finish()
        if peak < 10 ** (-60 / 20):
            raise InputError(f"{label}: is silent (peak below -60 dBFS); nothing to analyse")

        onsets = spectra.onsets()  # from the spilled mel spectra: no second decode
        progress(0.85, 1.0)
        notes: tuple[Note, ...] = ()
        posteriors = None
        if stream is not None:
            while pending:
                pending.pop(0).result()
            decoding = tr.Decoding(onset_threshold=request.onset_threshold, frame_threshold=request.frame_threshold,
                                   min_note_s=request.minimum_note_length / 1000)
            notes = tuple(tr.notes_from_stream(stream.finish(), decoding))
            if request.score is not None:  # practice feedback reads them again where the score expects notes
                posteriors = stream.all()
            progress(0.9, 1.0)
    finally:
        if model is not None:
            model.shutdown(wait=True, cancel_futures=True)
        if stream is not None:
            stream.close()
    momentary = loudness.curve("momentary")
    measured = _Measured(
        duration=seen / sr,
        beats=ft.beat_times(onsets.onset_envelope()),
        notes=notes,
        integrated=ft.integrated(momentary[1]),
        short_term=loudness.curve("short_term"),
        momentary=momentary,
        brightness=spectra.brightness(),
        chroma=spectra.chroma,
    )
    scores = None
    if perceptual is not None:  # the perceptual model takes the whole recording (bounded by max_duration)
        scores = _scores(perceptual(reader.read_all(), sr))
    progress(0.95, 1.0)
    source = AnalysisSource(name=label, kind="audio", sample_rate=sr, channels=reader.channels)
    report = _report(source, measured, request, scores, tr.METHOD if use_notes else None, warnings)
    midi = _midi_bytes(measured.notes) if request.midi else None
    analysis = Analysis(report, measured.notes, midi, envelope=outline.envelope(ENVELOPE_POINTS), posteriors=posteriors)
    if request.plot:
        analysis = replace(analysis, png=plot_png(analysis))
    progress(1.0, 1.0)
    return analysis


def _transcription_plan(request: AnalyzeRequest) -> tuple[bool, list[str]]:
    """Whether to transcribe, and the warning to report when it is skipped."""
    from muse_cli.music.transcribe import unavailable_reason

    if request.transcribe is False:
        return False, ["transcription off: note, articulation and pedal measures are absent"]
    reason = unavailable_reason()
    if reason is None:
        return True, []
    if request.transcribe or request.midi or request.score is not None:
        raise RuntimeFailure(f"note transcription is unavailable: {reason}", hint=transcription_hint())
    return False, [f"no transcription ({reason}): note, articulation and pedal measures are absent"]


def transcription_hint() -> str:
    """The one step that makes transcription work here, for the reason it does not."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return "pip install 'muse-cli[analysis]', then muse models pull transcription"
    return "muse models pull transcription"


def _scores(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return dict(value)


# ----------------------------------------------------------------------------------------- MIDI


def _analyze_midi(data: bytes, label: str, request: AnalyzeRequest, wants_perceptual: bool) -> Analysis:
    from muse_cli.music.midi import load_midi

    pm = load_midi(data, label)
    duration = float(pm.get_end_time())
    _check_duration(label, duration, request)
    played = [inst for inst in pm.instruments if not inst.is_drum]
    notes = tuple(
        sorted(
            (Note(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for i in played for n in i.notes),
            key=lambda n: (n.onset, n.pitch),
        )
    )
    if not notes:
        raise InputError(f"{label}: has only drum notes; a piano performance is expected")
    pedal = [(float(c.time), int(c.value)) for i in played for c in i.control_changes if c.number == 64]
    beats = ft.beat_times(ft.notes_envelope(notes, duration), trim=False)
    # Untrimmed, the tracker may place beats in the silence before the first or after the last note.
    beats = beats[(beats >= notes[0].onset - 0.05) & (beats <= notes[-1].onset + 0.05)]
    measured = _Measured(
        duration=duration,
        beats=beats,
        notes=notes,
        pedal_intervals=ft.pedal_intervals(pedal, duration),
    )
    warnings = ["MIDI input: loudness and timbre need audio and are absent"]
    if wants_perceptual:
        warnings.append("MIDI input: perceptual scores need audio and are absent")
    if request.midi:
        warnings.append("MIDI input: no transcription MIDI is written (the input is MIDI already)")
    source = AnalysisSource(name=label, kind="midi")
    report = _report(source, measured, request, None, None, warnings)
    analysis = Analysis(report, notes)
    return replace(analysis, png=plot_png(analysis)) if request.plot else analysis


def _midi_bytes(notes: Sequence[Note]) -> bytes:
    from muse_cli.music.midi import midi_to_bytes
    from muse_cli.music.transcribe import to_midi

    return midi_to_bytes(to_midi(list(notes)))


# --------------------------------------------------------------------------------------- report


def _m(value: float | None, unit: str, reading: str | None = None, digits: int = 2, absent: str | None = None) -> Measure:
    """A measure; `absent` says why there is no value when there is none."""
    if value is None or not math.isfinite(value):
        return Measure(value=None, unit=unit, reading=absent)
    number = int(round(value)) if digits == 0 else round(float(value), digits)
    return Measure(value=number, unit=unit, reading=reading)


def _band(value: float | None, bands: Sequence[tuple[float, str]], above: str) -> str | None:
    """The word of the first band whose upper limit exceeds value."""
    if value is None:
        return None
    for limit, word in bands:
        if value < limit:
            return word
    return above


def _report(source, m: _Measured, request, scores, method, warnings) -> AnalysisReport:
    key, confidence = _key(m)
    tempo = ft.tempo_from_beats(m.beats)
    if tempo is None:
        warnings = [*warnings, "too few beats found to measure tempo and timing"]
    return AnalysisReport(
        source=source,
        duration_s=_m(m.duration, "s", f"{int(m.duration // 60)}:{int(m.duration % 60):02d}"),
        tempo_bpm=_m(tempo, "BPM", _tempo_words(tempo), 1),
        key=key,
        key_confidence=_m(confidence, "0-1", _band(confidence, [(0.2, "ambiguous"), (0.5, "probable")], "clear"), 3),
        loudness=_loudness(m),
        timing=_timing(m.beats),
        articulation=_articulation(m.notes),
        pedal=_pedal(m),
        timbre=_timbre(m),
        notes=_notes(m.notes, request.notes, key),
        perceptual=scores,
        transcription=method,
        warnings=list(warnings),
    )


def _key(m: _Measured) -> tuple[str | None, float | None]:
    from muse_cli.music.theory import estimate_key

    weights = ft.pitch_class_weights(m.notes) if m.notes else m.chroma
    if weights is None or not np.any(weights):
        return None, None
    key, confidence = estimate_key(weights)
    return key.name, confidence


def _tempo_words(bpm: float | None) -> str | None:
    bands = [(60, "very slow (largo)"), (76, "slow (adagio)"), (108, "walking pace (andante)"),
             (120, "moderate (moderato)"), (156, "fast (allegro)"), (176, "very fast (vivace)")]
    return _band(bpm, bands, "extremely fast (presto)")


def _loudness(m: _Measured) -> LoudnessSection:
    if m.short_term is None or m.momentary is None:
        none = _m(None, "count")
        return LoudnessSection(integrated=_m(None, "LUFS"), dynamic_range=_m(None, "dB"),
                               crescendos=none, diminuendos=none, curve=Curve(unit="LUFS"))
    times, lufs = m.short_term
    # Windows reaching into the lead-in silence or the final fade would read as swells.
    inner = ft.inside(times, ft.SHORT_TERM_WINDOW_S, ft.active_span(*m.momentary, ft.MOMENTARY_WINDOW_S))
    spans = ft.swells(times[inner], lufs[inner])
    rng = ft.dynamic_range(lufs[inner] if inner.sum() >= 2 else lufs)
    level = _band(m.integrated, [(-35, "very quiet recording"), (-23, "quiet recording"),
                                 (-12, "normal recording level")], "loud recording")
    contrast = _band(rng, [(3, "narrow: little dynamic contrast"), (8, "moderate dynamic range"),
                           (15, "wide dynamic range")], "very wide dynamic range")
    finite = np.isfinite(lufs)
    return LoudnessSection(
        integrated=_m(m.integrated, "LUFS", level, 1),
        dynamic_range=_m(rng, "dB", contrast, 1),
        crescendos=_m(*_swell_count(spans, "crescendo"), digits=0),
        diminuendos=_m(*_swell_count(spans, "diminuendo"), digits=0),
        swells=[Swell(kind=s.kind, start_s=round(s.start_s, 2), end_s=round(s.end_s, 2), size_db=s.size_db)
                for s in spans],
        curve=Curve(unit="LUFS", times_s=np.round(times[finite], 3).tolist(),
                    values=np.round(lufs[finite], 2).tolist()),
    )


def _swell_count(spans, kind: str) -> tuple[float, str, str]:
    sizes = [s.size_db for s in spans if s.kind == kind]
    if not sizes:
        return 0, "count", f"no {kind} of {ft.SWELL_MIN_DB:g} dB or more"
    return len(sizes), "count", f"{len(sizes)} {kind}{'s' if len(sizes) > 1 else ''}, largest {max(sizes):.1f} dB"


def _timing(beats: np.ndarray) -> TimingSection:
    variation = ft.timing_variation(beats)
    words = _band(variation, [(3, "very steady"), (6, "steady"), (10, "some rubato"), (20, "much rubato")],
                  "free or unsteady")
    times, bpm = ft.tempo_curve(beats)
    return TimingSection(
        steadiness=_m(variation, "%", words, 1),
        beats=_m(len(beats), "count", None, 0),
        tempo_curve=Curve(unit="BPM", times_s=np.round(times, 3).tolist(), values=np.round(bpm, 1).tolist()),
    )


def _articulation(notes: Sequence[Note]) -> ArticulationSection:
    ratios = ft.legato_ratios(notes)
    if ratios.size == 0:
        return ArticulationSection(legato_ratio=_m(None, "ratio"), staccato_share=_m(None, "%"))
    legato = float(np.median(ratios))
    staccato = 100.0 * float(np.mean(ratios < ft.STACCATO_RATIO))
    words = _band(legato, [(0.5, "staccato"), (0.7, "detached"), (0.9, "non-legato (slightly detached)"),
                           (1.25, "legato")], "overlapping (legatissimo or pedalled)")
    return ArticulationSection(
        legato_ratio=_m(legato, "ratio", words),
        staccato_share=_m(staccato, "%", _band(staccato, [(10, "few short notes"), (40, "some staccato")],
                                               "mostly staccato"), 1),
    )


def _pedal(m: _Measured) -> PedalSection:
    # MIDI key releases under a held pedal do not stop the sound: measure what sounds, as in audio.
    offsets = ft.pedal_extended_offsets(m.notes, m.pedal_intervals) if m.pedal_intervals and m.notes else None
    ratios = ft.legato_ratios(m.notes, offsets)
    overlap = 100.0 * float(np.mean(ratios > ft.OVERLAP_RATIO)) if ratios.size else None
    down = None
    if m.pedal_intervals is not None:
        down = 100.0 * ft.pedal_down_share(m.pedal_intervals, m.duration)
    return PedalSection(
        overlap_share=_m(overlap, "%", _band(overlap, [(10, "dry: notes rarely ring into the next"),
                                                       (40, "some sustain")], "much sustain (wet)"), 1),
        pedal_down_share=_m(down, "%", _band(down, [(10, "little or no pedal"), (50, "moderate pedal")],
                                             "much pedal"), 1, absent="measured from MIDI input only (CC64)"),
    )


def _timbre(m: _Measured) -> TimbreSection:
    spread = None
    if m.momentary is not None:
        kept = ft.gated(m.momentary[1])
        spread = float(kept.std()) if kept.size > 1 else None
    velocities = np.array([n.velocity for n in m.notes], dtype=float)
    vel_spread = float(velocities.std()) if velocities.size > 1 else None
    return TimbreSection(
        brightness=_m(m.brightness, "Hz", _band(m.brightness, [(800, "dark, warm"), (1500, "balanced"),
                                                               (2500, "bright")], "very bright"), 0),
        loudness_spread=_m(spread, "dB", _band(spread, [(2, "even"), (5, "varied")], "strongly varied"), 1),
        velocity_spread=_m(vel_spread, "velocity", _band(vel_spread, [(6, "even touch"), (14, "varied touch")],
                                                         "wide range of touch"), 1),
    )


def _notes(notes: Sequence[Note], with_events: bool, key: str | None = None) -> NotesSection:
    """Note statistics; pitch names spelled in the estimated key (Eb in Bb major, not D#)."""
    from muse_cli.music.theory import note_name, parse_key

    spelled = parse_key(key.replace(" minor", "m").replace(" major", "")) if key else None

    if not notes:
        blank = {k: _m(None, u) for k, u in (("count", "notes"), ("density", "notes/s"), ("polyphony", "notes"),
                                            ("max_polyphony", "notes"), ("lowest", "MIDI note"),
                                            ("highest", "MIDI note"), ("range", "semitones"))}
        return NotesSection(**blank, events=[] if with_events else None)
    density = ft.note_density(notes)
    mean_poly, max_poly = ft.polyphony(notes)
    low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
    events = [NoteEvent(onset=round(n.onset, 4), offset=round(n.offset, 4), pitch=n.pitch, velocity=n.velocity)
              for n in notes] if with_events else None
    return NotesSection(
        count=_m(len(notes), "notes", None, 0),
        density=_m(density, "notes/s", _band(density, [(2, "sparse"), (6, "moderate"), (12, "busy")], "very dense")),
        polyphony=_m(mean_poly, "notes", _band(mean_poly, [(1.5, "mostly a single line"), (3, "two or three voices")],
                                               "full chords and textures")),
        max_polyphony=_m(max_poly, "notes", None, 0),
        lowest=_m(low, "MIDI note", note_name(low, spelled), 0),
        highest=_m(high, "MIDI note", note_name(high, spelled), 0),
        range=_m(high - low, "semitones", f"{(high - low) / 12:.1f} octaves", 0),
        events=events,
    )


# ----------------------------------------------------------------------------------------- plot


def plot_png(analysis: Analysis) -> bytes:
    """Waveform, loudness curve, tempo curve and piano roll, stacked on one time axis, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    report = analysis.report
    names = plot_panels(analysis)
    heights = {"waveform": 1, "loudness": 1, "tempo": 1, "notes": 2}
    fig = Figure(figsize=(11, 2.25 * sum(heights[n] for n in names)), layout="constrained")
    axes = fig.subplots(len(names), 1, sharex=True, height_ratios=[heights[n] for n in names], squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        if name == "waveform":
            _plot_waveform(ax, analysis.envelope, report.duration_s.value or 0.0)
        elif name == "loudness":
            _plot_curve(ax, report.loudness.curve, "loudness (LUFS, 3 s)", "no audio: loudness not measured")
        elif name == "tempo":
            _plot_curve(ax, report.timing.tempo_curve, "tempo (BPM)", "too few beats for a tempo curve")
            if report.timing.tempo_curve.values:
                ax.set_ylim(*tempo_limits(report.timing.tempo_curve.values))
        else:
            _plot_roll(ax, analysis.notes)
    axes[-1].set_xlabel("time (s)")
    title = f"{Path(report.source.name).name}  ·  {report.key or 'key ?'}"
    if report.tempo_bpm.value:
        title += f"  ·  {report.tempo_bpm.value:.0f} BPM"
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot_panels(analysis: Analysis) -> list[str]:
    """The panels a plot has: MIDI input has no waveform or loudness, so it gets no empty panels."""
    audio = analysis.report.source.kind == "audio"
    return (["waveform", "loudness"] if audio else []) + ["tempo", "notes"]


TEMPO_AXIS_MIN_SPAN = 0.2
"""The tempo axis spans at least 20% of the median tempo (about ±10%), so a steady take's 94-97 BPM
wobble reads as the flat line it is; a real drift, wider than that, still fills the panel."""


def tempo_limits(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = float(min(values)), float(max(values))
    middle = float(np.median(values))
    half = max((hi - lo) / 2 * 1.15, TEMPO_AXIS_MIN_SPAN * middle / 2, 1.0)
    centre = (lo + hi) / 2 if hi - lo > TEMPO_AXIS_MIN_SPAN * middle else middle
    return centre - half, centre + half


def plot(analysis: Analysis, path: str | Path) -> Path:
    """Write the plot to `path` (callers wanting atomic writes use plot_png and their own writer)."""
    target = Path(path)
    target.write_bytes(analysis.png or plot_png(analysis))
    return target


def _plot_waveform(ax, envelope: np.ndarray | None, duration: float) -> None:
    ax.set_ylabel("waveform")
    if envelope is None:
        ax.text(0.5, 0.5, "MIDI input: no waveform", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return
    times = np.linspace(0, duration, envelope.shape[1])
    ax.fill_between(times, envelope[0], envelope[1], color="0.35", linewidth=0)


def _plot_curve(ax, curve: Curve, label: str, empty: str) -> None:
    ax.set_ylabel(label)
    if not curve.values:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return
    ax.plot(curve.times_s, curve.values, color="tab:blue")


def _plot_roll(ax, notes: Sequence[Note]) -> None:
    ax.set_ylabel("pitch (MIDI)")
    if not notes:
        ax.text(0.5, 0.5, "no notes (transcription off or unavailable)", ha="center", va="center",
                transform=ax.transAxes)
        return
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection

    boxes = [[(n.onset, n.pitch - 0.4), (n.offset, n.pitch - 0.4), (n.offset, n.pitch + 0.4),
              (n.onset, n.pitch + 0.4)] for n in notes]
    colours = colormaps["viridis"]([n.velocity / 127 for n in notes])
    ax.add_collection(PolyCollection(boxes, facecolors=colours, edgecolors="white", linewidths=0.3))
    pitches = [n.pitch for n in notes]
    ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlim(0, max(max(n.offset for n in notes), ax.get_xlim()[1]))

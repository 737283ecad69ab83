"""Practice feedback (`muse analyze --score`): the performance's notes against the score's.

`score_section` turns an alignment (muse_cli/music/score.py) into the report's `score` section:
counts and accuracy, onset deviations, tempo against the marking, dynamics and articulation
against what is written, and one line per bar a teacher would say ("bar 5: 1 wrong note (E4 for
F4), 2 notes late by 60-90 ms"). Every key is described in docs/analysis-schema.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from muse_cli.contracts import (
    BarFeedback,
    ExtraNote,
    Measure,
    Passage,
    ScoreArticulation,
    ScoreCounts,
    ScoreDynamics,
    ScoreNoteResult,
    ScoreSection,
    ScoreSource,
    ScoreTempo,
    ScoreTiming,
    TempoPoint,
)
from muse_cli.music.score import (
    ARTIFACT_KINDS,
    Alignment,
    Evidence,
    PlayedNote,
    Score,
    align,
    align_transcribed,
    read_score,
    spell,
)

METHOD = "DTW on onset chroma, then pitch-wise note matching with a local tempo fit"
ARTIFACT_WORDS = {  # (one, several) per kind of transcription artifact (score.find_artifacts)
    "overtone": ("{} overtone of a louder note", "{} overtones of louder notes"),
    "undertone": ("{} octave-below echo of a louder note", "{} octave-below echoes of louder notes"),
    "retrigger": ("{} second onset inside one note", "{} second onsets inside notes"),
}
TIMING_FLAG_MS = 50.0  # a note off by more than this is named early or late in its bar
PASSAGE_CHANGE = 0.06  # a bar 6 % faster (slower) than the performance's own tempo rushes (drags)
LOUDER = 8.0  # velocity units: the mean difference beyond which the take is louder or softer


def read_request_score(request: Any):
    """The request's score, read and checked (bad input raises InputError before any model runs)."""
    if request.score is None:
        return None
    return read_score(request.score.data, request.score.name)


def attach(analysis: Any, score: Score, request: Any) -> Any:
    """The analysis with its report's `score` section and, with request.plot, the practice plot."""
    played = [PlayedNote(n.onset, n.offset, n.pitch, n.velocity) for n in analysis.notes]
    audio = analysis.report.source.kind == "audio"
    counts: dict[str, int] = {}
    if audio:
        played, alignment, counts = align_transcribed(score, played, _evidence(analysis.posteriors))
    else:
        alignment = align(score, played)
    section = score_section(score, played, alignment, with_notes=request.notes, audio=audio)
    report = analysis.report.model_copy(update={"score": section})
    warnings = list(report.warnings)
    if not played:
        warnings.append("no notes were found in the performance: every score note is missed")
    if audio:
        warnings.append("score feedback from audio rests on the transcription: see docs/practice.md for its limits")
    artifacts = {kind: counts.get(kind, 0) for kind in ARTIFACT_KINDS if counts.get(kind, 0)}
    if artifacts:
        total = sum(artifacts.values())
        warnings.append(f"{_plural(total, 'transcribed note')} {'was' if total == 1 else 'were'} read as transcription "
                        "artifacts, not extra notes: " + ", ".join(ARTIFACT_WORDS[kind][n != 1].format(n)
                                                                   for kind, n in artifacts.items()))
    if counts.get("rescued"):
        n = counts["rescued"]
        warnings.append(f"{_plural(n, 'score note')} the transcription left out {'was' if n == 1 else 'were'} found in "
                        "its onset evidence where the score expects {}".format("it" if n == 1 else "them"))
    report = report.model_copy(update={"warnings": warnings})
    analysis = replace(analysis, report=report, posteriors=None)
    if request.plot:
        from muse_cli.pipelines.practice_plot import practice_png

        analysis = replace(analysis, score_png=practice_png(score, played, alignment, section, report.source.name))
    return analysis


def _evidence(posteriors: Any) -> Evidence | None:
    """The transcription's posteriors as alignment evidence (None when the analysis kept none)."""
    if posteriors is None:
        return None
    from muse_cli.music.transcribe import FPS, LOWEST_PITCH

    return Evidence(posteriors.onset, posteriors.frame, FPS, LOWEST_PITCH)


def _m(value: float | None, unit: str, reading: str | None = None, digits: int = 1, absent: str | None = None) -> Measure:
    if value is None or not math.isfinite(value):
        return Measure(value=None, unit=unit, reading=absent)
    return Measure(value=int(round(value)) if digits == 0 else round(float(value), digits), unit=unit, reading=reading)


def score_section(score: Score, played: Sequence[PlayedNote], al: Alignment, *, with_notes: bool = False,
                  audio: bool = False) -> ScoreSection:
    """The report's `score` section. `audio`: the notes are transcribed, so their velocities are
    the model's estimate, comparable in shape (louder here than there) but not in level."""
    n = len(score.notes)
    status = al.score_status
    counts = ScoreCounts(
        score_notes=n, played=status.count("played"), wrong_pitch=status.count("wrong"),
        missed=status.count("missed"), extra=al.played_status.count("extra"),
    )
    accuracy = 100.0 * counts.played / max(n + counts.extra, 1)
    accuracy_words = ("all notes right" if accuracy >= 99.95 else "nearly all notes right" if accuracy >= 95
                      else "most notes right" if accuracy >= 80 else "many notes wrong or missing")
    dev_ms = np.array([1000 * d for d in al.deviation if d is not None])
    extra_bars = _extra_bars(score, played, al)
    bars = _bars(score, played, al, extra_bars)
    first = score.bars[0]
    return ScoreSection(
        source=ScoreSource(
            name=score.name, kind=score.kind, notes=n, bars=len({b.number for b in score.bars}),
            time_signature=f"{first.beats}/{first.beat_unit}", pickup=first.number == 0, key_signature=score.key_fifths,
        ),
        alignment=METHOD,
        counts=counts,
        accuracy=_m(accuracy, "%", f"{accuracy_words}: {counts.played} of {n} score notes played right"
                    + (f", {counts.extra} extra" if counts.extra else "")),
        timing=_timing(dev_ms, bars),
        tempo=_tempo(score, al),
        dynamics=_dynamics(score, played, al, audio),
        articulation=_articulation(score, played, al),
        bars=bars,
        notes=_note_results(score, played, al) if with_notes else None,
        extra_notes=[ExtraNote(bar=b, pitch=played[j].pitch, name=spell(played[j].pitch, score.key_fifths),
                               onset_s=round(played[j].onset, 4)) for j, b in extra_bars.items()] if with_notes else None,
    )


# ------------------------------------------------------------------------------------ sections


def _timing(dev_ms: np.ndarray, bars: list[BarFeedback]) -> ScoreTiming:
    if dev_ms.size == 0:
        none = _m(None, "ms", absent="no score note was played")
        return ScoreTiming(median_deviation=none, deviation_spread=none, early_notes=_m(None, "notes"),
                           late_notes=_m(None, "notes"))
    median = float(np.median(dev_ms))
    spread = float(1.4826 * np.median(np.abs(dev_ms - median))) if dev_ms.size > 1 else 0.0
    lean = "on the beat" if abs(median) < 10 else ("ahead of the beat" if median < 0 else "behind the beat")
    even = ("very even" if spread < 15 else "even" if spread < 30 else "uneven" if spread < 60 else "very uneven")
    early, late = int(np.sum(dev_ms < -TIMING_FLAG_MS)), int(np.sum(dev_ms > TIMING_FLAG_MS))
    return ScoreTiming(
        median_deviation=_m(median, "ms", lean),
        deviation_spread=_m(spread, "ms", f"{even} note placement"),
        early_notes=_m(early, "notes", f"more than {TIMING_FLAG_MS:g} ms early", 0),
        late_notes=_m(late, "notes", f"more than {TIMING_FLAG_MS:g} ms late", 0),
        passages=_passages(bars),
    )


def _local_bpm(score: Score, al: Alignment, t: float | np.ndarray) -> Any:
    slope = np.interp(t, al.map_score, al.slope)
    return (score.tempo or 120.0) / np.maximum(slope, 1e-6)


def _overall_bpm(score: Score, al: Alignment) -> float | None:
    pairs = [(score.notes[i].onset, j) for i, j in enumerate(al.score_match) if j is not None]
    if len(pairs) < 2:
        return None
    s = np.array([p[0] for p in pairs])
    if np.ptp(s) <= 0:
        return None
    perf = np.interp(s, al.map_score, al.map_perf)
    slope = float(np.polyfit(s, perf, 1)[0])
    return (score.tempo or 120.0) / slope if slope > 0 else None


def _tempo(score: Score, al: Alignment) -> ScoreTempo:
    performed = _overall_bpm(score, al)
    marked = score.tempo
    ratio = 100.0 * performed / marked if (performed and marked) else None
    words = None
    if ratio is not None:
        words = ("as marked" if abs(ratio - 100) < 3 else
                 f"{abs(ratio - 100):.0f} % {'faster' if ratio > 100 else 'slower'} than marked")
    curve = []
    first, last = score.notes[0].onset, max(n.onset for n in score.notes)
    for bar in score.bars:
        beat_len = (bar.end - bar.start) / bar.beats if math.isfinite(bar.end) else 0.0
        for b in range(bar.beats):
            t = bar.start + b * beat_len
            if first - 1e-6 <= t <= last + 1e-6:
                curve.append(TempoPoint(bar=bar.number, beat=b + 1.0, bpm=round(float(_local_bpm(score, al, t)), 1)))
    return ScoreTempo(
        marked=_m(marked, "BPM", "quarter notes per minute, as written", absent="the score marks no tempo"),
        performed=_m(performed, "BPM", "the take's average tempo, quarter notes per minute",
                     absent="too few notes played to measure"),
        ratio=_m(ratio, "%", words, absent="needs a marked tempo" if marked is None else "not measurable"),
        curve=curve,
    )


def _dynamics(score: Score, played: Sequence[PlayedNote], al: Alignment, audio: bool) -> ScoreDynamics:
    pairs = [(score.notes[i], played[j]) for i, j in enumerate(al.score_match)
             if j is not None and score.notes[i].velocity is not None]
    if not score.velocities or len(pairs) < 2:
        absent = "the score writes no dynamics" if not score.velocities else "too few notes played"
        return ScoreDynamics(velocity_offset=_m(None, "velocity", absent=absent),
                             shape_correlation=_m(None, "-1..1", absent=absent))
    offset = float(np.mean([p.velocity - s.velocity for s, p in pairs]))
    words = ("louder than written" if offset > LOUDER else "softer than written" if offset < -LOUDER
             else "as loud as written")
    by_bar: dict[int, list[tuple[int, int]]] = {}
    for s, p in pairs:
        by_bar.setdefault(s.bar, []).append((s.velocity, p.velocity))
    written = np.array([np.mean([w for w, _ in v]) for v in by_bar.values()])
    performed = np.array([np.mean([q for _, q in v]) for v in by_bar.values()])
    corr = None
    if len(by_bar) >= 3 and written.std() > 1e-6 and performed.std() > 1e-6:
        corr = float(np.corrcoef(written, performed)[0, 1])
    shape = None if corr is None else ("follows the written dynamics" if corr >= 0.7 else
                                       "partly follows the written dynamics" if corr >= 0.3 else
                                       "does not follow the written dynamics")
    return ScoreDynamics(
        velocity_offset=_m(None if audio else offset, "velocity", words,
                           absent="audio: transcribed velocities have no absolute level; see the shape"),
        shape_correlation=_m(corr, "-1..1", shape, 2, absent="the written dynamics do not change over 3 bars or more"),
    )


def _articulation(score: Score, played: Sequence[PlayedNote], al: Alignment) -> ScoreArticulation:
    ratios = []
    for i, j in enumerate(al.score_match):
        if j is None or al.score_status[i] != "played":
            continue
        note = score.notes[i]
        written = (note.offset - note.onset) * float(np.interp(note.onset, al.map_score, al.slope))
        if written > 1e-3:
            ratios.append((played[j].offset - played[j].onset) / written)
    if not ratios:
        return ScoreArticulation(duration_ratio=_m(None, "ratio", absent="no score note was played"))
    ratio = float(np.median(ratios))
    words = ("more legato (held longer) than written" if ratio > 1.15 else
             "more detached (shorter) than written" if ratio < 0.85 else "note lengths as written")
    return ScoreArticulation(duration_ratio=_m(ratio, "ratio", words, 2))


# ----------------------------------------------------------------------------------- per bar


def _extra_bars(score: Score, played: Sequence[PlayedNote], al: Alignment) -> dict[int, int]:
    """Performed index -> bar number, for extra notes (placed through the inverse of the map)."""
    out = {}
    for j, s in enumerate(al.played_status):
        if s == "extra":
            t = float(np.interp(played[j].onset, al.map_perf, al.map_score))
            out[j] = score.bar_at(t).number
    return out


def _bars(score: Score, played: Sequence[PlayedNote], al: Alignment, extra_bars: dict[int, int]) -> list[BarFeedback]:
    numbers = []
    for b in score.bars:
        if b.number not in numbers:
            numbers.append(b.number)
    rows: dict[int, dict[str, Any]] = {k: {"notes": 0, "played": 0, "wrong": [], "missed": [], "extra": [],
                                           "dev": []} for k in numbers}
    for i, note in enumerate(score.notes):
        row = rows.setdefault(note.bar, {"notes": 0, "played": 0, "wrong": [], "missed": [], "extra": [], "dev": []})
        row["notes"] += 1
        state = al.score_status[i]
        if state == "played":
            row["played"] += 1
        elif state == "wrong":
            got = played[al.score_match[i]].pitch
            row["wrong"].append(f"{spell(got, score.key_fifths)} for {note.name}")
        else:
            row["missed"].append(note.name)
        if al.deviation[i] is not None:
            row["dev"].append(1000 * al.deviation[i])
    for j, bar in extra_bars.items():
        rows.setdefault(bar, {"notes": 0, "played": 0, "wrong": [], "missed": [], "extra": [], "dev": []})
        rows[bar]["extra"].append(spell(played[j].pitch, score.key_fifths))
    starts = {}
    for b in score.bars:
        starts.setdefault(b.number, b)
    out = []
    for number in sorted(rows):
        row = rows[number]
        dev = np.array(row["dev"])
        early = sorted(round(float(d)) for d in dev if d < -TIMING_FLAG_MS)
        late = sorted(round(float(d)) for d in dev if d > TIMING_FLAG_MS)
        bar = starts.get(number)
        bpm = None
        if bar is not None and row["notes"] and math.isfinite(bar.end):
            bpm = round(float(np.mean(_local_bpm(score, al, np.linspace(bar.start, bar.end, 5)))), 1)
        out.append(BarFeedback(
            bar=number, notes=row["notes"], played=row["played"], wrong_pitch=row["wrong"], missed=row["missed"],
            extra=row["extra"], early=[float(e) for e in early], late=[float(v) for v in late],
            median_deviation_ms=round(float(np.median(dev)), 1) if dev.size else None, tempo_bpm=bpm,
            summary=_summary(number, row, early, late),
        ))
    return out


def _plural(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _span(values: list[int]) -> str:
    lo, hi = min(abs(v) for v in values), max(abs(v) for v in values)
    return f"{lo} ms" if lo == hi else f"{lo}–{hi} ms"


def _summary(number: int, row: dict[str, Any], early: list[int], late: list[int]) -> str:
    parts = []
    if row["wrong"]:
        parts.append(f"{_plural(len(row['wrong']), 'wrong note')} ({', '.join(row['wrong'])})")
    if row["missed"]:
        parts.append(f"{_plural(len(row['missed']), 'missed note')} ({', '.join(row['missed'])})")
    if row["extra"]:
        parts.append(f"{_plural(len(row['extra']), 'extra note')} ({', '.join(row['extra'])})")
    if late:
        parts.append(f"{_plural(len(late), 'note')} late by {_span(late)}")
    if early:
        parts.append(f"{_plural(len(early), 'note')} early by {_span(early)}")
    return f"bar {number}: " + (", ".join(parts) if parts else "as written")


def _passages(bars: list[BarFeedback]) -> list[Passage]:
    """Runs of bars faster (slower) than the performance's own median bar tempo."""
    tempi = [b.tempo_bpm for b in bars if b.tempo_bpm]
    if len(tempi) < 3:
        return []
    reference = float(np.median(tempi))
    out: list[Passage] = []
    run: list[tuple[int, float]] = []
    kind = None
    for b in [*bars, None]:
        change = None if b is None or not b.tempo_bpm else b.tempo_bpm / reference - 1
        this = None if change is None else "rushing" if change > PASSAGE_CHANGE else "dragging" if change < -PASSAGE_CHANGE else None
        if this != kind and run:
            out.append(Passage(kind=kind, first_bar=run[0][0], last_bar=run[-1][0],
                               tempo_change=round(100 * float(np.mean([c for _, c in run])), 1)))
            run = []
        kind = this
        if this is not None:
            run.append((b.bar, change))
    return out


def _note_results(score: Score, played: Sequence[PlayedNote], al: Alignment) -> list[ScoreNoteResult]:
    out = []
    for i, note in enumerate(score.notes):
        j = al.score_match[i]
        state = {"played": "played", "wrong": "wrong_pitch", "missed": "missed"}[al.score_status[i]]
        out.append(ScoreNoteResult(
            bar=note.bar, beat=note.beat, pitch=note.pitch, name=note.name, status=state,
            played_pitch=played[j].pitch if j is not None else None,
            played_name=spell(played[j].pitch, score.key_fifths) if j is not None else None,
            onset_s=round(played[j].onset, 4) if j is not None else None,
            deviation_ms=round(1000 * al.deviation[i], 1) if al.deviation[i] is not None else None,
        ))
    return out


# ------------------------------------------------------------------------------------ terminal

MAX_BAR_ROWS = 24


def score_tables(section: ScoreSection) -> list[Any]:
    """Rich tables for the terminal: the overall figures, then the bars that need practice."""
    from rich.table import Table

    overall = Table(title=f"against the score {section.source.name}", title_justify="left")
    overall.add_column("area", style="bold")
    overall.add_column("measure")
    overall.add_column("value", justify="right")
    overall.add_column("reading", style="cyan")

    def row(area: str, name: str, m: Measure) -> None:
        value = "-" if m.value is None else f"{m.value:g}"
        overall.add_row(area, name, f"{value} {m.unit}".strip(), m.reading or "")

    c = section.counts
    overall.add_row("notes", "played right", f"{c.played} of {c.score_notes}", "")
    overall.add_row("notes", "wrong pitch", str(c.wrong_pitch), "")
    overall.add_row("notes", "missed", str(c.missed), "")
    overall.add_row("notes", "extra", str(c.extra), "")
    row("notes", "accuracy", section.accuracy)
    row("timing", "median onset deviation", section.timing.median_deviation)
    row("timing", "deviation spread", section.timing.deviation_spread)
    row("timing", "early notes", section.timing.early_notes)
    row("timing", "late notes", section.timing.late_notes)
    for p in section.timing.passages:
        bars = f"bar {p.first_bar}" if p.first_bar == p.last_bar else f"bars {p.first_bar}–{p.last_bar}"
        overall.add_row("timing", p.kind, bars, f"{p.tempo_change:+.0f} % against your own tempo")
    row("tempo", "marked", section.tempo.marked)
    row("tempo", "performed", section.tempo.performed)
    row("tempo", "performed / marked", section.tempo.ratio)
    row("dynamics", "velocity against written", section.dynamics.velocity_offset)
    row("dynamics", "shape against written", section.dynamics.shape_correlation)
    row("articulation", "length against written", section.articulation.duration_ratio)
    flagged = [b for b in section.bars if not b.summary.endswith(": as written")]
    tables = [overall]
    if flagged:
        bars = Table(title="bars to practise", title_justify="left", show_header=False)
        bars.add_column("bar")
        for b in flagged[:MAX_BAR_ROWS]:
            bars.add_row(b.summary)
        if len(flagged) > MAX_BAR_ROWS:
            bars.add_row(f"... and {len(flagged) - MAX_BAR_ROWS} more bars (see the JSON report)")
        tables.append(bars)
    return tables

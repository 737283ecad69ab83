"""The practice plot (`muse analyze take.wav --score piece.mid --plot` -> <stem>.score.png).

Top: a piano roll on the score's time axis, in bars. Score notes are outlined; what was played is
filled on top, coloured by what it was: right (green), wrong pitch (orange, drawn at the pitch
played, joined to the written note), extra (red). Missed score notes are outlined in red with no
fill. Below: each bar's median onset deviation, with the range of its notes, in ms.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

from muse_cli.contracts import ScoreSection
from muse_cli.music.score import ARTIFACT_KINDS, Alignment, PlayedNote, Score

COLOURS = {"played": "#2ca02c", "wrong": "#ff7f0e", "extra": "#d62728", "missed": "#d62728", "score": "0.25"}
MAX_BAR_LABELS = 40


def practice_png(score: Score, played: Sequence[PlayedNote], al: Alignment, section: ScoreSection, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    width = float(np.clip(6 + len(score.bars) * 0.35, 11, 40))
    fig = Figure(figsize=(width, 7.5), layout="constrained")
    roll, timing = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    to_score = _warp(al.map_perf, al.map_score)
    pitches = [n.pitch for n in score.notes] + [p.pitch for p in played]
    _draw_roll(roll, score, played, al, to_score)
    roll.set_ylim(min(pitches) - 1.5, max(pitches) + 1.5)
    roll.set_ylabel("pitch")
    _pitch_ticks(roll, min(pitches), max(pitches))
    handles = [
        Patch(facecolor="none", edgecolor=COLOURS["score"], label="score note (outline)"),
        Patch(facecolor=COLOURS["played"], label="played right"),
        Patch(facecolor=COLOURS["wrong"], label="wrong pitch (at the pitch played)"),
        Patch(facecolor=COLOURS["extra"], label="extra note"),
        Patch(facecolor="none", edgecolor=COLOURS["missed"], linewidth=2, label="missed"),
    ]
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncols=5, frameon=False)
    _draw_timing(timing, score, al, section)
    _bar_axis(timing, score)
    for ax in (roll, timing):
        _bar_lines(ax, score)
    c = section.counts
    fig.suptitle(f"{title}  against  {score.name}  ·  {section.accuracy.value:g} % right  ·  "
                 f"{c.wrong_pitch} wrong, {c.missed} missed, {c.extra} extra")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _warp(map_perf: Sequence[float], map_score: Sequence[float]):
    """Performance time -> score time along the alignment's map, extended past both ends at the
    map's overall rate, so the last note's release is not clamped onto its onset."""
    xp, fp = np.asarray(map_perf, dtype=float), np.asarray(map_score, dtype=float)
    span = xp[-1] - xp[0] if len(xp) > 1 else 0.0
    rate = (fp[-1] - fp[0]) / span if span > 0 else 1.0

    def to_score(t: float) -> float:
        if t > xp[-1]:
            return float(fp[-1] + (t - xp[-1]) * rate)
        if t < xp[0]:
            return float(fp[0] - (xp[0] - t) * rate)
        return float(np.interp(t, xp, fp))

    return to_score


def _box(onset: float, offset: float, pitch: float, pad: float = 0.38):
    return [(onset, pitch - pad), (offset, pitch - pad), (offset, pitch + pad), (onset, pitch + pad)]


def _draw_roll(ax, score: Score, played, al: Alignment, to_score) -> None:
    from matplotlib.collections import LineCollection, PolyCollection

    outlines, outline_colours, widths = [], [], []
    for note, state in zip(score.notes, al.score_status):
        outlines.append(_box(note.onset, note.offset, note.pitch, 0.45))
        outline_colours.append(COLOURS["missed"] if state == "missed" else COLOURS["score"])
        widths.append(1.8 if state == "missed" else 0.8)
    fills, fill_colours, links = [], [], []
    for j, p in enumerate(played):
        state = al.played_status[j]
        if state in ARTIFACT_KINDS:  # a transcription artifact, no key press: not drawn
            continue
        start, end = to_score(p.onset), to_score(p.offset)
        fills.append(_box(start, max(end, start + 0.05), p.pitch, 0.32))
        fill_colours.append(COLOURS["played" if state == "correct" else state])
    for i, j in enumerate(al.score_match):
        if j is not None and al.score_status[i] == "wrong":
            t = to_score(played[j].onset)
            links.append([(t, played[j].pitch), (t, score.notes[i].pitch)])
    ax.add_collection(PolyCollection(fills, facecolors=fill_colours, edgecolors="none", alpha=0.85))
    ax.add_collection(PolyCollection(outlines, facecolors="none", edgecolors=outline_colours, linewidths=widths))
    if links:
        ax.add_collection(LineCollection(links, colors=COLOURS["wrong"], linewidths=1.2, linestyles="dotted"))
    end = max([n.offset for n in score.notes] + [f[1][0] for f in fills])
    ax.set_xlim(score.notes[0].onset - 0.2, end + 0.2)


def _pitch_ticks(ax, low: int, high: int) -> None:
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"]
    step = 12 if high - low > 30 else 4 if high - low > 12 else 1
    ticks = [p for p in range(low, high + 1) if (p % 12 == 0 if step == 12 else (p - low) % step == 0)]
    ax.set_yticks(ticks, [f"{names[p % 12]}{p // 12 - 1}" for p in ticks])


def _draw_timing(ax, score: Score, al: Alignment, section: ScoreSection) -> None:
    starts = {}
    for b in score.bars:
        starts.setdefault(b.number, b)
    xs, medians, lows, highs = [], [], [], []
    devs_by_bar: dict[int, list[float]] = {}
    for note, dev in zip(score.notes, al.deviation):
        if dev is not None:
            devs_by_bar.setdefault(note.bar, []).append(1000 * dev)
    for row in section.bars:
        bar = starts.get(row.bar)
        if bar is None or row.median_deviation_ms is None or not math.isfinite(bar.end):
            continue
        xs.append((bar.start + bar.end) / 2)
        medians.append(row.median_deviation_ms)
        spread = devs_by_bar.get(row.bar) or [*row.early, *row.late, row.median_deviation_ms]
        lows.append(min(spread))
        highs.append(max(spread))
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.set_ylabel("timing (ms)\n< early · late >")
    if not xs:
        ax.text(0.5, 0.5, "no notes played", ha="center", va="center", transform=ax.transAxes)
        return
    xs_a, med = np.array(xs), np.array(medians)
    colours = ["#1f77b4" if m < 0 else "#9467bd" for m in med]
    widths = [(starts[r.bar].end - starts[r.bar].start) * 0.6 for r in section.bars
              if r.bar in starts and r.median_deviation_ms is not None and math.isfinite(starts[r.bar].end)]
    ax.bar(xs_a, med, width=widths, color=colours, alpha=0.8)
    ax.vlines(xs_a, lows, highs, color="0.3", linewidth=0.8)
    limit = max(60.0, float(np.max(np.abs([*lows, *highs]))) * 1.1)
    ax.set_ylim(-limit, limit)
    for y in (-50, 50):
        ax.axhline(y, color="0.7", linewidth=0.6, linestyle="dashed")


def _bar_lines(ax, score: Score) -> None:
    for b in score.bars:
        ax.axvline(b.start, color="0.85", linewidth=0.6, zorder=0)


def _bar_axis(ax, score: Score) -> None:
    seen, ticks, labels = set(), [], []
    every = max(1, math.ceil(len(score.bars) / MAX_BAR_LABELS))
    for k, b in enumerate(score.bars):
        if b.number in seen or k % every:
            continue
        seen.add(b.number)
        ticks.append(b.start)
        labels.append(str(b.number))
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("bar")

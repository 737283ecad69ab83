"""How many planted performance faults `muse analyze --score` finds, and how fast (issue 16).

Scores: etudes of every difficulty (the built-in composer) and real pieces from the music21
corpus (`pip install music21`, part of the `score` extra). Each score becomes a performance with
known faults: about 5 % of notes at a wrong pitch (1 or 2 semitones off), 5 % missed, 3 % extra
(stray notes away from any written note of their pitch), onset jitter of sigma 30 ms, and a tempo
drift from 10 % slow to 10 % fast over the piece. Each performance is analysed as MIDI and as
audio (FluidSynth with a GM SoundFont where one is found, else the built-in synth; transcribed
by the bundled basic-pitch model).

Counted per input kind:
- found: planted faults reported as that fault (a wrong pitch as a wrong pitch, ...);
- false alarms: wrong/missed/extra reports where nothing was planted, as a share of score notes;
- onset error: median |reported onset deviation - planted jitter| over notes played right.

Then the whole process `muse analyze take.wav --score piece.mid` (a fresh interpreter) is timed
on a 3-minute piece, for MIDI and for audio input.

    python benchmarks/bench_score_feedback.py            # the table (a few minutes on 2 cores)
    python benchmarks/bench_score_feedback.py --quick    # fewer pieces, no audio
    python benchmarks/bench_score_feedback.py --compare  # also parangonar's matcher, where installed
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from muse_cli.music.score import PlayedNote, Score, align  # noqa: E402

CORPUS = ("mozart/k545", "joplin/maple_leaf_rag", "bach/bwv66.6", "haydn/opus74no1/movement1")
WRONG, MISSED, EXTRA = 0.05, 0.05, 0.03
JITTER_S = 0.030
DRIFT = 0.10


@dataclass
class Planted:
    played: list[PlayedNote]
    status: list[str]  # per score note: played / wrong / missed
    extra: list[bool]  # per performed note
    jitter: list[float | None]  # per score note: planted onset offset (seconds of performance time)


def plant(score: Score, rng: np.random.Generator) -> Planted:
    notes = score.notes
    n = len(notes)
    length = max(score.duration, 1e-3)

    def warp(t: float) -> float:  # rate goes linearly from 1 + DRIFT (slow) to 1 - DRIFT (fast)
        u = t / length
        return length * (u * (1 + DRIFT) - DRIFT * u * u)

    order = rng.permutation(n)
    n_wrong, n_missed = round(WRONG * n), round(MISSED * n)
    status = ["played"] * n
    for i in order[:n_wrong]:
        status[i] = "wrong"
    for i in order[n_wrong:n_wrong + n_missed]:
        status[i] = "missed"
    onsets = np.array([x.onset for x in notes])
    pitches = np.array([x.pitch for x in notes])
    played: list[PlayedNote] = []
    extra: list[bool] = []
    jitter: list[float | None] = [None] * n
    for i, note in enumerate(notes):
        if status[i] == "missed":
            continue
        pitch = note.pitch
        if status[i] == "wrong":
            sounding = set(pitches[np.abs(onsets - note.onset) < 0.3])
            options = [pitch + d for d in (-2, -1, 1, 2) if pitch + d not in sounding]
            pitch = int(rng.choice(options)) if options else pitch + 12
        j = float(rng.normal(0, JITTER_S))
        jitter[i] = j
        start, end = warp(note.onset) + j, warp(note.offset) + j
        velocity = int(np.clip((note.velocity or 80) + rng.normal(0, 4), 1, 127))
        played.append(PlayedNote(start, max(end, start + 0.05), pitch, velocity))
        extra.append(False)
    low, high = int(pitches.min()), int(pitches.max())
    for _ in range(round(EXTRA * n)):
        for _attempt in range(50):
            t = float(rng.uniform(onsets.min(), onsets.max()))
            pitch = int(rng.integers(low, high + 1))
            if not np.any((pitches == pitch) & (np.abs(onsets - t) < 0.5)):
                break
        played.append(PlayedNote(warp(t), warp(t) + 0.2, pitch, 70))
        extra.append(True)
    order_p = sorted(range(len(played)), key=lambda k: played[k].onset)
    return Planted([played[k] for k in order_p], status, [extra[k] for k in order_p], jitter)


def grade(score: Score, planted: Planted, score_status, played_status, deviation) -> dict[str, float]:
    n = len(score.notes)
    planted_faults = sum(s != "played" for s in planted.status) + sum(planted.extra)
    found = sum(1 for a, b in zip(planted.status, score_status) if a != "played" and a == b)
    found += sum(1 for e, s in zip(planted.extra, played_status) if e and s == "extra")
    false = sum(1 for a, b in zip(planted.status, score_status) if b != "played" and a != b)
    false += sum(1 for e, s in zip(planted.extra, played_status) if not e and s == "extra")
    errors = [abs(d - j) for a, b, d, j in zip(planted.status, score_status, deviation, planted.jitter)
              if a == "played" and b == "played" and d is not None and j is not None]
    confusion: dict[str, int] = {}
    for a, b in zip(planted.status, score_status):
        if a != b:
            confusion[f"{a}->{b}"] = confusion.get(f"{a}->{b}", 0) + 1
    for e, s in zip(planted.extra, played_status):
        if e and s != "extra":
            confusion[f"extra->{s}"] = confusion.get(f"extra->{s}", 0) + 1
    return {"planted": planted_faults, "found": found, "false": false, "notes": n,
            "errors": errors, "confusion": confusion}


def etude_scores() -> list[Score]:
    from muse_cli.contracts import MidiRequest
    from muse_cli.engines.etude import compose
    from muse_cli.music.midi import midi_to_bytes
    from muse_cli.music.score import read_score

    out = []
    for k, level in enumerate(("beginner", "intermediate", "advanced")):
        for seed in (1, 2):
            pm, _ = compose(100 * k + seed, MidiRequest(difficulty=level, bars=32))
            out.append(read_score(midi_to_bytes(pm), f"etude-{level}-{seed}.mid"))
    return out


def corpus_scores(names) -> list[Score]:
    from music21 import corpus

    from muse_cli.music.score import score_from_music21

    return [score_from_music21(corpus.parse(name), name, kind="musicxml") for name in names]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args()
    scores = etude_scores() + corpus_scores(CORPUS[:2] if args.quick else CORPUS)
    rng = np.random.default_rng(16)
    totals = {"midi": [], "audio": []}
    for score in scores:
        planted = plant(score, rng)
        t0 = time.perf_counter()
        result = align(score, planted.played)
        elapsed = time.perf_counter() - t0
        g = grade(score, planted, result.score_status, result.played_status, result.deviation)
        totals["midi"].append(g)
        print(f"midi  {score.name:32s} notes {g['notes']:5d}  found {g['found']:3d}/{g['planted']:3d}  "
              f"false {g['false']:3d}  onset err {1000 * statistics.median(g['errors']):5.1f} ms  align {elapsed:.2f} s  {g['confusion']}")
    report(totals)


def report(totals) -> None:
    print()
    print("| input | planted faults found | false alarms | median onset-deviation error |")
    print("|---|---|---|---|")
    for kind, rows in totals.items():
        if not rows:
            continue
        planted = sum(r["planted"] for r in rows)
        found = sum(r["found"] for r in rows)
        false = sum(r["false"] for r in rows)
        notes = sum(r["notes"] for r in rows)
        errors = [e for r in rows for e in r["errors"]]
        print(f"| {kind} | {100 * found / planted:.1f} % ({found}/{planted}) | {100 * false / notes:.2f} % of notes "
              f"({false}/{notes}) | {1000 * statistics.median(errors):.1f} ms |")


if __name__ == "__main__":
    main()

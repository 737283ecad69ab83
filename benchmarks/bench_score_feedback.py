"""How many planted performance faults `muse analyze --score` finds, and how fast (issue 16).

Scores: etudes of every difficulty (the built-in composer) and real pieces from the music21
corpus (`pip install music21`, part of the `score` extra). Each score becomes a performance with
known faults: about 5 % of notes at a wrong pitch (1 or 2 semitones off), 5 % missed, 3 % extra
(stray notes away from any written note of their pitch), onset jitter of sigma 30 ms, and a tempo
drift from 10 % slow to 10 % fast over the piece. Each performance is analysed as MIDI and as
audio (FluidSynth with a GM SoundFont where one is found, else the built-in synth; transcribed
by the bundled basic-pitch model and aligned as `muse analyze` does: `align_transcribed` with the
model's posteriors, which finds dropped notes in them and sets transcription artifacts aside).

Counted per input kind:
- found: planted faults reported as that fault (a wrong pitch as a wrong pitch, ...);
- false alarms: wrong/missed/extra reports where nothing was planted, as a share of score notes;
- onset error: median |reported onset deviation - planted jitter| over notes played right.

Then the whole process `muse analyze take.wav --score piece.mid` (a fresh interpreter) is timed
on a 3-minute piece, for MIDI and for audio input.

    python benchmarks/bench_score_feedback.py            # the table (a few minutes on 2 cores)
    python benchmarks/bench_score_feedback.py --quick    # fewer pieces, no audio
    python benchmarks/bench_score_feedback.py --compare  # also parangonar's matcher, where installed
    python benchmarks/bench_score_feedback.py --builtin-synth  # audio from the built-in synth, not FluidSynth
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

from muse_cli.music.score import Evidence, PlayedNote, Score, align, align_transcribed  # noqa: E402

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


LEAD_IN_S = 0.5  # silence before the first note of a rendered take


def render(planted: Planted) -> tuple[np.ndarray, str]:
    """The planted performance as 22050 Hz mono audio: FluidSynth and a GM SoundFont if found."""
    import pretty_midi

    from muse_cli.contracts import RenderRequest
    from muse_cli.music.render import fluidsynth_available, render_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    for p in planted.played:
        piano.notes.append(pretty_midi.Note(p.velocity, p.pitch, p.onset + LEAD_IN_S, p.offset + LEAD_IN_S))
    pm.instruments.append(piano)
    soundfont = next((str(f) for f in SOUNDFONTS if Path(f).is_file()), None) if fluidsynth_available() else None
    out = render_midi(pm, RenderRequest(sample_rate=22050, stereo=False, soundfont=soundfont))
    return out.audio[0], out.renderer + (f" ({Path(soundfont).name})" if soundfont else "")


SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/sounds/sf2/TimGM6mb.sf2")


def grade_audio(score: Score, planted: Planted, played: list[PlayedNote], result) -> dict[str, float]:
    """As grade(), but the performed notes are the transcription's: a planted extra note is found
    when an extra-flagged transcribed note has its pitch within 50 ms of it."""
    planted_extra = [(p.onset + LEAD_IN_S, p.pitch) for p, e in zip(planted.played, planted.extra) if e]
    flagged = [(played[j].onset, played[j].pitch) for j, s in enumerate(result.played_status) if s == "extra"]
    found_extra = sum(1 for t, p in planted_extra if any(q == p and abs(u - t) < 0.05 for u, q in flagged))
    false_extra = sum(1 for u, q in flagged if not any(q == p and abs(u - t) < 0.05 for t, p in planted_extra))
    fake = Planted(planted.played, planted.status, [], planted.jitter)
    g = grade(score, fake, result.score_status, [], result.deviation)
    g["planted"] += len(planted_extra)
    g["found"] += found_extra
    g["false"] += false_extra
    g["confusion"]["extra->missed"] = len(planted_extra) - found_extra
    g["confusion"]["false extra"] = false_extra
    return g


def whole_process(seconds: float = 180.0) -> list[str]:
    """Time `muse analyze TAKE --score piece.mid` in a fresh interpreter on a 3-minute piece."""
    from muse_cli.contracts import MidiRequest
    from muse_cli.engines.etude import compose
    from muse_cli.music.audio import encode_audio
    from muse_cli.music.midi import midi_to_bytes
    from muse_cli.music.score import read_score

    pm, opts = compose(7, MidiRequest(difficulty="intermediate", tempo=100, time_signature="4/4",
                                      bars=int(seconds / (4 * 60 / 100))))
    data = midi_to_bytes(pm)
    score = read_score(data, "piece.mid")
    planted = plant(score, np.random.default_rng(3))
    audio, renderer = render(planted)
    lines = [f"3-minute piece: {len(score.notes)} notes, {score.duration:.0f} s; audio rendered by {renderer}"]
    muse = str(Path(sys.executable).with_name("muse"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "piece.mid").write_bytes(data)
        take = _take_midi(planted)
        (folder / "take.mid").write_bytes(take)
        (folder / "take.wav").write_bytes(encode_audio(audio[None, :], 22050, "wav"))
        for name, extra in (("take.mid", []), ("take.mid", ["--score", "piece.mid"]),
                            ("take.wav", []), ("take.wav", ["--score", "piece.mid"]),
                            ("take.wav", ["--score", "piece.mid", "--plot"])):
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                done = subprocess.run([muse, "analyze", name, *extra, "--force", "-q"], cwd=folder,
                                      capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                if done.returncode != 0:
                    raise SystemExit(f"muse analyze failed: {done.stderr.strip()}")
            lines.append(f"muse analyze {name} {' '.join(extra):28s} {min(times):5.2f} s (best of 2; {max(times):.2f} s worst)")
    return lines


def _take_midi(planted: Planted) -> bytes:
    import pretty_midi

    from muse_cli.music.midi import midi_to_bytes

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    for p in planted.played:
        piano.notes.append(pretty_midi.Note(p.velocity, p.pitch, p.onset + LEAD_IN_S, p.offset + LEAD_IN_S))
    pm.instruments.append(piano)
    return midi_to_bytes(pm)


def parangonar_compare(score: Score, planted: Planted) -> str:
    """parangonar's AutomaticNoteMatcher on the same take, run in a subprocess (its import pulls
    partitura and, where installed, torch; partitura downloads a SoundFont at import when
    pyfluidsynth is installed, so the subprocess hides pyfluidsynth)."""
    import json

    payload = json.dumps({
        "score": [(n.quarter, max(n.offset - n.onset, 1e-3) / score.seconds_per_quarter(), n.onset,
                   n.offset - n.onset, n.pitch) for n in score.notes],
        "perf": [(p.onset, p.offset - p.onset, p.pitch, p.velocity) for p in planted.played],
    })
    code = r"""
import json, sys, time
sys.modules["fluidsynth"] = None
t0 = time.perf_counter()
import numpy as np, parangonar as pa
t1 = time.perf_counter()
d = json.loads(sys.stdin.read())
s = np.array([(q, dq, t, dt, p, f"s{i}") for i, (q, dq, t, dt, p) in enumerate(d["score"])],
             dtype=[("onset_beat", "f4"), ("duration_beat", "f4"), ("onset_sec", "f4"), ("duration_sec", "f4"),
                    ("pitch", "i4"), ("id", "U16")])
p = np.array([(t, dt, pi, v, f"p{i}") for i, (t, dt, pi, v) in enumerate(d["perf"])],
             dtype=[("onset_sec", "f4"), ("duration_sec", "f4"), ("pitch", "i4"), ("velocity", "i4"), ("id", "U16")])
al = pa.AutomaticNoteMatcher()(s, p)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "align_s": t2 - t1, "al": al}))
"""
    done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, text=True)
    if done.returncode != 0:
        return f"parangonar failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    deleted = {int(a["score_id"][1:]) for a in out["al"] if a["label"] == "deletion"}
    inserted = {int(a["performance_id"][1:]) for a in out["al"] if a["label"] == "insertion"}
    faults = [i for i, s in enumerate(planted.status) if s != "played"]
    found = sum(1 for i in faults if i in deleted) + sum(1 for j in inserted if planted.extra[j])
    false = sum(1 for i in deleted if planted.status[i] == "played")
    false += sum(1 for j in inserted if not planted.extra[j] and not _is_wrong_note(planted, j))
    total = len(faults) + sum(planted.extra)
    return (f"parangonar {score.name:26s} faults flagged {found}/{total} (deletion/insertion; it has no wrong-pitch class), "
            f"false {false}, import {out['import_s']:.1f} s, align {out['align_s']:.2f} s")


def _is_wrong_note(planted: Planted, j: int) -> bool:
    """Is performed note j a planted wrong pitch (an insertion there is the right call)?"""
    played_rows = [i for i, s in enumerate(planted.status) if s != "missed"]
    non_extra = [k for k, e in enumerate(planted.extra) if not e]
    if planted.extra[j]:
        return False
    return planted.status[played_rows[non_extra.index(j)]] == "wrong"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="two corpus pieces, no audio, no whole-process timing")
    ap.add_argument("--compare", action="store_true", help="also run parangonar's AutomaticNoteMatcher (if installed)")
    ap.add_argument("--no-audio", action="store_true")
    ap.add_argument("--builtin-synth", action="store_true", help="render audio with the built-in synth, not FluidSynth")
    args = ap.parse_args()
    if args.builtin_synth:
        global SOUNDFONTS
        SOUNDFONTS = ()
    from muse_cli.music import transcribe as tr

    scores = etude_scores() + corpus_scores(CORPUS[:2] if args.quick else CORPUS)
    rng = np.random.default_rng(16)
    totals = {"midi": [], "audio": []}
    print(f"machine: {os.cpu_count()} CPUs, shared with other work (figures are noisy)")
    for score in scores:
        planted = plant(score, rng)
        t0 = time.perf_counter()
        result = align(score, planted.played)
        elapsed = time.perf_counter() - t0
        g = grade(score, planted, result.score_status, result.played_status, result.deviation)
        totals["midi"].append(g)
        print(f"midi  {score.name:26s} notes {g['notes']:5d}  found {g['found']:3d}/{g['planted']:3d}  "
              f"false {g['false']:3d}  onset err {1000 * statistics.median(g['errors']):5.1f} ms  align {elapsed:.2f} s  "
              f"{g['confusion']}", flush=True)
        if args.compare:
            print("      " + parangonar_compare(score, planted), flush=True)
        if args.quick or args.no_audio or tr.unavailable_reason():
            continue
        audio, renderer = render(planted)
        t0 = time.perf_counter()
        post = tr.posteriors(audio)  # as `muse analyze` does: notes, then the posteriors kept for the score
        notes = tr.notes_from_posteriors(post)
        played = [PlayedNote(n.onset, n.offset, n.pitch, n.velocity) for n in notes]
        t1 = time.perf_counter()
        played, result, _ = align_transcribed(score, played, Evidence(post.onset, post.frame, tr.FPS, tr.LOWEST_PITCH))
        g = grade_audio(score, planted, played, result)
        totals["audio"].append(g)
        print(f"audio {score.name:26s} notes {g['notes']:5d}  found {g['found']:3d}/{g['planted']:3d}  "
              f"false {g['false']:3d}  onset err {1000 * statistics.median(g['errors']):5.1f} ms  "
              f"transcribe {t1 - t0:.1f} s  align {time.perf_counter() - t1:.2f} s  [{renderer}]  {g['confusion']}",
              flush=True)
    report(totals)
    if not args.quick:
        print()
        for line in whole_process():
            print(line)


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

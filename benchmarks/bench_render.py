"""Render speed: seconds of audio per second of compute for a 60 s piano piece.

    python benchmarks/bench_render.py [--seconds 60] [--repeats 3] [--json]

Measures the built-in synth alone, the full render (synth + loudness normalisation), and
FluidSynth with pretty_midi's bundled General MIDI SoundFont when FluidSynth is installed.
The best of `--repeats` runs is reported: other load on the machine only ever slows a run down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pretty_midi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from muse_cli.contracts import RenderRequest  # noqa: E402
from muse_cli.music import render as R  # noqa: E402
from muse_cli.music.synth import synthesize  # noqa: E402


def piano_piece(seconds: float, seed: int = 0) -> pretty_midi.PrettyMIDI:
    """Sixteenth-note right hand over half-note left-hand triads, pedal changed every bar."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0, name="piano")
    step, t = 0.125, 0.0
    while t < seconds - 1.0:
        pitch = int(rng.integers(60, 88))
        piano.notes.append(pretty_midi.Note(int(rng.integers(50, 110)), pitch, t, t + 2 * step))
        if round(t / step) % 8 == 0:
            root = int(rng.integers(36, 52))
            for interval in (0, 4, 7, 12):
                piano.notes.append(pretty_midi.Note(int(rng.integers(45, 90)), root + interval, t, t + 0.9))
        t += step
    for bar in np.arange(0.0, seconds - 1.0, 2.0):
        piano.control_changes.append(pretty_midi.ControlChange(64, 127, float(bar) + 0.02))
        piano.control_changes.append(pretty_midi.ControlChange(64, 0, float(bar) + 1.95))
    piano.notes.append(pretty_midi.Note(80, 48, seconds - 1.0, seconds))
    pm.instruments.append(piano)
    return pm


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    pm = piano_piece(args.seconds)
    rows = []

    def row(name, seconds, audio, sr):
        length = audio.shape[1] / sr
        rows.append(
            {
                "case": name,
                "audio_s": round(length, 2),
                "compute_s": round(seconds, 3),
                "x_realtime": round(length / seconds, 1),
            }
        )

    synthesize(piano_piece(2.0))  # warm imports and BLAS threads
    for stereo in (True, False):
        secs, audio = best_of(args.repeats, lambda stereo=stereo: synthesize(pm, 44100, stereo=stereo))
        row(f"builtin synth {'stereo' if stereo else 'mono'} 44.1k", secs, audio, 44100)
    secs, out = best_of(args.repeats, lambda: R.render_midi(pm, RenderRequest()))
    row("render_midi builtin + loudness -14 LUFS", secs, out.audio, out.sample_rate)
    secs, out = best_of(args.repeats, lambda: R.render_midi(pm, RenderRequest(normalize="peak")))
    row("render_midi builtin + peak", secs, out.audio, out.sample_rate)

    soundfont = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if R.fluidsynth_available() and soundfont.exists():
        request = RenderRequest(soundfont=str(soundfont), normalize="peak")
        secs, out = best_of(args.repeats, lambda: R.render_midi(pm, request))
        row("render_midi fluidsynth (TimGM6mb) + peak", secs, out.audio, out.sample_rate)

    notes = sum(len(i.notes) for i in pm.instruments)
    if args.json:
        print(json.dumps({"notes": notes, "results": rows}))
        return
    print(f"{args.seconds:g} s piano piece, {notes} notes, best of {args.repeats}")
    for r in rows:
        print(
            f"  {r['case']:<44} {r['audio_s']:>7.2f} s audio in {r['compute_s']:>7.3f} s"
            f" = {r['x_realtime']:>7.1f}x real time"
        )


if __name__ == "__main__":
    main()

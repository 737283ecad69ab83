"""Speed of `muse analyze` on 60 s of rendered piano: descriptors alone, and with transcription.

    python benchmarks/bench_analysis.py [--seconds 60] [--repeats 3]

Targets: descriptors at least 30x faster than real time, with transcription at least 8x. Imports
and one warm-up run are excluded (a CLI process pays them once: printed as "cold start").
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pretty_midi


def piano_piece(seconds: float, tempo: float = 112.0, seed: int = 0) -> pretty_midi.PrettyMIDI:
    """Two hands: an eighth-note melody over a held bass and a chord every bar, pedal per bar."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    eighth = 30.0 / tempo
    scale = (0, 2, 4, 5, 7, 9, 11)
    t, i = 0.2, 0
    while t < seconds - 1.0:
        degree = int(rng.integers(0, 14))
        pitch = 60 + 12 * (degree // 7) + scale[degree % 7]
        piano.notes.append(pretty_midi.Note(int(rng.integers(50, 100)), pitch, t, t + eighth * 0.9))
        if i % 8 == 0:
            root = 36 + scale[int(rng.integers(0, 7))]
            for offset in (0, 12, 16, 19):
                piano.notes.append(pretty_midi.Note(70, root + offset, t, t + 8 * eighth * 0.95))
            piano.control_changes.append(pretty_midi.ControlChange(64, 100, t + 0.05))
            piano.control_changes.append(pretty_midi.ControlChange(64, 0, t + 8 * eighth - 0.05))
        t += eighth
        i += 1
    pm.instruments.append(piano)
    return pm


def render(seconds: float) -> bytes:
    from muse_cli.music.audio import encode_audio
    from muse_cli.music.synth import synthesize

    audio = synthesize(piano_piece(seconds), sample_rate=44100, stereo=True)[:, : int(seconds * 44100)]
    return encode_audio(audio / np.abs(audio).max() * 0.8, 44100, "wav")


def timed(data: bytes, request, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds (all threads) over `repeats` runs.

    CPU time is printed too because on a shared machine the wall clock measures the neighbours.
    """
    from muse_cli.analysis import analyze_source

    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        analyze_source(data, request, name="bench.wav")
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from muse_cli.contracts import AnalyzeRequest
    from muse_cli.music.transcribe import available

    data = render(args.seconds)
    start = time.perf_counter()
    timed(data, AnalyzeRequest(transcribe=False), 1)
    cold = time.perf_counter() - start
    results = {"audio_s": args.seconds, "cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 1),
               "cold_start_s": round(cold, 2)}
    results |= _rates("descriptors", args.seconds, *timed(data, AnalyzeRequest(transcribe=False), args.repeats))
    if available():
        timed(data, AnalyzeRequest(), 1)  # loads the ONNX session
        results |= _rates("with_transcription", args.seconds, *timed(data, AnalyzeRequest(), args.repeats))
    print(json.dumps(results))


def _rates(label: str, seconds: float, wall: float, cpu: float) -> dict:
    return {f"{label}_wall_s": round(wall, 3), f"{label}_x_realtime": round(seconds / wall, 1),
            f"{label}_cpu_s": round(cpu, 3), f"{label}_x_realtime_per_cpu_second": round(seconds / cpu, 1)}


if __name__ == "__main__":
    main()

"""Speed of `muse analyze`: the whole process against basic-pitch's own CLI, and in-process rates.

    python benchmarks/bench_analysis.py [--pieces 28,60,300] [--repeats 3]        # side by side
    python benchmarks/bench_analysis.py --in-process [--seconds 60] [--repeats 3]

Side by side (issue 15, "Analysis that starts fast"): for each piece length, one rendered piano
WAV; `muse analyze take.wav` (transcription and every descriptor, report written) and
`basic-pitch OUT take.wav` (its CLI: transcription to MIDI, ONNX model here since TensorFlow is
absent) run alternately as fresh processes, `--repeats` times each. Reported per piece: the
median wall-clock seconds and CPU seconds (user + system of the child) of each, and their ratios
(muse / basic-pitch: below 1 is faster). The machine is shared, so the two are interleaved and
the ratios are what to read. Goal: muse's ratio under 1 on every piece.

In process: descriptors at least 30x faster than real time, with transcription at least 8x.
Imports and one warm-up run are excluded (a CLI process pays them once: printed as "cold start").
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
    from muse_cli.pipelines.analysis import analyze_source

    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        analyze_source(data, request, name="bench.wav")
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def process_times(args: list[str], cwd) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one fresh process."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-1500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def basic_pitch_cli() -> list[str] | None:
    """basic-pitch's console script (its CLI entry point, predict.main), or None when absent."""
    import shutil
    import sys
    from pathlib import Path

    found = Path(sys.executable).with_name("basic-pitch")
    if found.exists():
        return [str(found)]
    which = shutil.which("basic-pitch")
    return [which] if which else None


def side_by_side(pieces: list[float], repeats: int) -> dict:
    import shutil
    import statistics
    import sys
    import tempfile
    from pathlib import Path

    peer = basic_pitch_cli()
    if peer is None:
        raise SystemExit("basic-pitch is not installed: pip install --no-deps basic-pitch")
    muse = [sys.executable, "-m", "muse_cli", "analyze"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for seconds in pieces:
            wav = work / f"take-{seconds:g}.wav"
            wav.write_bytes(render(seconds))
            times: dict[str, list[tuple[float, float]]] = {"muse": [], "basic_pitch": []}
            for _ in range(repeats):  # interleaved: both see the same neighbours
                times["muse"].append(process_times([*muse, wav.name, "--transcribe", "-q", "--force"], work))
                out = work / "bp"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                times["basic_pitch"].append(process_times([*peer, str(out), wav.name], work))
            row = {"seconds": seconds}
            for name, runs in times.items():
                row[f"{name}_wall_s"] = round(statistics.median(w for w, _ in runs), 2)
                row[f"{name}_cpu_s"] = round(statistics.median(c for _, c in runs), 2)
            row["ratio_wall"] = round(row["muse_wall_s"] / row["basic_pitch_wall_s"], 2)
            row["ratio_cpu"] = round(row["muse_cpu_s"] / row["basic_pitch_cpu_s"], 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return {"cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 1), "repeats": repeats, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", default="28,60,300", help="piece lengths in seconds, side by side")
    parser.add_argument("--in-process", action="store_true", help="in-process rates instead of the side by side")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.in_process:
        print(json.dumps(side_by_side([float(p) for p in args.pieces.split(",")], args.repeats)))
        return

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

"""Peak memory of `muse render` and of analysis (the CLI and the /v1/analyze path) for 1, 10 and
60 minutes of material: issue 12, items 10 and 11. The goal is flat in length, under 1 GiB at 60.

    python benchmarks/bench_limits.py [--minutes 1,10,60] [--no-transcribe] [--json]

Every measure is its own process (peak RSS from getrusage of a process that runs only it):
- render: `muse render piece.mid` (44.1 kHz stereo, loudness normalised; --max-duration raised);
- analyze: `muse analyze take.wav` (22050 Hz mono WAV rendered from the same piece), transcription on;
- http: a process that builds the server app in-process (muse_cli.http.app.create_app, local backend)
  and posts the take as OGG to /v1/analyze through its ASGI test client, so the figure holds the
  upload, the server and the analysis together.
Seconds are printed too, for context only: the machine is shared, so they measure the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PROBE = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.stderr.write(done.stderr[-2000:])"
)

HTTP = r"""
import resource, sys
from pathlib import Path
from fastapi.testclient import TestClient
from muse_cli.backends.local import LocalBackend
from muse_cli.http.app import create_app
path, minutes, transcribe = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
api = create_app(LocalBackend(), token="t" * 32, storage_dir=path.parent / "files", max_upload_bytes=200 * 2**20)
client = TestClient(api, raise_server_exceptions=False)
with open(path, "rb") as fh:
    r = client.post("/v1/analyze", files={"file": (path.name, fh, "audio/ogg")},
                    data={"max_duration": str(minutes * 60 + 60), "transcribe": transcribe},
                    headers={"authorization": "Bearer " + "t" * 32})
assert r.status_code == 200, r.text[:500]
print(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak(args: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """(peak RSS MiB, wall seconds) of one command run as the only child of a probe process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - start
    rc, kib = (int(v) for v in done.stdout.split()[-2:])
    if rc != 0:
        raise SystemExit(f"{args[2:5]} failed ({rc}): {done.stderr[-1500:]}")
    return kib / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", default="1,10,60")
    parser.add_argument("--no-transcribe", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import soundfile as sf

    from bench_analysis import piano_piece
    from muse_cli.contracts import RenderRequest
    from muse_cli.music.render import render_to_file

    muse = [sys.executable, "-m", "muse_cli"]
    transcribe = "false" if args.no_transcribe else "true"
    env = dict(os.environ, MUSE_SERVE_MAX_DURATION="7200")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for minutes in (float(m) for m in args.minutes.split(",")):
            seconds = minutes * 60
            pm = piano_piece(seconds)
            mid = work / f"piece-{minutes:g}.mid"
            pm.write(str(mid))
            row = {"minutes": minutes, "notes": sum(len(i.notes) for i in pm.instruments)}
            row["render_peak_mib"], row["render_s"] = peak(
                [*muse, "render", mid.name, "--max-duration", str(seconds + 60), "-q", "--force"], work)
            wav = work / f"take-{minutes:g}.wav"
            render_to_file(pm, RenderRequest(sample_rate=22050, stereo=False, max_duration=seconds + 60), wav)
            ogg = work / f"take-{minutes:g}.ogg"
            with sf.SoundFile(wav) as src, sf.SoundFile(ogg, "w", samplerate=22050, channels=1, format="OGG") as dst:
                for block in src.blocks(1 << 18, dtype="float32"):
                    dst.write(block)
            flag = "--no-transcribe" if args.no_transcribe else "--transcribe"
            row["analyze_peak_mib"], row["analyze_s"] = peak(
                [*muse, "analyze", wav.name, flag, "--max-duration", str(seconds + 60), "-q", "--force"], work)
            row["http_peak_mib"], row["http_s"] = peak([sys.executable, "-c", HTTP, str(ogg), str(minutes), transcribe], work, env)
            row["ogg_mib"] = round(ogg.stat().st_size / 2**20, 1)
            rows.append({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()})
            print(json.dumps(rows[-1]) if args.json else
                  f"{minutes:>4g} min: render {row['render_peak_mib']:6.0f} MiB ({row['render_s']:.0f} s)  "
                  f"analyze {row['analyze_peak_mib']:6.0f} MiB ({row['analyze_s']:.0f} s)  "
                  f"/v1/analyze {row['http_peak_mib']:6.0f} MiB ({row['http_s']:.0f} s, {row['ogg_mib']} MiB OGG)",
                  flush=True)
    print(json.dumps({"machine": {"cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 1)},
                      "transcription": not args.no_transcribe, "rows": rows}))


if __name__ == "__main__":
    main()

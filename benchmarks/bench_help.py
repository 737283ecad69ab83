"""`muse --help` start-up time against `modal --help`, in the same run.

Target (issue 2): muse's median wall time at most a quarter of modal's.
Run: .venv/bin/python benchmarks/bench_help.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall_times(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache once
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    muse = [str(bin_dir / "muse"), "--help"]
    modal = [shutil.which("modal", path=str(bin_dir)) or "modal", "--help"]
    m = statistics.median(wall_times(muse, args.runs))
    d = statistics.median(wall_times(modal, args.runs))
    print(f"muse --help   median {m * 1000:7.1f} ms over {args.runs} runs")
    print(f"modal --help  median {d * 1000:7.1f} ms over {args.runs} runs")
    print(f"ratio {m / d:.3f} (target <= 0.25): {'PASS' if m / d <= 0.25 else 'FAIL'}")


if __name__ == "__main__":
    main()

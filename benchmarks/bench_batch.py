"""Batch throughput on the local backend: N etude jobs end to end, and what batch adds per job.

    python benchmarks/bench_batch.py [--jobs 200] [--bars 8] [--json]

Measures, on the same N requests:
  engine   the etude engine alone, loaded once, generate() in a loop (no files)
  batch    muse_cli.batch in-process: validate every line, run, save .mid + sidecar, manifest line
  cli      `python -m muse_cli batch jobs.jsonl` as a subprocess (adds interpreter start-up)
  resume   the same command again: every job skipped from the manifest
Overhead per job = (batch wall time - engine time) / N: validation, hashing, scheduling, atomic
writes with fsync, sidecar and manifest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from muse_cli import batch as B  # noqa: E402
from muse_cli.backends.local import LocalBackend  # noqa: E402


def lines(n: int, bars: int) -> list[dict]:
    return [{"kind": "midi", "engine": "etude", "prompt": f"study number {i}", "bars": bars, "seed": i} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.jobs
    rows = [(i + 1, row) for i, row in enumerate(lines(n, args.bars))]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backend = LocalBackend()
        engine = backend.engine("etude")
        t0 = time.perf_counter()
        plan = B.plan(rows, base=root)
        validate_s = time.perf_counter() - t0
        requests = [job.request() for job in plan.jobs]
        engine.generate(requests[0])  # warm caches, as the batch's first job would
        t0 = time.perf_counter()
        for request in requests:
            engine.generate(request)
        engine_s = time.perf_counter() - t0

        out = root / "inproc"
        out.mkdir()
        t0 = time.perf_counter()
        summary = B.run(B.plan(rows, base=root).jobs, backend, out)
        batch_s = time.perf_counter() - t0 + validate_s
        assert summary.ok == n, summary
        run_s = sum(e["timings"]["run_s"] for e in summary.entries) / n
        save_s = sum(e["timings"]["save_s"] for e in summary.entries) / n

        jobs_file = root / "jobs.jsonl"
        jobs_file.write_text("\n".join(json.dumps(row) for _, row in rows) + "\n")
        cmd = [sys.executable, "-m", "muse_cli", "batch", str(jobs_file), "--out-dir", str(root / "cli"), "-q"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        cli_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        resume_s = time.perf_counter() - t0
        startup_s = _startup()

    report = {
        "jobs": n,
        "bars": args.bars,
        "engine_s": round(engine_s, 3),
        "engine_ms_per_job": round(1000 * engine_s / n, 2),
        "validate_ms_per_job": round(1000 * validate_s / n, 3),
        "batch_s": round(batch_s, 3),
        "batch_jobs_per_s": round(n / batch_s, 1),
        "batch_overhead_ms_per_job": round(1000 * (batch_s - engine_s) / n, 2),
        "mean_run_ms": round(1000 * run_s, 2),
        "mean_save_ms": round(1000 * save_s, 2),
        "cli_s": round(cli_s, 3),
        "cli_jobs_per_s": round(n / cli_s, 1),
        "cli_startup_s": round(startup_s, 3),
        "resume_all_done_s": round(resume_s, 3),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{n} etude jobs ({args.bars} bars each)")
    print(f"  engine alone      {engine_s:7.2f} s   {report['engine_ms_per_job']:7.2f} ms/job")
    print(f"  batch in-process  {batch_s:7.2f} s   {report['batch_jobs_per_s']:7.1f} jobs/s   "
          f"overhead {report['batch_overhead_ms_per_job']:.2f} ms/job "
          f"(validate {report['validate_ms_per_job']:.2f}, save+manifest {report['mean_save_ms']:.2f})")
    print(f"  muse batch (CLI)  {cli_s:7.2f} s   {report['cli_jobs_per_s']:7.1f} jobs/s   (start-up {startup_s:.2f} s)")
    print(f"  resume, all done  {resume_s:7.2f} s")


def _startup() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "muse_cli", "--version"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()

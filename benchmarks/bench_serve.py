"""Load on `muse serve`: the etude engine behind the HTTP API, under a loopback load generator.

    python benchmarks/bench_serve.py [--requests 10000] [--concurrency 16] [--bars 8] [--json]

Starts a real `muse serve` process on 127.0.0.1 (local backend), waits for /health, warms up,
then sends N `POST /v1/midi` requests (etude, a different seed each) from `--concurrency` client
threads, each with its own keep-alive httpx connection. Reports requests per second, latency
percentiles, status counts, and the server's resident memory (RSS) after warm-up, every tenth of
the run, and at the end, so a leak shows as a rising line rather than a single number.

The client runs on the same machine as the server and takes CPU from it: the numbers are a floor
for a machine with spare cores.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def start_server(port: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "MUSE_API_TOKEN": token, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "muse_cli", "serve", "--port", str(port), "--quiet"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"muse serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("muse serve did not answer /health in time")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import httpx

    token = secrets.token_urlsafe(32)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port, token)
    try:
        startup_s = wait_healthy(url, proc)
        headers = {"Authorization": f"Bearer {token}"}
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=url, headers=headers, timeout=60.0)
            return local.client

        def one(i: int) -> tuple[float, int]:
            body = {"engine": "etude", "bars": args.bars, "seed": i, "difficulty": ("beginner", "intermediate", "advanced")[i % 3]}
            t0 = time.perf_counter()
            status = client().post("/v1/midi", json=body).status_code
            return time.perf_counter() - t0, status

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(one, range(args.warmup)))
            rss = [(0, rss_mb(proc.pid))]
            latencies: list[float] = []
            statuses: dict[int, int] = {}
            step = max(1, args.requests // 10)
            started = time.perf_counter()
            for done, (latency, status) in enumerate(pool.map(one, range(args.warmup, args.warmup + args.requests)), 1):
                latencies.append(latency)
                statuses[status] = statuses.get(status, 0) + 1
                if done % step == 0:
                    rss.append((done, rss_mb(proc.pid)))
            wall = time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    ordered = sorted(latencies)
    report = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "bars": args.bars,
        "server_startup_s": round(startup_s, 2),
        "wall_s": round(wall, 2),
        "requests_per_s": round(args.requests / wall, 1),
        "latency_ms": {
            "mean": round(statistics.fmean(ordered) * 1000, 1),
            "p50": round(percentile(ordered, 50) * 1000, 1),
            "p90": round(percentile(ordered, 90) * 1000, 1),
            "p99": round(percentile(ordered, 99) * 1000, 1),
            "max": round(ordered[-1] * 1000, 1),
        },
        "statuses": statuses,
        "rss_mb": [[n, round(mb, 1)] for n, mb in rss],
        "rss_growth_mb": round(rss[-1][1] - rss[0][1], 1),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(report))
        return
    lat = report["latency_ms"]
    print(f"{args.requests} requests, {args.concurrency} clients, etude {args.bars} bars")
    print(f"  {report['requests_per_s']} req/s over {report['wall_s']} s; statuses {statuses}")
    print(f"  latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
    print("  server RSS MB: " + "  ".join(f"{n}:{mb}" for n, mb in report["rss_mb"]))


if __name__ == "__main__":
    main()

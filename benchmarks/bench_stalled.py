"""Stalled clients against `muse serve`: how fast they are dropped, and whether /health still answers.

    python benchmarks/bench_stalled.py [--connections 300] [--read-timeout 10] [--json]

Starts a real `muse serve` on 127.0.0.1 with its default limits, then opens N sockets split in
three kinds: idle (connect, send nothing), stalled headers (half a request head, then silence) and
stalled bodies (full headers with a valid token and Content-Length, a few body bytes, then
silence). While they hang, a client asks GET /health every 0.25 s on a fresh connection. Reports,
per kind, when the server closed the sockets (min / median / max seconds after they stalled) and
how many it never closed within --give-up seconds, plus /health's latency and failures.
The goal (issue 12): all dropped within 15 s while /health keeps answering.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"muse serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("muse serve did not become healthy")


def stall(port: int, kind: str, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if kind == "header":
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    elif kind == "body":
        sock.sendall(b"POST /v1/midi HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"diff")
    sock.setblocking(False)
    return sock


def watch(socks: dict[socket.socket, str], started: float, give_up: float) -> dict[str, list[float]]:
    """Seconds after `started` at which the server closed each socket (EOF or reset), per kind."""
    closed: dict[str, list[float]] = {kind: [] for kind in set(socks.values())}
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    open_ = dict(socks)
    while open_ and time.monotonic() - started < give_up:
        for key, _ in sel.select(timeout=0.2):
            sock = key.fileobj
            try:
                data = sock.recv(65536)  # a 408 answer first, then EOF
                if data:
                    continue
            except (ConnectionResetError, BlockingIOError):
                pass
            closed[open_.pop(sock)].append(time.monotonic() - started)
            sel.unregister(sock)
            sock.close()
    for sock in open_:
        sock.close()
    return closed


def probe_health(url: str, stop: threading.Event, out: list) -> None:
    import httpx

    while not stop.is_set():
        t0 = time.monotonic()
        try:
            ok = httpx.get(f"{url}/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            ok = False
        out.append((ok, time.monotonic() - t0))
        stop.wait(0.25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=300)
    ap.add_argument("--read-timeout", type=float, default=None, help="passed to muse serve (default: its own)")
    ap.add_argument("--give-up", type=float, default=60.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    token = secrets.token_urlsafe(32)
    port = free_port()
    env = {**os.environ, "MUSE_API_TOKEN": token, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "muse_cli", "serve", "--port", str(port), "--quiet"]
    if args.read_timeout:
        cmd += ["--read-timeout", str(args.read_timeout)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        kinds = ("idle", "header", "body")
        socks = {stall(port, kinds[i % 3], token): kinds[i % 3] for i in range(args.connections)}
        started = time.monotonic()
        stop, health = threading.Event(), []
        prober = threading.Thread(target=probe_health, args=(url, stop, health), daemon=True)
        prober.start()
        closed = watch(socks, started, args.give_up)
        stop.set()
        prober.join()
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    per_kind = {}
    for kind in sorted(closed):
        times = closed[kind]
        total = sum(1 for k in socks.values() if k == kind)
        per_kind[kind] = {
            "sockets": total, "dropped": len(times), "never_dropped": total - len(times),
            "min_s": round(min(times), 2) if times else None,
            "median_s": round(statistics.median(times), 2) if times else None,
            "max_s": round(max(times), 2) if times else None,
        }
    latencies = [t for ok, t in health if ok]
    report = {
        "connections": args.connections, "read_timeout": args.read_timeout or "default", "kinds": per_kind,
        "health": {"requests": len(health), "failed": sum(1 for ok, _ in health if not ok),
                   "median_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
                   "max_ms": round(1000 * max(latencies), 1) if latencies else None},
        "all_dropped_within_15s": all(v["never_dropped"] == 0 and (v["max_s"] or 0) <= 15 for v in per_kind.values()),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.connections} stalled connections against muse serve on loopback")
    for kind, v in per_kind.items():
        print(f"  {kind:6}  {v['dropped']}/{v['sockets']} dropped  min {v['min_s']} s  median {v['median_s']} s  "
              f"max {v['max_s']} s")
    h = report["health"]
    print(f"  /health while stalled: {h['requests']} requests, {h['failed']} failed, median {h['median_ms']} ms, "
          f"max {h['max_ms']} ms")
    print(f"  all dropped within 15 s: {report['all_dropped_within_15s']}")


if __name__ == "__main__":
    main()

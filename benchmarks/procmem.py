"""Run a command as its own process and measure it: wall time, peak resident memory, peak anonymous memory.

Peak RSS (`VmHWM`) counts file-backed pages too: transformers maps safetensors checkpoints, and every
page of the file a process has read stays in its RSS while the mapping lives, although the kernel can
drop those pages at any time without swapping. Peak anonymous memory (`RssAnon`, sampled every 50 ms)
is what the process itself needs. The last RSS sampled before the process ends (`final_rss_mb`) is its
working set once loaded: for an int8 model the float checkpoint's mapping is gone by then. Linux only
(/proc).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass


@dataclass
class Measured:
    exit: int
    wall_s: float
    peak_rss_mb: float
    peak_anon_mb: float
    final_rss_mb: float
    stdout: str
    stderr: str


def _status(pid: int) -> dict[str, float]:
    values = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "RssAnon", "VmRSS"):
                    values[key] = float(rest.split()[0]) / 1024  # kB -> MB
    except OSError:
        pass
    return values


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"VmHWM": 0.0, "RssAnon": 0.0, "VmRSS": 0.0}
    last = {"VmRSS": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            values = _status(proc.pid)
            for key, value in values.items():
                peak[key] = max(peak[key], value)
            if values.get("VmRSS"):
                last["VmRSS"] = values["VmRSS"]
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    return Measured(proc.returncode, round(time.perf_counter() - start, 1), round(max(peak["VmHWM"], peak["VmRSS"])),
                    round(peak["RssAnon"]), round(last["VmRSS"]), out, err)


def self_memory() -> dict[str, float]:
    """This process's peak RSS and current anonymous memory, in MB."""
    values = _status(os.getpid())
    return {"peak_rss_mb": round(values.get("VmHWM", 0)), "rss_mb": round(values.get("VmRSS", 0)),
            "anon_mb": round(values.get("RssAnon", 0))}

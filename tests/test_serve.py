"""`muse serve` as a client meets it over real sockets: stalled and idle clients are dropped while
/health keeps answering, the connection limit holds, the port is bound before anything is
announced, a token in the URL is refused and never logged, and a non-ASCII token works."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from _serve import ROOT, TOKEN, free_port, serve_command, start  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server():
    served = start("--quiet", "--read-timeout", "2", "--max-connections", "50")
    yield served
    served.stop()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes `sock` (reads EOF or a reset); fails after `limit`."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server still held the connection after {limit} s")
    return time.monotonic() - started


def health_ok(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=5).status_code == 200


def test_stalled_headers_idle_sockets_and_stalled_bodies_are_dropped_while_health_answers(server):
    idle = connect(server.url)  # connects, sends nothing
    header = connect(server.url)
    header.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    body = connect(server.url)
    body.sendall(b"POST /v1/midi HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"diffi")
    assert health_ok(server.url)
    for sock in (idle, header):
        assert closed_after(sock, 10) < 10
        sock.close()
    body.settimeout(10)
    reply = b""
    while b"stalled" not in reply:  # the head and the JSON body may come in separate reads
        chunk = body.recv(65536)
        if not chunk:
            break
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 408") and b"stalled" in reply
    assert closed_after(body, 10) < 10
    body.close()
    assert health_ok(server.url)


def test_headers_that_trickle_get_one_deadline_not_one_per_byte(server):
    sock = connect(server.url)
    started = time.monotonic()
    sock.settimeout(0.4)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
    try:
        for byte in request:
            sock.sendall(bytes([byte]))
            try:
                if sock.recv(1) == b"":
                    break
            except TimeoutError:
                continue
    except (BrokenPipeError, ConnectionResetError):
        pass
    # 100+ bytes at 0.4 s each would take 40 s; the 2 s header deadline ends it well before.
    assert time.monotonic() - started < 10
    sock.close()


def test_a_request_head_growing_past_16_kb_is_a_400(server):
    # h11 bounds what it buffers while a head is incomplete (a whole head read in one go is parsed)
    sock = connect(server.url)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(10)
    assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    sock.close()
    assert health_ok(server.url)


def test_a_finished_request_is_not_cut_by_the_header_deadline(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/v1/midi", json={"difficulty": "beginner", "bars": 64, "seed": 1}, headers=AUTH)
        assert r.status_code == 200
        time.sleep(1)  # under keep-alive and header deadlines: the same connection serves again
        assert client.get("/health").status_code == 200


def test_more_connections_than_the_limit_get_503_not_a_hang():
    served = start("--quiet", "--max-connections", "4", "--read-timeout", "30")
    try:
        held = [connect(served.url) for _ in range(4)]
        time.sleep(0.5)
        r = httpx.get(f"{served.url}/health", timeout=5)
        assert r.status_code == 503
        for sock in held:
            sock.close()
        time.sleep(0.5)
        assert health_ok(served.url)
    finally:
        served.stop()


# ------------------------------------------------------------------------- bind, then announce


def run_serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environ.pop("MUSE_API_TOKEN", None)
    return subprocess.run(serve_command(*args), env=environ, capture_output=True, text=True, timeout=60)


def test_a_port_in_use_is_one_line_and_exit_1_before_any_announcement():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_serve("--port", str(port))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "port is in use" in lines[0] and str(port) in lines[0], proc.stderr
    assert "muse API on" not in proc.stderr and "token" not in proc.stderr.lower()


@pytest.mark.parametrize("host", ["192.0.2.1", "no-such-host.invalid"])
def test_a_bad_host_is_one_line_and_exit_1(host):
    proc = run_serve("--host", host, "--port", str(free_port()))
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and host in proc.stderr
    assert "muse API on" not in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------- the token


def test_a_token_in_the_url_is_refused_and_never_logged():
    served = start()  # not --quiet: the access log is on
    try:
        for path in ("/health?token=URLSECRET1", "/v1/midi?access_token=URLSECRET2&x=1"):
            r = httpx.post(f"{served.url}{path}", json={"difficulty": "beginner"}, headers=AUTH, timeout=10)
            assert r.status_code == 400 and r.json()["error"]["type"] == "token_in_url"
        assert httpx.get(f"{served.url}/health?verbose=1", timeout=5).status_code == 200
        time.sleep(0.5)
    finally:
        log = served.stop()
    assert "/v1/midi?access_token=[redacted]&x=1" in log and "verbose=1" in log
    assert "URLSECRET" not in log and TOKEN not in log


def test_a_non_ascii_token_matches_when_sent_as_utf8():
    token = "clé-secrète-ümlaut-0123456789"
    served = start("--quiet", token=token)
    try:
        body = {"difficulty": "beginner", "seed": 1}
        good = httpx.post(f"{served.url}/v1/midi", json=body, timeout=30,
                          headers={"Authorization": b"Bearer " + token.encode("utf-8")})
        assert good.status_code == 200, good.text
        wrong = httpx.post(f"{served.url}/v1/midi", json=body, timeout=30,
                           headers={"Authorization": b"Bearer " + token.encode("utf-8")[:-1] + b"X"})
        assert wrong.status_code == 401
    finally:
        served.stop()

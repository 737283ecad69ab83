"""Seed 004's routes and S3-compatible storage, tested for real: moto's standalone S3 server
(`moto[server]`, a real HTTP implementation of the S3 API, with IAM credentials enforced) on
loopback, a real `muse serve --storage s3://...` process, and httpx requests written from the
seed's README alone. What lands in the bucket is read back with boto3, separately from muse.

The song models cannot run here: the serve process answers the song stages with the stand-ins of
tests/serve_stand_in.py (the lyrics and cover stand-ins of test_song.py, and a WAV of the
requested length for ACE-Step); the in-process tests use test_web's SongStages. The real pipeline
runs in `test_seed_route_with_the_real_song_models`, skipped without its packages and weights.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")
httpx = pytest.importorskip("httpx")

from botocore.config import Config  # noqa: E402

from _serve import ROOT, TOKEN, free_port, start  # noqa: E402

HERE = Path(__file__).resolve().parent
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BUCKET = "seed-songs"
PREFIX = "muse"
KEY_RE = re.compile(rf"{PREFIX}/[0-9a-f]{{32}}\.(wav|png)")
STAND_IN = [sys.executable, str(HERE / "serve_stand_in.py")]
POLICY_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
# A user who may put WAVs but not PNGs (and may delete): a song whose cover upload fails.
POLICY_WAV_ONLY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
    {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*.png"},
]}


class Moto:
    def __init__(self, url: str, users: dict[str, tuple[str, str]]):
        self.url, self.users = url, users

    def env(self, user: str = "muse", **override: str) -> dict[str, str]:
        key_id, secret = self.users[user]
        return {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
                "MUSE_S3_ENDPOINT_URL": self.url, **override}

    def s3(self, user: str = "muse"):
        key_id, secret = self.users[user]
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=key_id,
                            aws_secret_access_key=secret, config=Config(s3={"addressing_style": "path"}))

    def keys(self) -> set[str]:
        listing = self.s3().list_objects_v2(Bucket=BUCKET)
        return {o["Key"] for o in listing.get("Contents", [])}

    def uploads_in_progress(self) -> list:
        return self.s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])

    def read(self, key: str) -> bytes:
        return self.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def moto():
    """moto_server on 127.0.0.1; after its first 6 calls (two IAM users) it checks every signature."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "6"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        users = {}
        for user, policy in (("muse", POLICY_ALL), ("wav-only", POLICY_WAV_ONLY)):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            users[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        server = Moto(url, users)
        server.s3().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def served(moto):
    """`muse serve --storage s3://seed-songs/muse --debug`: the noisiest log, to look for secrets in."""
    server = start("--debug", "--storage", f"s3://{BUCKET}/{PREFIX}", python=STAND_IN, env=moto.env())
    yield server
    server.stop()


def post(served, path: str, body: dict, **kw):
    return httpx.post(f"{served.url}{path}", json=body, headers=AUTH, timeout=120, **kw)


def wav_seconds(data: bytes) -> float:
    import soundfile as sf

    info = sf.info(io.BytesIO(data))
    return info.frames / info.samplerate


# The three request bodies exactly as seed 004's README gives them (durations shortened).
SEED_BODIES = {
    "/generate-from-description": {
        "full_described_song": "A upbeat electronic dance track with energetic beats",
        "audio_duration": 3.0, "seed": -1, "guidance_scale": 15.0, "infer_step": 60, "instrumental": False},
    "/generate-with-lyrics": {
        "prompt": "electronic rap, 140BPM", "lyrics": "[verse]\nYour custom lyrics here...",
        "audio_duration": 2.0, "seed": -1, "guidance_scale": 15.0, "infer_step": 60, "instrumental": False},
    "/generate-with-described-lyrics": {
        "prompt": "rave, funk, 140BPM, disco", "described_lyrics": "lyrics about summer nights and dancing",
        "audio_duration": 4.0, "seed": -1, "guidance_scale": 15.0, "infer_step": 60, "instrumental": False},
}


# ------------------------------------------------------------------ a seed client, end to end


def test_health_and_auth_status_answer_as_the_seed_expects(served):
    health = httpx.get(f"{served.url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["model"] == "facebook/musicgen-small"
    assert {"version", "protocol", "backend", "models"} <= set(health)  # muse's own fields stay
    good = httpx.post(f"{served.url}/auth-status", headers=AUTH, timeout=10)
    assert good.status_code == 200 and good.json()["authenticated"] is True
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        assert httpx.post(f"{served.url}/auth-status", headers=headers, timeout=10).status_code == 401


@pytest.mark.parametrize("path", list(SEED_BODIES))
def test_a_seed_client_gets_its_three_keys_and_finds_both_files_in_the_bucket(served, moto, path):
    r = post(served, path, SEED_BODIES[path])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"r2_key", "cover_image_r2_key", "categories"}
    assert KEY_RE.fullmatch(body["r2_key"]) and body["r2_key"].endswith(".wav")
    assert KEY_RE.fullmatch(body["cover_image_r2_key"]) and body["cover_image_r2_key"].endswith(".png")
    assert body["categories"] == ["Synth-pop", "Electronic", "Pop"]
    audio, cover = moto.read(body["r2_key"]), moto.read(body["cover_image_r2_key"])
    assert wav_seconds(audio) == pytest.approx(SEED_BODIES[path]["audio_duration"])
    assert cover.startswith(b"\x89PNG")
    head = moto.s3().head_object(Bucket=BUCKET, Key=body["r2_key"])
    assert head["ContentType"] == "audio/wav"
    # The same bytes through muse, by the bucket key or by the bare name.
    for key in (body["r2_key"], body["r2_key"].split("/", 1)[1]):
        fetched = httpx.get(f"{served.url}/v1/files/{key}", headers=AUTH, timeout=30)
        assert fetched.status_code == 200 and fetched.content == audio
        assert fetched.headers["content-type"] == "audio/wav"


def test_keys_are_unique_per_song(served):
    keys = {post(served, "/generate-with-lyrics", SEED_BODIES["/generate-with-lyrics"]).json()["r2_key"]
            for _ in range(3)}
    assert len(keys) == 3


def test_a_large_song_goes_up_in_parts_and_arrives_whole(served, moto):
    body = {**SEED_BODIES["/generate-from-description"], "audio_duration": 240}
    r = post(served, "/generate-from-description", body)
    assert r.status_code == 200, r.text
    key = r.json()["r2_key"]
    head = moto.s3().head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] > 40 * 2**20  # 240 s of 48 kHz stereo WAV: over the 16 MB part threshold
    assert "-" in head["ETag"]  # a multipart object's ETag is "<md5 of part md5s>-<parts>"
    assert wav_seconds(moto.read(key)) == pytest.approx(240)
    fetched = httpx.get(f"{served.url}/v1/files/{key}", headers=AUTH, timeout=60)
    assert int(fetched.headers["content-length"]) == head["ContentLength"] == len(fetched.content)
    assert moto.uploads_in_progress() == []


def test_bad_seed_bodies_get_field_errors_in_the_seeds_names(served, moto):
    before = moto.keys()
    cases = [
        ("/generate-from-description", {}, "full_described_song"),
        ("/generate-from-description", {"full_described_song": "x", "audio_duration": 500}, "audio_duration"),
        ("/generate-with-lyrics", {"prompt": "pop"}, "lyrics"),
        ("/generate-with-lyrics", {"prompt": "pop", "lyrics": "[verse]\nhi", "infer_step": 0}, "infer_step"),
        ("/generate-with-described-lyrics", {"prompt": "pop", "described_lyrics": "rain", "guidance_scale": 99},
         "guidance_scale"),
        ("/generate-with-described-lyrics", {"prompt": "pop", "described_lyrics": "rain", "seed": -2}, "seed"),
    ]
    for path, body, field in cases:
        r = post(served, path, body)
        assert r.status_code == 422, (path, body, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_input" and error["fields"][0]["field"] == field
    both = post(served, "/generate-with-described-lyrics",
                {"prompt": "pop", "described_lyrics": "rain", "instrumental": True}).json()["error"]
    assert "described_lyrics" in both["message"] and "describe_lyrics" not in both["message"]
    assert moto.keys() == before  # nothing stored for a refused request


def test_v1_songs_by_key_also_go_to_the_bucket(served, moto):
    r = post(served, "/v1/songs?delivery=key", {"tags": "folk", "instrumental": True, "duration": 1})
    assert r.status_code == 200, r.text
    key = r.json()["audio_key"]
    assert KEY_RE.fullmatch(key) and key in moto.keys()


def test_only_objects_muse_named_can_be_fetched(served, moto):
    moto.s3().put_object(Bucket=BUCKET, Key="private/notes.txt", Body=b"not for clients")
    moto.s3().put_object(Bucket=BUCKET, Key=f"other/{'a' * 32}.wav", Body=b"RIFF")
    for key in ("private/notes.txt", f"other/{'a' * 32}.wav", f"{PREFIX}/../private/notes.txt", "b" * 32 + ".wav"):
        r = httpx.get(f"{served.url}/v1/files/{key}", headers=AUTH, timeout=10)
        assert r.status_code == 404, key
        assert "not for clients" not in r.text


def test_storage_credentials_appear_in_no_log_and_no_response(served, moto):
    r = post(served, "/generate-with-lyrics", SEED_BODIES["/generate-with-lyrics"])
    assert r.status_code == 200
    key_id, secret = moto.users["muse"]
    time.sleep(0.5)
    assert "results go to s3://seed-songs/muse" in served.log  # the log is there, and --debug
    assert key_id not in served.log and secret not in served.log
    assert key_id not in r.text and secret not in r.text


# ------------------------------------------------------------------------------- failures


def run_serve(args: list[str], env: dict, timeout: float = 30) -> tuple[subprocess.CompletedProcess, float]:
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "PYTHONPATH": str(ROOT),
               "MUSE_API_TOKEN": TOKEN, **env}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "muse_cli", "serve", "--port", str(free_port()), *args],
                          env=environ, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - started


def assert_one_line_exit_1(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 1, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("error: ") and all(w in first for w in words), proc.stderr
    assert "Traceback" not in proc.stderr and "muse API on" not in proc.stderr


def test_serve_with_wrong_credentials_stops_with_one_line(moto):
    key_id, secret = moto.users["muse"]
    for env in (moto.env(AWS_SECRET_ACCESS_KEY="wrong-secret-" + "x" * 20),
                moto.env(AWS_ACCESS_KEY_ID="AKIANOSUCHKEY0000000")):
        proc, _ = run_serve(["--storage", f"s3://{BUCKET}"], env)
        assert_one_line_exit_1(proc, "403", "AWS_SECRET_ACCESS_KEY")
        assert secret not in proc.stderr and "wrong-secret" not in proc.stderr


def test_serve_with_a_missing_bucket_stops_with_one_line(moto):
    proc, _ = run_serve(["--storage", "s3://no-such-bucket"], moto.env())
    assert_one_line_exit_1(proc, "s3://no-such-bucket", "does not exist")


def test_serve_with_a_malformed_storage_url_is_exit_2(moto):
    proc, _ = run_serve(["--storage", "http://bucket"], moto.env())
    assert proc.returncode == 2 and "s3://BUCKET" in proc.stderr


class Silent:
    """A TCP server on loopback that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except (TimeoutError, OSError):
                continue

    def close(self):
        self.stop.set()
        for s in self.held:
            s.close()
        self.sock.close()


@pytest.fixture
def silent():
    server = Silent()
    yield server
    server.close()


def test_serve_with_an_unreachable_store_stops_within_10_s(moto, silent):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused at once
    proc, start_up = run_serve(["--storage", f"s3://{BUCKET}", "--s3-endpoint", closed], moto.env())
    assert_one_line_exit_1(proc, closed, "cannot connect")
    proc, took = run_serve(["--storage", f"s3://{BUCKET}", "--s3-endpoint", silent.url], moto.env())
    assert_one_line_exit_1(proc, silent.url, "did not answer")
    assert took - start_up < 10  # start-up (imports) aside, the silent store costs under 10 s


# In-process (the same app `muse serve` runs) for a store that breaks after start-up.


def make_client(store, backend=None):
    from fastapi.testclient import TestClient

    from muse_cli.http.app import create_app
    from test_web import SongStages

    return TestClient(create_app(backend or SongStages(), token=TOKEN, storage_dir=HERE, store=store),
                      raise_server_exceptions=False)


class Recording:
    """test_web's SongStages, recording the families it ran."""

    def __init__(self):
        from test_web import SongStages

        self.inner, self.families, self.requests = SongStages(), [], {}
        self.name = "local"

    def run(self, family, request, **kw):
        self.families.append(family)
        key = family if family != "lyrics" else f"lyrics:{request.task}"
        self.requests[key] = request
        return self.inner.run(family, request, **kw)


def s3_store(moto, user="muse", **env):
    from muse_cli.http.store import S3Store

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    os.environ.update({k: v for k, v in moto.env(user, **env).items() if k.startswith("AWS_")})
    try:
        return S3Store(f"s3://{BUCKET}/{PREFIX}", endpoint_url=env.get("MUSE_S3_ENDPOINT_URL", moto.url))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_wrong_credentials_are_a_one_line_503_before_any_gpu_time(moto):
    before = moto.keys()
    backend = Recording()
    client = make_client(s3_store(moto, AWS_SECRET_ACCESS_KEY="wrong-secret-" + "y" * 20), backend)
    r = client.post("/generate-with-lyrics", json=SEED_BODIES["/generate-with-lyrics"], headers=AUTH)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["type"] == "storage_unavailable" and "\n" not in error["message"]
    assert "403" in error["message"] and "AWS_SECRET_ACCESS_KEY" in error["message"]
    assert "wrong-secret" not in r.text and moto.users["muse"][0] not in r.text
    assert backend.families == []  # refused before the song stages ran
    assert moto.keys() == before and moto.uploads_in_progress() == []


def test_a_cover_that_cannot_be_stored_takes_its_song_back_out(moto):
    """The wav-only user may put the WAV but not the PNG: the song's WAV is deleted again."""
    before = moto.keys()
    client = make_client(s3_store(moto, "wav-only"))
    r = client.post("/generate-from-description", json=SEED_BODIES["/generate-from-description"], headers=AUTH)
    assert r.status_code == 503 and "storing a result" in r.json()["error"]["message"], r.text
    assert moto.keys() == before and moto.uploads_in_progress() == []


def test_a_bucket_removed_after_start_up_is_a_503(moto):
    s3 = moto.s3()
    s3.create_bucket(Bucket="short-lived")
    from muse_cli.http.store import S3Store

    os.environ.update({k: v for k, v in moto.env().items() if k.startswith("AWS_")})
    try:
        store = S3Store("s3://short-lived", endpoint_url=moto.url)
        store.check()
    finally:
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            os.environ.pop(k, None)
    s3.delete_bucket(Bucket="short-lived")
    store._ready_at = 0.0  # the minute-long "known good" has passed
    r = make_client(store).post("/generate-with-lyrics", json=SEED_BODIES["/generate-with-lyrics"], headers=AUTH)
    assert r.status_code == 503 and "does not exist" in r.json()["error"]["message"], r.text


def test_a_store_that_stops_answering_fails_the_request_within_10_s(moto, silent):
    store = s3_store(moto, MUSE_S3_ENDPOINT_URL=silent.url)
    backend = Recording()
    started = time.monotonic()
    r = make_client(store, backend).post("/generate-from-description",
                                         json=SEED_BODIES["/generate-from-description"], headers=AUTH)
    assert time.monotonic() - started < 10
    assert r.status_code == 503 and silent.url in r.json()["error"]["message"], r.text
    assert backend.families == []


def test_seed_defaults_reach_the_song_stages(moto):
    backend = Recording()
    client = make_client(s3_store(moto), backend)
    r = client.post("/generate-with-described-lyrics", json={"prompt": "rave, funk", "described_lyrics": "summer"},
                    headers=AUTH)
    assert r.status_code == 200, r.text
    ace = backend.requests["acestep"]
    assert (ace.duration, ace.guidance, ace.steps, ace.tags) == (180.0, 15.0, 60, "rave, funk")
    assert 0 <= ace.seed < 2**32  # -1 became a random seed
    assert backend.requests["lyrics:lyrics"].description == "summer"
    instrumental = make_client(s3_store(moto), Recording())
    r = instrumental.post("/generate-from-description", json={"full_described_song": "calm piano", "instrumental": True,
                                                              "audio_duration": 1}, headers=AUTH)
    assert r.status_code == 200, r.text


def test_the_storage_url_is_checked(moto):
    from muse_cli.http.store import parse_storage_url, safe_endpoint

    assert parse_storage_url("s3://songs") == ("songs", "")
    assert parse_storage_url("s3://songs/a/b/") == ("songs", "a/b")
    for bad in ("songs", "http://songs", "s3://", "s3://UPPER", "s3://songs/a/../b", "s3://songs?x=1"):
        with pytest.raises(ValueError):
            parse_storage_url(bad)
    assert safe_endpoint("https://user:pass@host.example:9000/x") == "https://host.example:9000/x"


def test_boto3_is_not_imported_at_cli_start_up():
    code = "import sys, muse_cli.cli, muse_cli.cli.serve; print('boto3' in sys.modules or 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(
    not (os.environ.get("MUSE_ACESTEP_CHECKPOINT") and __import__("importlib").util.find_spec("acestep")),
    reason="needs the acestep package, MUSE_ACESTEP_CHECKPOINT and a GPU: the real song models cannot run here",
)
def test_seed_route_with_the_real_song_models(moto):
    """The real pipeline behind a seed route: `muse serve` (no stand-ins) into the moto bucket."""
    server = start("--quiet", "--storage", f"s3://{BUCKET}/{PREFIX}", env=moto.env(), wait=600)
    try:
        r = post(server, "/generate-with-lyrics", {**SEED_BODIES["/generate-with-lyrics"], "audio_duration": 10})
        assert r.status_code == 200, r.text
        assert wav_seconds(moto.read(r.json()["r2_key"])) == pytest.approx(10, abs=0.5)
    finally:
        server.stop()

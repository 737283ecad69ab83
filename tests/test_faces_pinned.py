"""One job of each kind through each face (the CLI, `muse batch`, the HTTP API), pinned.

What every face writes or answers for a fixed seed (files, sidecars, the manifest, HTTP bodies,
stdout) is reduced to a digest: bytes by sha256, JSON with its clock readings removed (creation
times, timings, the Python version). The digests recorded in tests/pinned/faces.json were taken
before the job kinds moved into muse_cli/kinds/ and the HTTP API into muse_cli/http/, so a
refactor that changes any output, name or response fails here.

    MUSE_PIN_RECORD=1 .venv/bin/python -m pytest tests/test_faces_pinned.py   # record anew
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

PINNED = Path(__file__).parent / "pinned" / "faces.json"
CLOCK_KEYS = {"created", "finished", "timings", "python", "elapsed_s", "generation_s"}
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LYRICS = "[verse]\nlanterns on the water\n[chorus]\nhold the night\n"


def scrub(value: Any, root: Path) -> Any:
    """JSON without clock readings; absolute paths under the test folder made relative."""
    if isinstance(value, dict):
        return {k: scrub(v, root) for k, v in value.items() if k not in CLOCK_KEYS}
    if isinstance(value, list):
        return [scrub(v, root) for v in value]
    if isinstance(value, str) and len(value) > 256:  # base64 files, long texts
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    if isinstance(value, str):
        return value.replace(str(root) + os.sep, "").replace(str(root), ".")
    return value


def digest_file(path: Path, root: Path) -> Any:
    data = path.read_bytes()
    if path.suffix == ".json":
        return scrub(json.loads(data), root)
    if path.suffix == ".jsonl":
        return [scrub(json.loads(line), root) for line in data.decode().splitlines()]
    return hashlib.sha256(data).hexdigest()


def digest_folder(folder: Path, root: Path) -> dict[str, Any]:
    skip = {"manifest.lock"}
    return {p.name: digest_file(p, root) for p in sorted(folder.iterdir()) if p.is_file() and p.name not in skip}


def digest_stdout(text: str, root: Path) -> Any:
    lines = text.splitlines()
    try:
        return [scrub(json.loads(line), root) for line in lines]
    except json.JSONDecodeError:
        return [scrub(line, root) for line in lines]


def digest_reply(response: Any, root: Path) -> Any:
    kind = response.headers.get("content-type", "")
    body = scrub(response.json(), root) if kind.startswith("application/json") else hashlib.sha256(response.content).hexdigest()
    return {"status": response.status_code, "body": body}


def song_stand_in(monkeypatch) -> None:
    """The three song stages answered by test_song's stand-ins at the backend boundary, as
    tests/serve_stand_in.py does for a running server (the song models cannot run here)."""
    from muse_cli.backends.local import LocalBackend

    real = LocalBackend.run
    from serve_stand_in import run  # its import patches the class for good: undo, then patch for this test

    LocalBackend.run = real
    monkeypatch.setattr(LocalBackend, "run", run)
    monkeypatch.setattr("muse_cli.ops.readiness.song", lambda **_: [])


@pytest.fixture
def material(tmp_path, monkeypatch):
    """A tiny MusicGen as ./tiny, a take and its score, lyrics, a jobs file; the cwd is tmp_path."""
    import torch
    from test_practice import midi, score_notes
    from tiny_musicgen import build_tiny_musicgen

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    build_tiny_musicgen(tmp_path / "tiny")
    notes = score_notes(bars=4)
    (tmp_path / "piece.mid").write_bytes(midi(notes))
    take = [(s + 0.01, e, p + (1 if k == 5 else 0), v) for k, (s, e, p, v) in enumerate(notes) if k != 9]
    (tmp_path / "take.mid").write_bytes(midi(take, key=None))
    (tmp_path / "lyrics.txt").write_text(LYRICS)
    jobs = [
        {"kind": "midi", "id": "m", "difficulty": "beginner", "seed": 7, "render": True},
        {"kind": "audio", "id": "a", "prompt": "jazz piano", "duration": 1, "seed": 3, "model": "./tiny"},
        {"kind": "song", "id": "s", "tags": "indie folk", "lyrics_file": "lyrics.txt", "duration": 5, "seed": 5},
        {"kind": "analyze", "id": "t", "input": "take.mid", "score": "piece.mid"},
    ]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in jobs))
    song_stand_in(monkeypatch)
    yield tmp_path
    torch.set_num_threads(threads)


CLI_RUNS = {
    "midi": ["gen", "midi", "--difficulty", "beginner", "--seed", "7", "--render", "--json"],
    "audio": ["gen", "audio", "jazz piano", "-d", "1", "--seed", "3", "--backend", "local", "--model", "./tiny", "--json"],
    "song": ["gen", "song", "--tags", "indie folk", "--lyrics", "lyrics.txt", "-d", "5", "--seed", "5", "--backend", "local", "--json"],
    "analysis": ["analyze", "take.mid", "--score", "piece.mid", "--json"],
    "render": ["render", "piece.mid", "--json"],
}


def faces(root: Path, run_cli: Any) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from muse_cli.backends.local import LocalBackend
    from muse_cli.http.app import create_app

    seen: dict[str, Any] = {}
    for name, args in CLI_RUNS.items():
        out_dir = root / f"cli-{name}"
        code, out, err = run_cli(*args, "--out-dir", str(out_dir))
        assert code == 0, err
        seen[f"cli/{name}"] = {"stdout": digest_stdout(out, root), "files": digest_folder(out_dir, root)}

    code, out, err = run_cli("batch", "jobs.jsonl", "--out-dir", "batch", "--json", "--backend", "local")
    assert code == 0, err
    seen["batch"] = {"stdout": digest_stdout(out, root), "files": digest_folder(root / "batch", root)}

    api = create_app(LocalBackend(), token=TOKEN, storage_dir=root / "files", model_aliases={"tiny": "./tiny"},
                     default_audio_model="tiny")
    client = TestClient(api, raise_server_exceptions=False)
    bodies = {
        "/v1/midi": {"engine": "etude", "difficulty": "beginner", "seed": 7},
        "/generate": {"prompt": "a beginner piano exercise", "difficulty": "beginner", "seed": 7},
        "/v1/audio": {"prompt": "jazz piano", "duration": 1, "seed": 3, "model": "tiny"},
        "/generate_endpoint": {"prompt": "jazz piano", "duration": 1, "seed": 3},
        "/v1/songs": {"tags": "indie folk", "lyrics": LYRICS, "duration": 5, "seed": 5},
        "/generate-with-lyrics": {"prompt": "indie folk", "lyrics": LYRICS, "audio_duration": 5, "seed": 5},
    }
    for path, body in bodies.items():
        seen[f"http{path}"] = digest_reply(client.post(path, json=body, headers=AUTH), root)
    files = {"file": ("take.mid", (root / "take.mid").read_bytes(), "audio/midi"),
             "score": ("piece.mid", (root / "piece.mid").read_bytes(), "audio/midi")}
    seen["http/v1/analyze"] = digest_reply(client.post("/v1/analyze", files=files, headers=AUTH), root)
    song_key = seen["http/generate-with-lyrics"]["body"]["r2_key"]
    seen["http/v1/files"] = digest_reply(client.get(f"/v1/files/{song_key}", headers=AUTH), root)
    seen["http/v1/files"]["key"] = "<random>"
    seen["http/generate-with-lyrics"]["body"].update(r2_key="<random>", cover_image_r2_key="<random>")
    seen["http/generate_endpoint"]["body"].update(audio_base64="<random>", seed="<random>")  # takes no seed
    return seen


def test_each_kind_through_each_face_is_pinned(material, run_cli):
    pytest.importorskip("transformers")
    pytest.importorskip("fastapi")
    seen = faces(material, run_cli)
    if os.environ.get("MUSE_PIN_RECORD"):
        PINNED.parent.mkdir(exist_ok=True)
        PINNED.write_text(json.dumps(seen, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(PINNED.read_text())
    assert sorted(seen) == sorted(pinned)
    for face in pinned:
        assert seen[face] == pinned[face], face


"""No option is silently ignored: every option of every command either changes what happens, or the
combination that would ignore it exits 2 naming it.

The test walks Typer's command tree, so an option added without an entry in CASES fails
`test_every_option_has_a_case`. Each case runs the real CLI in-process in a fresh folder:

- Effect(base, extra): `base + extra` must be observed differently from `base` (exit code, stdout,
  stderr, the files written and their contents, the requests that reached a backend). Each base
  is first run twice and must observe the same, so a difference is the option's doing, not noise.
- Refused(base, extra, needle): exit 2, `needle` on stderr, no file written.
- Elsewhere(reason): the few options whose effect needs Modal or a server; the reason says where
  they are tested.

Engines that cannot run here (MIDI-LLM, MusicGen hub models, the lyrics LLM, cover art) sit behind
a recording backend: the request that reaches it is what is observed, then it fails as a transient
error. ACE-Step is stood in by a recorder that returns silence of the requested length and format,
so the song's saving options are exercised too; it is labelled as such in every sidecar it makes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pretty_midi
import pytest
import typer

sys.path.insert(0, str(Path(__file__).parent))  # tiny_musicgen


# ------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Effect:
    base: tuple[str, ...]
    extra: tuple[str, ...]
    setup: Callable[[Path], None] | None = None
    needs: str | None = None  # a MATERIAL that must exist, else skipped with the reason


@dataclass(frozen=True)
class Refused:
    base: tuple[str, ...]
    extra: tuple[str, ...]
    needle: str
    setup: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class Elsewhere:
    reason: str


def _existing(name: str, data: bytes = b"mine") -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    return setup


def _pickle(name: str) -> Callable[[Path], None]:
    import pickle

    return _existing(name, pickle.dumps({"not": "a piano model"}))


def _ran_before(*argv: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        code, _, err = _invoke(list(argv))
        assert code == 0, err

    return setup


ETUDE = ("gen", "midi", "--engine", "etude", "--seed", "3")
LLM = ("gen", "midi", "a calm waltz", "--seed", "3", "--backend", "modal")
BAD_MIDI = (*ETUDE, "--key", "H")
AUDIO = ("gen", "audio", "jazz piano", "-d", "1", "--seed", "1", "--backend", "local", "--model", "@tiny")
AUDIO_REMOTE = ("gen", "audio", "jazz piano", "-d", "2", "--seed", "1", "--backend", "modal")
SONG = ("gen", "song", "--tags", "pop", "--lyrics", "lyrics.txt", "-d", "1", "--seed", "1", "--backend", "modal",
        "--no-cover", "--no-categories")
SONG_LLM = ("gen", "song", "summer nights", "-d", "1", "--seed", "1", "--backend", "modal", "--no-cover", "--no-categories")
SONG_TAGS = ("gen", "song", "--tags", "pop", "-d", "1", "--seed", "1", "--backend", "modal", "--no-cover", "--no-categories")
SONG_FULL = ("gen", "song", "--tags", "pop", "--lyrics", "lyrics.txt", "-d", "1", "--seed", "1", "--backend", "modal")
RENDER = ("render", "tune.mid")
TAKE = ("analyze", "take.wav", "--backend", "local")
TUNE = ("analyze", "tune.mid", "--backend", "local")
BATCH = ("batch", "jobs.jsonl", "--out-dir", "b", "--backend", "local")
BATCH_REMOTE = ("batch", "remote.jsonl", "--out-dir", "b", "--backend", "modal", "--retries", "0", "--concurrency", "1")
DEPLOY = ("deploy", "--dry-run")
CONVERT = ("models", "convert", "piano", "ck.pkl", "out.safetensors")

CASES: dict[tuple[str, str], list[Any]] = {
    ("", "--version"): [Effect((), ("--version",))],
    ("", "--install-completion"): [Effect((), ("--install-completion", "bash"))],
    ("", "--show-completion"): [Effect((), ("--show-completion", "bash"))],
    # ---- gen midi
    ("gen midi", "--difficulty"): [Effect(ETUDE, ("--difficulty", "advanced"))],
    ("gen midi", "--key"): [Effect(ETUDE, ("--key", "F#m"))],
    ("gen midi", "--tempo"): [Effect(ETUDE, ("--tempo", "150"))],
    ("gen midi", "--time-signature"): [Effect(ETUDE, ("--time-signature", "3/4"))],
    ("gen midi", "--bars"): [Effect(ETUDE, ("--bars", "4"))],
    ("gen midi", "--instrument"): [Effect(ETUDE, ("--instrument", "violin"))],
    ("gen midi", "--hands"): [Effect(ETUDE, ("--hands", "1"))],
    ("gen midi", "--style"): [Effect(LLM, ("--style", "baroque"))],
    ("gen midi", "--engine"): [Effect(LLM, ("--engine", "etude"))],
    ("gen midi", "--model"): [Effect(LLM, ("--model", "someone/else")),
                              Refused(ETUDE, ("--model", "x/y"), "--model")],
    ("gen midi", "--temperature"): [Effect(LLM, ("--temperature", "0.5")),
                                    Refused(ETUDE, ("--temperature", "0.5"), "--temperature")],
    ("gen midi", "--top-p"): [Effect(LLM, ("--top-p", "0.5")), Refused(ETUDE, ("--top-p", "0.5"), "--top-p")],
    ("gen midi", "--max-tokens"): [Effect(LLM, ("--max-tokens", "300")),
                                   Refused(ETUDE, ("--max-tokens", "300"), "--max-tokens")],
    ("gen midi", "--render"): [Effect(ETUDE, ("--render",))],
    ("gen midi", "--soundfont"): [Effect((*ETUDE, "--render"), ("--soundfont", "font.sf2"), needs="font.sf2")],
    ("gen midi", "--format"): [Effect((*ETUDE, "--render"), ("--format", "flac")),
                               Refused(ETUDE, ("--format", "flac"), "--render")],
    ("gen midi", "--prompts-file"): [Effect(ETUDE, ("--prompts-file", "prompts.txt", "--out-dir", "p"))],
    ("gen midi", "--count"): [Effect(ETUDE, ("-n", "2"))],
    ("gen midi", "--seed"): [Effect(ETUDE, ("--seed", "4"))],
    ("gen midi", "--output"): [Effect(ETUDE, ("-o", "named.mid"))],
    ("gen midi", "--out-dir"): [Effect(ETUDE, ("--out-dir", "sub")), Effect((*ETUDE, "-o", "x.mid"), ("--out-dir", "sub"))],
    ("gen midi", "--force"): [Effect((*ETUDE, "-o", "mine.mid"), ("--force",), setup=_existing("mine.mid")),
                              Refused((*ETUDE, "--prompts-file", "prompts.txt"), ("--force",), "--force")],
    ("gen midi", "--backend"): [Effect(LLM, ("--backend", "local"))],
    ("gen midi", "--precision"): [Effect(LLM, ("--precision", "bf16")), Refused(ETUDE, ("--precision", "int8"), "--precision"),
                                  Refused(LLM, ("--precision", "int8"), "--precision")],
    ("gen midi", "--json"): [Effect(ETUDE, ("--json",))],
    ("gen midi", "--quiet"): [Effect(ETUDE, ("-q",))],
    ("gen midi", "--debug"): [Effect(BAD_MIDI, ("--debug",))],
    # ---- gen audio (a tiny MusicGen of the real architecture, loaded by path)
    ("gen audio", "--duration"): [Effect(AUDIO, ("-d", "2"))],
    ("gen audio", "--model"): [Effect(AUDIO_REMOTE, ("--model", "medium"))],
    ("gen audio", "--temperature"): [Effect(AUDIO, ("--temperature", "0.3"))],
    ("gen audio", "--top-k"): [Effect(AUDIO, ("--top-k", "2"))],
    ("gen audio", "--top-p"): [Effect(AUDIO, ("--top-p", "0.1"))],
    ("gen audio", "--guidance"): [Effect(AUDIO, ("--cfg", "1.0"))],
    ("gen audio", "--extend-stride"): [Effect((*AUDIO_REMOTE, "-d", "40"), ("--extend-stride", "10")),
                                       Refused(AUDIO, ("--extend-stride", "10"), "--extend-stride")],
    ("gen audio", "--melody"): [Effect((*AUDIO_REMOTE, "--model", "melody"), ("--melody", "hum.wav"))],
    ("gen audio", "--continue"): [Effect(AUDIO, ("--continue", "hum.wav"))],
    ("gen audio", "--decoder"): [Effect(AUDIO_REMOTE, ("--decoder", "mbd"))],
    ("gen audio", "--format"): [Effect(AUDIO, ("--format", "flac"))],
    ("gen audio", "--float"): [Effect(AUDIO, ("--float",)), Refused((*AUDIO, "--format", "flac"), ("--float",), "--float")],
    ("gen audio", "--normalize"): [Effect(AUDIO, ("--normalize", "peak"))],
    ("gen audio", "--target-lufs"): [Effect(AUDIO, ("--target-lufs", "-20")),
                                     Refused((*AUDIO, "--normalize", "peak"), ("--target-lufs", "-20"), "--target-lufs")],
    ("gen audio", "--prompts-file"): [Effect(AUDIO_REMOTE[:2] + AUDIO_REMOTE[3:], ("--prompts-file", "prompts.txt", "--out-dir", "p"))],
    ("gen audio", "--count"): [Effect(AUDIO, ("-n", "2"))],
    ("gen audio", "--seed"): [Effect(AUDIO, ("--seed", "2"))],
    ("gen audio", "--output"): [Effect(AUDIO, ("-o", "clip.wav"))],
    ("gen audio", "--out-dir"): [Effect(AUDIO, ("--out-dir", "sub"))],
    ("gen audio", "--force"): [Effect((*AUDIO, "-o", "mine.wav"), ("--force",), setup=_existing("mine.wav"))],
    ("gen audio", "--backend"): [Effect(AUDIO_REMOTE, ("--backend", "local"))],
    ("gen audio", "--precision"): [Effect(AUDIO, ("--precision", "fp32")), Refused(AUDIO_REMOTE, ("--precision", "int8"), "--precision"),
                                   Refused(AUDIO, ("--precision", "int4"), "--precision")],
    ("gen audio", "--json"): [Effect(AUDIO, ("--json",))],
    ("gen audio", "--quiet"): [Effect(AUDIO, ("-q",))],
    ("gen audio", "--debug"): [Effect(AUDIO_REMOTE, ("--debug",))],
    # ---- gen song (ACE-Step stood in; the LLM and cover art recorded)
    ("gen song", "--lyrics"): [Effect(SONG_LLM, ("--tags", "pop", "--lyrics", "lyrics.txt"))],
    ("gen song", "--tags"): [Effect(SONG_LLM, ("--tags", "rock"))],
    ("gen song", "--describe-lyrics"): [Effect(SONG_TAGS, ("--describe-lyrics", "rain on the window"))],
    ("gen song", "--instrumental"): [Effect(SONG_LLM, ("--instrumental",))],
    ("gen song", "--duration"): [Effect(SONG, ("-d", "2"))],
    ("gen song", "--steps"): [Effect(SONG, ("--steps", "10"))],
    ("gen song", "--guidance"): [Effect(SONG, ("--guidance", "5"))],
    ("gen song", "--scheduler"): [Effect(SONG, ("--scheduler", "heun"))],
    ("gen song", "--cfg-type"): [Effect(SONG, ("--cfg-type", "cfg"))],
    ("gen song", "--omega"): [Effect(SONG, ("--omega", "5"))],
    ("gen song", "--format"): [Effect(SONG, ("--format", "flac"))],
    ("gen song", "--float"): [Effect(SONG, ("--float",)), Refused((*SONG, "--format", "flac"), ("--float",), "--float")],
    ("gen song", "--no-cover"): [Effect(SONG_FULL, ("--no-cover",))],
    ("gen song", "--no-categories"): [Effect(SONG_FULL, ("--no-categories",))],
    ("gen song", "--prompts-file"): [Effect(SONG_LLM[:2] + SONG_LLM[3:], ("--prompts-file", "prompts.txt", "--out-dir", "p"))],
    ("gen song", "--count"): [Effect(SONG, ("-n", "2")),
                              Refused(SONG_LLM[:2] + SONG_LLM[3:], ("--prompts-file", "prompts.txt", "-n", "2"), "--count")],
    ("gen song", "--seed"): [Effect(SONG, ("--seed", "2"))],
    ("gen song", "--output"): [Effect(SONG, ("-o", "hit.wav"))],
    ("gen song", "--out-dir"): [Effect(SONG, ("--out-dir", "sub"))],
    ("gen song", "--force"): [Effect((*SONG, "-o", "mine.wav"), ("--force",), setup=_existing("mine.wav"))],
    ("gen song", "--backend"): [Effect(SONG, ("--backend", "local"))],
    ("gen song", "--precision"): [Effect(SONG_LLM, ("--precision", "bf16")), Refused(SONG, ("--precision", "bf16"), "--precision"),
                                  Refused(SONG_LLM, ("--precision", "fp32"), "--precision")],
    ("gen song", "--json"): [Effect(SONG, ("--json",))],
    ("gen song", "--quiet"): [Effect(SONG, ("-q",))],
    ("gen song", "--debug"): [Effect(SONG_LLM, ("--debug",))],
    # ---- render
    ("render", "--soundfont"): [Effect(RENDER, ("--soundfont", "font.sf2"), needs="font.sf2")],
    ("render", "--format"): [Effect(RENDER, ("--format", "flac"))],
    ("render", "--sample-rate"): [Effect(RENDER, ("--sample-rate", "22050"))],
    ("render", "--mono"): [Effect(RENDER, ("--mono",))],
    ("render", "--normalize"): [Effect(RENDER, ("--normalize", "peak"))],
    ("render", "--target-lufs"): [Effect(RENDER, ("--target-lufs", "-20")),
                                  Refused((*RENDER, "--normalize", "peak"), ("--target-lufs", "-20"), "--target-lufs")],
    ("render", "--max-duration"): [Effect(RENDER, ("--max-duration", "0.5"))],
    ("render", "--output"): [Effect(RENDER, ("-o", "out.wav"))],
    ("render", "--out-dir"): [Effect(RENDER, ("--out-dir", "sub")), Effect((*RENDER, "-o", "out.wav"), ("--out-dir", "sub"))],
    ("render", "--force"): [Effect(RENDER, ("--force",), setup=_existing("tune.wav"))],
    ("render", "--json"): [Effect(RENDER, ("--json",))],
    ("render", "--quiet"): [Effect(RENDER, ("-q",))],
    ("render", "--debug"): [Effect(("render", "missing.mid"), ("--debug",))],
    # ---- analyze
    ("analyze", "--transcribe"): [Effect(TAKE, ("--no-transcribe",), needs="transcription"),
                                  Refused(TUNE, ("--transcribe",), "--transcribe")],
    ("analyze", "--notes"): [Effect(TUNE, ("--notes",))],
    ("analyze", "--midi"): [Effect(TAKE, ("--midi",), needs="transcription"), Refused(TUNE, ("--midi",), "--midi")],
    ("analyze", "--plot"): [Effect(TUNE, ("--plot",))],
    ("analyze", "--max-duration"): [Effect(TUNE, ("--max-duration", "1"))],
    ("analyze", "--checkpoint"): [Refused(TAKE, ("--checkpoint", "missing.msgpack"), "no such file"),
                                  Refused(TUNE, ("--checkpoint", "ck.msgpack"), "--checkpoint", setup=_existing("ck.msgpack"))],
    ("analyze", "--trust-checkpoint"): [Refused(TAKE, ("--trust-checkpoint",), "--trust-checkpoint"),
                                        Effect((*TAKE, "--checkpoint", "ck.pkl"), ("--trust-checkpoint",), setup=_pickle("ck.pkl"))],
    ("analyze", "--onset-threshold"): [Effect(TAKE, ("--onset-threshold", "0.8"), needs="transcription"),
                                       Refused(TUNE, ("--onset-threshold", "0.8"), "--onset-threshold")],
    ("analyze", "--frame-threshold"): [Effect(TAKE, ("--frame-threshold", "0.6"), needs="transcription"),
                                       Refused(TUNE, ("--frame-threshold", "0.6"), "--frame-threshold")],
    ("analyze", "--minimum-note-length"): [Effect(TAKE, ("--minimum-note-length", "400"), needs="transcription"),
                                           Refused(TUNE, ("--minimum-note-length", "400"), "--minimum-note-length")],
    ("analyze", "--score"): [Effect(TUNE, ("--score", "tune.mid"))],
    ("analyze", "--out-dir"): [Effect(TUNE, ("--out-dir", "reports"))],
    ("analyze", "--force"): [Effect(TUNE, ("--force",), setup=_existing("tune.analysis.json"))],
    ("analyze", "--backend"): [Effect(TUNE + ("--plot",), ("--backend", "modal")), Effect(TAKE, ("--backend", "modal"))],
    ("analyze", "--json"): [Effect(TUNE, ("--json",))],
    ("analyze", "--quiet"): [Effect(TUNE, ("-q",))],
    ("analyze", "--debug"): [Effect(("analyze", "missing.wav"), ("--debug",))],
    # ---- batch
    ("batch", "--concurrency"): [Effect(BATCH_REMOTE, ("--concurrency", "2"))],
    ("batch", "--retries"): [Effect(BATCH_REMOTE, ("--retries", "1"))],
    ("batch", "--resume"): [Effect(BATCH, ("--no-resume",), setup=_ran_before(*BATCH))],
    ("batch", "--skip-invalid"): [Effect(("batch", "mixed.jsonl", "--out-dir", "b", "--backend", "local"), ("--skip-invalid",))],
    ("batch", "--kind"): [Effect(("batch", "kindless.jsonl", "--out-dir", "b", "--backend", "local"), ("--kind", "midi"))],
    ("batch", "--format"): [Effect(("batch", "csv.jsonl", "--out-dir", "b", "--backend", "local"), ("--format", "csv"))],
    ("batch", "--dry-run"): [Effect(BATCH, ("--dry-run",))],
    ("batch", "--wait"): [Elsewhere("waits only while another run holds the folder's lock: two real processes in "
                                    "tests/test_files_safety.py::test_a_second_batch_on_the_same_folder_exits_at_once_or_waits")],
    ("batch", "--out-dir"): [Effect(BATCH, ("--out-dir", "c"))],
    ("batch", "--backend"): [Effect(BATCH_REMOTE, ("--backend", "local"))],
    ("batch", "--json"): [Effect(BATCH, ("--json",))],
    ("batch", "--quiet"): [Effect(BATCH, ("-q",))],
    ("batch", "--debug"): [Effect(("batch", "missing.jsonl"), ("--debug",))],
    # ---- deploy
    ("deploy", "--dry-run"): [Effect(("deploy",), ("--dry-run",))],
    ("deploy", "--check"): [Refused(DEPLOY, ("--check",), "--dry-run")],
    ("deploy", "--image"): [Refused(DEPLOY, ("--image", "core"), "--check"), Refused(("deploy",), ("--image", "core"), "--check")],
    ("deploy", "--json"): [Effect(DEPLOY, ("--json",))],
    ("deploy", "--quiet"): [Effect(DEPLOY, ("-q",))],
    ("deploy", "--debug"): [Effect(("deploy",), ("--debug",))],
    # ---- doctor
    ("doctor", "--timeout"): [Refused(("doctor",), ("--timeout", "-1"), "--timeout"),
                              Elsewhere("how long doctor waits for Modal: only observable against a slow Modal API")],
    ("doctor", "--json"): [Effect(("doctor", "--timeout", "0.5"), ("--json",))],
    ("doctor", "--debug"): [Elsewhere("doctor reports failures instead of raising: --debug shows a traceback only if doctor itself breaks")],
    # ---- models
    ("models", "--json"): [Effect(("models",), ("--json",))],
    ("models", "--quiet"): [Effect(("models",), ("-q",))],
    ("models", "--debug"): [Elsewhere("the model table cannot fail: --debug matters only for a bug")],
    ("models pull", "--force"): [Effect(("models", "pull", "transcription"), ("--force",), needs="transcription")],
    ("models pull", "--json"): [Effect(("models", "pull", "transcription"), ("--json",), needs="transcription")],
    ("models pull", "--quiet"): [Effect(("models", "pull", "transcription"), ("-q",), needs="transcription")],
    ("models pull", "--debug"): [Effect(("models", "pull", "no-such-model"), ("--debug",))],
    ("models list", "--json"): [Effect(("models", "list"), ("--json",), setup=_existing("cache/piano/a.msgpack"))],
    ("models list", "--quiet"): [Effect(("models", "list"), ("-q",), setup=_existing("cache/piano/a.msgpack"))],
    ("models list", "--debug"): [Elsewhere("listing the cache cannot fail: --debug matters only for a bug")],
    ("models rm", "--yes"): [Effect(("models", "rm", "piano/a.msgpack"), ("--yes",), setup=_existing("cache/piano/a.msgpack"))],
    ("models rm", "--json"): [Effect(("models", "rm", "piano/a.msgpack", "--yes"), ("--json",), setup=_existing("cache/piano/a.msgpack"))],
    ("models rm", "--quiet"): [Effect(("models", "rm", "piano/a.msgpack", "--yes"), ("-q",), setup=_existing("cache/piano/a.msgpack"))],
    ("models rm", "--debug"): [Effect(("models", "rm", "nothing"), ("--debug",))],
    ("models convert", "--trust-checkpoint"): [Effect(CONVERT, ("--trust-checkpoint",), setup=_pickle("ck.pkl"))],
    ("models convert", "--debug"): [Effect((*CONVERT, "--trust-checkpoint"), ("--debug",), setup=_pickle("ck.pkl"))],
    **{("models convert", opt): [Elsewhere(f"{opt} acts on a converted checkpoint: tests/test_piano.py converts a "
                                           "CrescendAI-layout model (test_crescendai_scores_equal_an_independent_forward, "
                                           "test_convert_rejects_bad_targets_before_writing)")]
       for opt in ("--force", "--json", "--quiet")},
    ("models upload", "--trust-checkpoint"): [Effect(("models", "upload", "piano", "ck.pkl"), ("--trust-checkpoint",), setup=_pickle("ck.pkl"))],
    ("models upload", "--name"): [Elsewhere("names the file on the Modal Volume: needs a Modal workspace")],
    ("models upload", "--force"): [Elsewhere("replaces a file on the Modal Volume: needs a Modal workspace")],
    ("models upload", "--json"): [Elsewhere("prints the uploaded path: needs a Modal workspace")],
    ("models upload", "--quiet"): [Elsewhere("silences the upload notice: needs a Modal workspace")],
    ("models upload", "--debug"): [Effect(("models", "upload", "piano", "ck.pkl"), ("--debug",), setup=_existing("ck.pkl"))],
    # ---- serve: starting a server per case is the job of tests/test_web.py
    **{("serve", opt): [Elsewhere("muse serve options are exercised against a running server in tests/test_web.py")]
       for opt in ("--host", "--port", "--token-env", "--backend", "--storage-dir", "--model", "--default-model",
                   "--cors-origin", "--quiet", "--debug")},
    **{("serve", opt): [Elsewhere("exercised against a running muse serve in tests/test_serve.py (read deadlines, "
                                  "connection limit) and tests/test_storage.py (S3 storage on a loopback moto server)")]
       for opt in ("--max-connections", "--read-timeout", "--s3-endpoint", "--storage")},
}


# ---------------------------------------------------------------------------------- the tree


def option_tree() -> set[tuple[str, str]]:
    from muse_cli.cli import app

    found = set()

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                found.add((path, max(param.opts, key=len)))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def test_every_option_has_a_case():
    tree = option_tree()
    missing = sorted(tree - set(CASES))
    stale = sorted(set(CASES) - tree)
    assert not missing, f"options without a case (give each an Effect or a Refused): {missing}"
    assert not stale, f"cases for options that no longer exist: {stale}"


# ------------------------------------------------------------------------------ observation


class Recorder:
    """A backend whose engines are not run: it records each request, then fails as a transient error.
    ACE-Step alone is stood in: it returns silence of the requested length and format."""

    name = "modal"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0  # most calls at once: what --concurrency changes

    def run(self, family, request, *, model=None, options=None, progress=None):
        import time

        from muse_cli.errors import TransientFailure

        with self.lock:
            self.calls.append({"family": family, "model": model, "options": options, "request": _scrub(request.model_dump())})
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        if threading.current_thread().name.startswith("muse-batch"):
            time.sleep(0.2)  # long enough for a second worker, if there is one, to take the next job
        with self.lock:
            self.in_flight -= 1
        if family == "acestep":
            from muse_cli.contracts import AceStepResult
            from muse_cli.music.audio import encode_audio

            silence = np.zeros((2, int(request.duration * 48000)), np.float32)
            return AceStepResult(engine="acestep", model="stand-in for ACE-Step (test_options)", seed=request.seed or 0,
                                 audio=encode_audio(silence, 48000, request.format, request.float_wav),
                                 format=request.format, channels=2, duration=request.duration, timings={})
        raise TransientFailure(f"{family} is recorded, not run, in this test")


NOISE = {"created", "timings", "muse_version", "python", "generation_s", "load_s", "run_s", "elapsed_s", "seconds",
         "total_s", "render_s", "started", "finished", "pid", "host", "time", "protocol"}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in sorted(value.items()) if k not in NOISE}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, float):
        return round(value, 6)
    return value


_CLOCK = __import__("re").compile(r"\b\d+(\.\d+)? (s|ms|jobs/s)\b")


def _text(text: str, folder: Path) -> list[Any]:
    lines = []
    for line in text.replace(str(folder), "<run>").splitlines():
        try:
            lines.append(_scrub(json.loads(line)))
        except ValueError:
            lines.append(_CLOCK.sub(r"<n> \2", line.rstrip()))  # "(0.1 s)", "12.5 jobs/s": the clock's, not ours
    return lines


def _files(folder: Path, before: dict[str, str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_dir():
            seen[rel + "/"] = "dir"
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if before.get(rel) == digest:
            continue  # material, untouched
        if path.suffix == ".json" or path.name.endswith(".jsonl"):
            text = data.decode().replace(str(folder), "<run>")
            try:
                seen[rel] = _scrub(json.loads(text))
            except ValueError:
                seen[rel] = [_scrub(json.loads(line)) for line in text.splitlines() if line.strip()]
        else:
            seen[rel] = digest
    return seen


_recorder: Recorder | None = None


def _invoke(argv: list[str]) -> tuple[int, str, str]:
    from muse_cli.cli import run

    out, err = io.StringIO(), io.StringIO()
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = run(argv)
    except SystemExit as exc:  # typer's completion callbacks end the process themselves
        code = exc.code or 0
    finally:
        sys.stdout, sys.stderr = real
    return int(code), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def materials(tmp_path_factory):
    """Small inputs every case may use, made here: a MIDI tune, a 4 s piano take, texts, job files."""
    from muse_cli.contracts import RenderRequest
    from muse_cli.music.render import render_to_bytes
    from muse_cli.music.transcribe import available
    from muse_cli.ops.readiness import soundfonts

    folder = tmp_path_factory.mktemp("materials")
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(0)
    for i, pitch in enumerate([60, 64, 67, 72, 67, 64, 62, 65] * 2):
        piano.notes.append(pretty_midi.Note(velocity=60 + 3 * i, pitch=pitch, start=i * 0.25, end=i * 0.25 + 0.2))
    pm.instruments.append(piano)
    pm.write(str(folder / "tune.mid"))
    audio, _ = render_to_bytes(pm, RenderRequest(sample_rate=22050, stereo=False))
    (folder / "take.wav").write_bytes(audio)
    hum, _ = render_to_bytes(pm, RenderRequest(sample_rate=32000, stereo=False))
    (folder / "hum.wav").write_bytes(hum)
    (folder / "lyrics.txt").write_text("[verse]\nnight light\n")
    (folder / "prompts.txt").write_text("one prompt\nanother prompt\n")
    (folder / "jobs.jsonl").write_text('{"kind": "midi", "engine": "etude", "seed": 1}\n')
    (folder / "remote.jsonl").write_text('{"kind": "audio", "prompt": "a", "duration": 1, "seed": 1}\n'
                                         '{"kind": "audio", "prompt": "b", "duration": 1, "seed": 2}\n')
    (folder / "mixed.jsonl").write_text('{"kind": "midi", "engine": "etude", "seed": 1}\n{"kind": "midi", "tempo": 1}\n')
    (folder / "kindless.jsonl").write_text('{"engine": "etude", "seed": 1}\n')
    (folder / "csv.jsonl").write_text("kind,engine,seed\nmidi,etude,1\n")
    fonts = soundfonts()
    if fonts:  # a link: a GM SoundFont is ~140 MB, and every run below gets its own folder
        (folder / "font.sf2").symlink_to(Path(fonts[0]).resolve())
    from tiny_musicgen import build_tiny_musicgen

    tiny = build_tiny_musicgen(tmp_path_factory.mktemp("tiny") / "mono")
    return {"folder": folder, "tiny": str(tiny), "transcription": available()}


@pytest.fixture
def observe(materials, tmp_path, monkeypatch):
    """observe(argv, setup) -> everything a user or a script could notice about that run."""
    import muse_cli.backends as backends
    from muse_cli import batch

    real_get_backend = backends.get_backend
    monkeypatch.setattr(batch.runner, "RETRY_DELAY_S", 0.0)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHELL", "/bin/bash")
    monkeypatch.setenv("MUSE_TRANSCRIPTION_WHEEL_URL", "http://127.0.0.1:9/offline.whl")
    runs = iter(range(1000))

    def go(argv: tuple[str, ...], setup: Callable[[Path], None] | None = None) -> dict[str, Any]:
        global _recorder
        folder = tmp_path / f"run{next(runs)}"
        shutil.copytree(materials["folder"], folder, symlinks=True)
        monkeypatch.chdir(folder)
        monkeypatch.setenv("MUSE_CACHE_DIR", str(folder / "cache"))
        _recorder = Recorder()

        def get_backend(name):
            from muse_cli.backends import choose

            return real_get_backend(name) if choose(name) == "local" else _recorder

        monkeypatch.setattr(backends, "get_backend", get_backend)
        if setup is not None:
            setup(folder)
        before = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
        threads = set(threading.enumerate())
        args = [materials["tiny"] if a == "@tiny" else a for a in argv]
        code, out, err = _invoke(args)
        for thread in set(threading.enumerate()) - threads:  # background stages record before we look
            thread.join(10)
        calls = sorted(_recorder.calls, key=lambda c: json.dumps(c, sort_keys=True, default=str))
        for call in calls:
            if materials["tiny"] in json.dumps(call, default=str):
                call["model"] = "@tiny"
        return {"code": code, "stdout": _text(out, folder), "stderr": _text(err, folder),
                "files": _files(folder, before), "calls": calls, "peak": _recorder.peak}

    return go


def _cases() -> list[Any]:
    params = []
    for (command, option), checks in sorted(CASES.items()):
        for i, check in enumerate(checks):
            if isinstance(check, Elsewhere):
                continue
            params.append(pytest.param(check, id=f"{command or 'muse'} {option} #{i + 1}"))
    return params


_BASES: dict[Any, dict[str, Any]] = {}


@pytest.mark.parametrize("check", _cases())
def test_option(check, observe, materials):
    if isinstance(check, Refused):
        seen = observe((*check.base, *check.extra), check.setup)
        assert seen["code"] == 2, seen
        assert any(check.needle in line for line in seen["stderr"] if isinstance(line, str)), seen["stderr"]
        written = [f for f in seen["files"] if not f.startswith("cache/") and not f.endswith("/")]
        assert written == [], f"a refused call wrote {written}"
        assert seen["calls"] == []
        return
    if check.needs == "transcription" and not materials["transcription"]:
        pytest.skip("transcription is not available here (muse models pull transcription)")
    if check.needs == "font.sf2" and not (materials["folder"] / "font.sf2").exists():
        pytest.skip("no SoundFont in the usual folders to render with")
    key = (check.base, check.setup)
    if key not in _BASES:  # each base runs twice once per session: it must observe the same both times
        first, again = observe(check.base, check.setup), observe(check.base, check.setup)
        assert first == again, "the base run is not deterministic, so no difference could be trusted"
        _BASES[key] = first
    base = _BASES[key]
    changed = observe((*check.base, *check.extra), check.setup)
    assert changed != base, f"{' '.join(check.extra)} changed nothing observable: {changed}"

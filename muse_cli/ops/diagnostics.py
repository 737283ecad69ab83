"""Facts for `muse doctor`, gathered without importing heavy runtimes and never hanging."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

RUNTIMES = ("modal", "torch", "transformers", "jax", "flax", "onnxruntime", "librosa", "diffusers", "vllm")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cuda() -> str | None:
    """GPU names from nvidia-smi (fast; importing torch to ask would take seconds)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=3).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return "; ".join(line.split(" (UUID")[0] for line in out.splitlines()) or None


def _app_status(timeout: float) -> dict[str, Any]:
    """The deployed app's version against this client's, giving up after `timeout` seconds."""
    from muse_cli import __version__
    from muse_cli.backends.modal import ModalBackend
    from muse_cli.contracts import PROTOCOL_VERSION

    status: dict[str, Any] = {"client_version": __version__, "client_protocol": PROTOCOL_VERSION}
    answer: dict[str, Any] = {}

    def ask() -> None:
        try:
            answer["info"] = ModalBackend().app_info()
        except Exception as exc:  # reported, not raised: doctor diagnoses
            answer["error"] = getattr(exc, "message", str(exc)).splitlines()[0]

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return {**status, "state": f"no answer within {timeout:g} s"}
    if "error" in answer:
        return {**status, "state": answer["error"]}
    info = answer["info"]
    match = info.get("protocol") == PROTOCOL_VERSION
    return {
        **status, "deployed_version": info.get("app_version"), "deployed_protocol": info.get("protocol"),
        "state": "deployed, matching this client" if match else "deployed, protocol differs from this client's",
        "match": match,
    }


def _dist_version(*names: str) -> str | None:
    for name in names:
        version = _version(name)
        if version:
            return version
    return None


def capabilities(modal: dict[str, Any]) -> list[dict[str, Any]]:
    """Each thing muse does: ready here, or the gaps and the one command that closes them."""
    from muse_cli.ops import readiness as r

    rows: list[tuple[str, list]] = [
        ("gen midi: etude composer", []),
        ("gen midi: MIDI-LLM (local)", r.midi_llm()),
        ("gen audio: MusicGen small (local)", r.musicgen("small")),
        ("gen song (local, with cover art)", r.song(llm=True, cover=True)),
        ("analyze: descriptors and plots", r.analysis(audio=True, plot=True)),
        ("analyze: note transcription", r.transcription()),
        ("analyze: perceptual scores", r.perceptual()),
        ("render: SoundFonts (FluidSynth)", r.fluidsynth()),
        ("serve: the HTTP API", r.serve()),
    ]
    modal_gaps = []
    if not modal["credentials"]:
        modal_gaps.append(r.Gap("no Modal credentials", "modal setup"))
    elif not modal["reachable"]:
        modal_gaps.append(r.Gap(f"Modal is unreachable ({modal['server']})", "check the network, then muse doctor"))
    elif not modal["app"].get("match"):
        modal_gaps.append(r.Gap(f"muse app: {modal['app'].get('state')}", "muse deploy"))
    rows.append(("--backend modal: every model on Modal GPUs", modal_gaps))
    return [
        {"capability": name, "ready": not gaps, "missing": [g.what for g in gaps], "fix": r.fix(gaps) or None}
        for name, gaps in rows
    ]


def collect(timeout: float = 5.0) -> dict[str, Any]:
    from muse_cli import __version__
    from muse_cli.ops import cache, readiness
    from muse_cli.backends import choose, modal_credentials_present
    from muse_cli.backends.modal import reachable
    from muse_cli.music.render import fluidsynth_available
    from muse_cli.music.transcribe import model_path

    credentials = modal_credentials_present()
    ok, where = reachable(timeout=timeout)
    if not credentials:
        app: dict[str, Any] = {"state": "unknown (no credentials)"}
    elif not ok:
        app = {"state": "unknown (Modal unreachable)"}
    else:
        app = _app_status(timeout)
    modal = {"credentials": credentials, "reachable": ok, "server": where, "app": app}
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    transcription = model_path()
    cached = cache.entries()
    return {
        "muse_version": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "backend_auto": choose("auto"),
        "modal": modal,
        "runtimes": {**{name: _version(name) for name in RUNTIMES}, "acestep": _dist_version("ace-step", "acestep")},
        "cuda": _cuda(),
        "transcription_model": str(transcription) if transcription else None,
        "fluidsynth": {"available": fluidsynth_available(), "soundfonts": readiness.soundfonts()},
        "cached_models": [item.as_dict() for item in cached],
        "caches": {
            "huggingface cache": os.environ.get("HF_HUB_CACHE") or str(hf_home / "hub"),
            "muse cache": str(cache.cache_dir()),
            "output folder": os.environ.get("MUSE_OUT_DIR") or "(current folder)",
        },
        "capabilities": capabilities(modal),
    }

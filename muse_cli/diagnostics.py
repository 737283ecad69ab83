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


def _app_status(timeout: float) -> str:
    """Ask the deployed app for its version, giving up after `timeout` seconds."""
    from muse_cli.backends.modal import ModalBackend

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
        return f"no answer within {timeout:g} s"
    if "error" in answer:
        return answer["error"]
    info = answer["info"]
    from muse_cli.contracts import PROTOCOL_VERSION

    match = "ok" if info.get("protocol") == PROTOCOL_VERSION else "protocol mismatch: run muse deploy"
    return f"deployed {info.get('app_version')} (protocol {info.get('protocol')}, {match})"


def collect(timeout: float = 5.0) -> dict[str, Any]:
    from muse_cli import __version__
    from muse_cli.backends import choose, modal_credentials_present
    from muse_cli.backends.modal import reachable

    credentials = modal_credentials_present()
    ok, where = reachable(timeout=timeout)
    if not credentials:
        app = "unknown (no credentials)"
    elif not ok:
        app = "unknown (Modal unreachable)"
    else:
        app = _app_status(timeout)
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return {
        "muse_version": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "backend_auto": choose("auto"),
        "modal": {"credentials": credentials, "reachable": ok, "server": where, "app": app},
        "runtimes": {name: _version(name) for name in RUNTIMES},
        "cuda": _cuda(),
        "caches": {
            "huggingface cache": os.environ.get("HF_HUB_CACHE") or str(hf_home / "hub"),
            "output folder": os.environ.get("MUSE_OUT_DIR") or "(current folder)",
        },
    }

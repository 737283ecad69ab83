"""Shared test setup: no Modal credentials or network leak in from the developer's machine."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    for var in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MUSE_BACKEND", "MUSE_OUT_DIR", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(home / ".modal.toml"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MUSE_CACHE_DIR", str(home / "muse-cache"))  # never the developer's ~/.cache/muse
    try:  # huggingface_hub reads the variable once at import, maybe before this fixture ran
        import huggingface_hub.constants as hf_constants

        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    except ImportError:
        pass
    yield


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """Run the CLI in-process like a user would; returns (exit code, stdout, stderr)."""
    import io

    from muse_cli import ui as ui_mod
    from muse_cli.cli import run

    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        code = run([str(a) for a in args])
        return int(code), out.getvalue(), err.getvalue()

    return call

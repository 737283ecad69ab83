"""The service itself: /health (no token: liveness and what runs here) and /openapi.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from muse_cli.http.deps import AUTH, AppSettings

router = APIRouter()


def local_models(aliases: Mapping[str, str]) -> dict[str, list[str]]:
    """What the local backend can run right now, per endpoint (no loading, no network)."""
    import importlib.util

    from muse_cli.kinds.midi import midi_llm_cached
    from muse_cli.contracts import MUSICGEN_MODELS, MidiRequest

    midi = ["etude"] + (["midi-llm"] if midi_llm_cached(MidiRequest().model) else [])
    audio = sorted(aliases)
    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        try:
            from huggingface_hub import try_to_load_from_cache

            audio += [n for n, repo in MUSICGEN_MODELS.items()
                      if isinstance(try_to_load_from_cache(repo, "config.json"), str)]
        except ImportError:
            pass
    songs = ["acestep"] if importlib.util.find_spec("acestep") else []
    analyze = ["measures"] if importlib.util.find_spec("librosa") else []
    try:
        from muse_cli.music import transcribe

        if analyze and transcribe.available():
            analyze.append("transcription")
    except ImportError:
        pass
    return {"midi": midi, "audio": audio, "songs": songs, "analyze": analyze}


@router.get("/health", tags=["service"])
def health(settings: AppSettings) -> dict[str, Any]:
    """Liveness and what this server can run; no token needed."""
    from muse_cli import __version__
    from muse_cli.contracts import MUSICGEN_MODELS, PROTOCOL_VERSION

    default = settings.default_audio_model
    return {"status": "ok", "version": __version__, "protocol": PROTOCOL_VERSION,
            "backend": settings.backend.name, "models": settings.models(),
            # seed 001's field: the default MusicGen, by hub id (a --model alias by its name,
            # never the server path behind it)
            "model": MUSICGEN_MODELS.get(default, default)}


@router.get("/openapi.json", include_in_schema=False, dependencies=AUTH)
def openapi(request: Request) -> JSONResponse:
    # Served here rather than by FastAPI (openapi_url=None) so it sits behind the token.
    return JSONResponse(request.app.openapi())

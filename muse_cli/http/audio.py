"""MusicGen audio: `/v1/audio`, and `/generate_endpoint`, the earlier MusicGen service's route."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import Response
from pydantic import Field

from muse_cli.contracts import MUSICGEN_MODELS, AudioClip, AudioRequest, AudioResult
from muse_cli.http.deps import AUTH, FAILURES, AppSettings, Delivery, deliverer, run_job, subset
from muse_cli.kinds import Outcome
from muse_cli.kinds.audio import KIND, AudioCompatReply, AudioReply
from muse_cli.http.gate import invalid
from muse_cli.http.settings import Settings
from muse_cli.http.store import MEDIA_TYPES

router = APIRouter()

ACCEPTED_AUDIO = {
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/flac": "flac", "audio/x-flac": "flac", "audio/mpeg": "mp3",
}


def prompt_required() -> tuple[Any, Any]:
    return str, Field(min_length=1, max_length=2000, description="what to generate, in words")


AudioBody = subset(
    "AudioBody", AudioRequest,
    ("duration", "temperature", "top_k", "top_p", "cfg_coef", "seed", "format"),
    overrides={
        "prompt": prompt_required(),
        # Static, so the model can be built once for every app; GET /health names the default.
        "model": (str | None, Field(None, description="a MusicGen name; default: this server's, named by GET /health")),
    },
    doc="MusicGen text-to-audio: one clip.",
)
AudioCompatBody = subset(
    "AudioCompatBody", AudioRequest, ("temperature", "top_k", "top_p", "cfg_coef"), extra="ignore",
    overrides={
        "prompt": prompt_required(),
        "duration": (float, Field(8.0, ge=1, le=30, description="seconds")),
    },
    doc="The earlier MusicGen service's request; unknown fields are ignored.",
)


def audio_choice(accept: str | None) -> str | None:
    """The audio format an Accept header asks for first, or None for JSON."""
    for part in (accept or "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ACCEPTED_AUDIO:
            return ACCEPTED_AUDIO[media]
        if media in ("application/json", "*/*", "application/*"):
            return None
    return None


def audio_file(clip: AudioClip, name: str) -> Response:
    """One clip as the audio file itself, what it is told in x-muse-* headers."""
    headers = {"x-muse-seed": str(clip.seed), "x-muse-sample-rate": str(clip.sample_rate),
               "x-muse-duration": f"{clip.duration:.3f}", "x-muse-model": name,
               "content-disposition": f'attachment; filename="muse-{clip.seed}.{clip.format}"'}
    return Response(clip.audio, media_type=MEDIA_TYPES[clip.format], headers=headers)


def audio(settings: Settings, fields: dict[str, Any], format_: str | None = None) -> tuple[Outcome[AudioResult], str]:
    """Run one clip with the model a request names (an alias, a MusicGen name or hub id); (outcome, name)."""
    name = fields.pop("model", None) or settings.default_audio_model
    if name in settings.aliases:
        model = settings.aliases[name]
    elif name in MUSICGEN_MODELS or name in MUSICGEN_MODELS.values():
        model = name
    else:
        served = ", ".join(sorted(set(MUSICGEN_MODELS) | set(settings.aliases)))
        raise invalid([{"field": "model", "message": f"{name!r} is not served here: use one of {served}"}])
    if format_ is not None:
        fields["format"] = format_
    _, outcome = run_job("audio", {**fields, "model": model, "count": 1}, settings.backend)
    return outcome, name


@router.post(
    "/v1/audio", tags=["audio"], dependencies=AUTH, response_model=AudioReply,
    responses={**FAILURES, 200: {"content": {m: {} for m in ("audio/wav", "audio/flac", "audio/mpeg")},
                                 "description": "JSON, or the audio file when Accept names an audio type"}},
)
def audio_v1(
    body: AudioBody,  # type: ignore[valid-type]
    settings: AppSettings,
    delivery: Delivery = "auto",
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Generate one clip with MusicGen: the audio file (Accept: audio/wav or audio/flac) or JSON."""
    fields = body.model_dump(exclude_unset=True)
    wanted = audio_choice(accept)
    if wanted is not None and fields.get("format", wanted) != wanted:
        raise invalid([{"field": "format", "message": f"{fields['format']!r} conflicts with Accept: {accept}"}])
    outcome, name = audio(settings, fields, wanted)
    if wanted is not None:
        return audio_file(outcome.result.clips[0], name)
    return KIND.reply(outcome, deliverer(settings, delivery), model=name)


@router.post("/generate_endpoint", tags=["compatibility"], dependencies=AUTH, response_model=AudioCompatReply,
             responses=FAILURES)
def audio_compat(body: AudioCompatBody, settings: AppSettings) -> dict[str, Any]:  # type: ignore[valid-type]
    """The earlier MusicGen service's route and contract (WAV, base64)."""
    outcome, _ = audio(settings, body.model_dump(), "wav")
    return KIND.compat_reply(outcome)

"""ACE-Step songs: `/v1/songs` (seed 004's routes to the same job are in seed.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from muse_cli.contracts import AudioFormat, SongRequest, SongResult
from muse_cli.http.deps import AUTH, FAILURES, AppSettings, Delivered, Delivery, deliver, run_job, subset

router = APIRouter()

SongBody = subset(
    "SongBody", SongRequest,
    ("description", "lyrics", "describe_lyrics", "tags", "instrumental", "duration", "steps", "guidance",
     "scheduler", "cfg_type", "omega", "seed", "format", "cover", "categories"),
    doc="An ACE-Step song: from a description, with the user's lyrics, or with lyrics the LLM "
    "writes about `describe_lyrics`; `instrumental` for none.",
)


class SongReply(BaseModel):
    audio_base64: str | None = None
    audio_key: str | None = None
    cover_base64: str | None = Field(None, description="PNG, base64")
    cover_key: str | None = None
    categories: list[str]
    format: AudioFormat
    sample_rate: int
    channels: int
    duration: float
    tags: str
    lyrics: str
    tags_source: str
    lyrics_source: str
    seed: int
    model: str
    warnings: list[str] = []


def song_reply(song: SongResult, audio: Delivered, cover: Delivered) -> dict[str, Any]:
    """A song as SongReply; `audio` and `cover` are each file's (base64, key) as delivered."""
    (audio_b64, audio_key), (cover_b64, cover_key) = audio, cover
    return {"audio_base64": audio_b64, "audio_key": audio_key, "cover_base64": cover_b64, "cover_key": cover_key,
            "categories": song.categories, "format": song.format, "sample_rate": song.sample_rate,
            "channels": song.channels, "duration": song.duration, "tags": song.tags, "lyrics": song.lyrics,
            "tags_source": song.tags_source, "lyrics_source": song.lyrics_source, "seed": song.seed,
            "model": song.model, "warnings": song.warnings}


@router.post("/v1/songs", tags=["songs"], dependencies=AUTH, response_model=SongReply, responses=FAILURES)
def songs_v1(body: SongBody, settings: AppSettings, delivery: Delivery = "auto") -> dict[str, Any]:  # type: ignore[valid-type]
    """Make a song with ACE-Step: audio, cover art and genre categories."""
    if delivery != "inline":
        settings.store.ready()  # a store that cannot take the result fails before any GPU time
    _, outcome = run_job("song", body.model_dump(exclude_unset=True), settings.backend)
    song = outcome.result
    audio = deliver(settings, song.audio, song.format, delivery)
    cover = deliver(settings, song.cover, "png", delivery) if song.cover else (None, None)
    return song_reply(song, audio, cover)

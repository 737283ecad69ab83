"""A song job: lyrics and tags from an LLM where not given, ACE-Step, cover art and categories.

The stages and their order are muse_cli/pipelines/song.py; this module is what a song job is to
the faces: its request, readiness, files and replies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from muse_cli.contracts import AudioFormat, RenderRequest, SongRequest, SongResult
from muse_cli.kinds.base import Deliver, Kind, Outcome, Saved
from muse_cli.output import Target, sidecar, slugify, write_group
from muse_cli.progress import ProgressFn, null_progress

if TYPE_CHECKING:
    from muse_cli.backends import Backend


class SongReply(BaseModel):
    """`POST /v1/songs`: the song, its cover and texts; files inline or as keys."""

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


class SongKind(Kind[SongRequest, SongResult]):
    name = "song"
    request_type = SongRequest

    def writes_text(self, request: SongRequest) -> bool:
        """Does the LLM stage run: tags or lyrics the user did not give?"""
        return request.tags is None or (not request.instrumental and request.lyrics is None)

    def ready(self, request: SongRequest, backend: Backend) -> None:
        if backend.name == "local":
            from muse_cli.ops import readiness

            readiness.require("a song", readiness.song(llm=self.writes_text(request)))

    def run(self, request: SongRequest, backend: Backend, progress: ProgressFn = null_progress) -> Outcome[SongResult]:
        """Every stage (LLM, ACE-Step, cover, categories) on one backend."""
        from muse_cli.pipelines.song import make_song

        result = make_song(request, backend.run, progress)
        return Outcome(result, backend.name, list(result.warnings))

    def stem(self, request: SongRequest, outcome: Outcome[SongResult] | None = None) -> str:
        return slugify(request.description or request.tags or "song")

    def save(
        self, request: SongRequest, outcome: Outcome[SongResult], target: Target, command: str,
        *, render: RenderRequest | None = None,
    ) -> list[Saved]:
        """<stem>.<format>, <stem>.png (when there is a cover), <stem>.lyrics.txt and the sidecar."""
        result = outcome.result
        files = {f".{result.format}": result.audio}
        if result.cover is not None:
            files[".png"] = result.cover
        files[".lyrics.txt"] = (result.lyrics.rstrip() + "\n").encode()
        meta = {
            "duration": result.duration, "sample_rate": result.sample_rate, "channels": result.channels,
            "format": result.format, "tags": result.tags, "lyrics": result.lyrics, "categories": result.categories,
            "tags_source": result.tags_source, "lyrics_source": result.lyrics_source, "seeds": result.seeds,
            "models": result.models, "warnings": result.warnings,
        }
        record = sidecar(
            command=command, engine=result.engine, model=result.model, backend=outcome.backend, request=request,
            seed=result.seed, timings=result.timings, metadata=meta, device=result.device,
        )
        paths = write_group(target, files, record)
        summary = {"engine": result.engine, "seed": result.seed, "duration": result.duration, "tags": result.tags,
                   "categories": result.categories, "warnings": result.warnings}
        return [Saved(paths, summary)]

    def reply(self, outcome: Outcome[SongResult], deliver: Deliver) -> dict[str, Any]:
        song = outcome.result
        audio_b64, audio_key = deliver(song.audio, song.format)
        cover_b64, cover_key = deliver(song.cover, "png") if song.cover else (None, None)
        return {"audio_base64": audio_b64, "audio_key": audio_key, "cover_base64": cover_b64, "cover_key": cover_key,
                "categories": song.categories, "format": song.format, "sample_rate": song.sample_rate,
                "channels": song.channels, "duration": song.duration, "tags": song.tags, "lyrics": song.lyrics,
                "tags_source": song.tags_source, "lyrics_source": song.lyrics_source, "seed": song.seed,
                "model": song.model, "warnings": song.warnings}


KIND = SongKind()

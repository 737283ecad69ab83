"""An audio job: MusicGen text-to-audio (MultiBandDiffusion decoding in its own deployed class)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from muse_cli.contracts import AudioClip, AudioFormat, AudioRequest, AudioResult, RenderRequest
from muse_cli.errors import InputError
from muse_cli.kinds.base import Deliver, Kind, Outcome, Saved, b64
from muse_cli.output import Target, sidecar, slugify, write_group
from muse_cli.progress import ProgressFn, null_progress

if TYPE_CHECKING:
    from muse_cli.backends import Backend


class AudioReply(BaseModel):
    """`POST /v1/audio` as JSON: one clip, inline or as a key for `GET /v1/files/{key}`."""

    audio_base64: str | None = Field(None, description="the audio file, base64 (when inline)")
    audio_key: str | None = Field(None, description="GET /v1/files/{key} (when too large to inline)")
    format: AudioFormat
    sample_rate: int
    channels: int
    duration: float
    seed: int
    model: str


class AudioCompatReply(BaseModel):
    """The earlier MusicGen service's `/generate_endpoint` answer: always WAV, inline."""

    audio_base64: str
    sample_rate: int
    duration: float
    seed: int


def audio_input(path: Path | None, option: str) -> dict[str, Any] | None:
    """Read a user's audio file for a request (as AudioInput fields), failing fast and clearly."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{option} {str(path)!r}: no such file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{option} {str(path)!r}: cannot read ({exc.strerror})") from None
    return {"name": path.name, "data": data}


class AudioKind(Kind[AudioRequest, AudioResult]):
    name = "audio"
    request_type = AudioRequest

    def check(self, request: AudioRequest) -> None:
        """Model name, melody model, readable and non-silent audio: checked before any backend is touched."""
        from muse_cli.engines.musicgen import validate_request

        validate_request(request)

    def ready(self, request: AudioRequest, backend: Backend) -> None:
        if backend.name == "local" and request.decoder != "mbd":
            from muse_cli.ops import readiness

            readiness.require(f"MusicGen {request.model}", readiness.musicgen(request.model))

    def family(self, request: AudioRequest) -> str:
        """MultiBandDiffusion decoding runs in its own deployed class (audiocraft's image)."""
        return "musicgen-mbd" if request.decoder == "mbd" else "musicgen"

    def run(self, request: AudioRequest, backend: Backend, progress: ProgressFn = null_progress) -> Outcome[AudioResult]:
        return Outcome(backend.run(self.family(request), request, model=request.model, progress=progress), backend.name)

    def stem(self, request: AudioRequest, outcome: Outcome[AudioResult]) -> str:
        return slugify(request.prompt or "musicgen")

    def save(
        self, request: AudioRequest, outcome: Outcome[AudioResult], target: Target, command: str,
        *, render: RenderRequest | None = None,
    ) -> list[Saved]:
        result = outcome.result
        saved = []
        for index, clip in enumerate(result.clips):
            meta = {"duration": clip.duration, "sample_rate": clip.sample_rate, "channels": clip.channels, "format": clip.format}
            record = sidecar(
                command=command, engine=result.engine, model=result.model, backend=outcome.backend, request=request,
                seed=clip.seed, timings=result.timings, metadata={**meta, "decoder": result.decoder}, device=result.device,
                precision=result.precision,
            )
            paths = write_group(target.numbered(index, len(result.clips)), {f".{clip.format}": clip.audio}, record)
            saved.append(Saved(paths, {"engine": result.engine, "model": result.model, "seed": clip.seed, **meta}))
        return saved

    def reply(self, outcome: Outcome[AudioResult], deliver: Deliver, *, model: str | None = None) -> dict[str, Any]:
        """The first clip; `model` is the name the client used (a server alias, never its path)."""
        clip = outcome.result.clips[0]
        inline, key = deliver(clip.audio, clip.format)
        return {"audio_base64": inline, "audio_key": key, "format": clip.format, "sample_rate": clip.sample_rate,
                "channels": clip.channels, "duration": clip.duration, "seed": clip.seed,
                "model": model or outcome.result.model}

    def compat_reply(self, outcome: Outcome[AudioResult]) -> dict[str, Any]:
        clip: AudioClip = outcome.result.clips[0]
        return {"audio_base64": b64(clip.audio), "sample_rate": clip.sample_rate,
                "duration": clip.duration, "seed": clip.seed}


KIND = AudioKind()

"""Requests and results: the one place where parameter names, ranges and defaults live.

They cross the Modal boundary as plain dicts (JSON-able fields plus raw bytes) and are validated
on both sides. The CLI, batch files and the HTTP API all build these same models, so an option
means the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROTOCOL_VERSION = 1
"""Bumped when a request or result changes shape; client and deployed app must agree."""

Difficulty = Literal["beginner", "intermediate", "advanced"]
TimeSignature = Literal["2/4", "3/4", "4/4", "6/8"]
AudioFormat = Literal["wav", "flac", "mp3"]
Normalization = Literal["loudness", "peak", "rms", "clip", "none"]

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    @model_validator(mode="before")
    @classmethod
    def _reject_nan(cls, data: Any) -> Any:
        # pydantic accepts NaN for floats unless told otherwise; no muse parameter means anything at NaN.
        if isinstance(data, dict):
            for name, value in data.items():
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"{name} must be a finite number, got {value}")
        return data


class AudioInput(Contract):
    """An audio file the user gave (melody, continuation, analysis input), carried as its bytes."""

    name: str
    data: bytes = Field(repr=False)


# --------------------------------------------------------------------------------------- MIDI


class MidiRequest(Contract):
    """`muse gen midi`: MIDI-LLM from a prompt, or the etude composer from structured options."""

    prompt: str | None = None
    engine: Literal["auto", "etude", "midi-llm"] = "auto"
    model: str = "slseanwu/MIDI-LLM_Llama-3.2-1B"
    difficulty: Difficulty | None = None
    key: str | None = None
    tempo: float | None = Field(None, ge=20, le=300, description="beats per minute")
    time_signature: TimeSignature | None = None
    bars: int | None = Field(None, ge=1, le=256)
    instrument: str = "piano"
    hands: Literal[1, 2] | None = None
    style: str | None = None
    count: int = Field(1, ge=1, le=16)
    seed: Seed | None = None
    temperature: float = Field(1.0, gt=0, le=5)
    top_p: float = Field(0.98, gt=0, le=1)
    max_tokens: int = Field(2046, ge=3, le=8190)

    @field_validator("prompt", "style")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.strip():
            raise ValueError("must not be empty or only spaces")
        return " ".join(v.split())

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        from muse_cli.music.theory import parse_key

        return None if v is None else parse_key(v).name

    @field_validator("instrument")
    @classmethod
    def _instrument(cls, v: str) -> str:
        from muse_cli.music.instruments import parse_instrument

        return parse_instrument(v).name


class MidiMetadata(Contract):
    noteCount: int
    duration: float = Field(description="seconds")
    tempo: float = Field(description="beats per minute")
    key: str
    key_confidence: float | None = None
    time_signature: str | None = None
    instruments: list[str] = []
    tokens_generated: int | None = None
    skipped_tokens: int | None = None
    generation_s: float | None = None


class MidiSample(Contract):
    midi: bytes = Field(repr=False)
    seed: int
    metadata: MidiMetadata


class MidiResult(Contract):
    engine: str
    model: str
    seed: int
    device: str = "cpu"
    samples: list[MidiSample]
    timings: dict[str, float] = {}


# --------------------------------------------------------------------------------- rendering


class RenderRequest(Contract):
    """`muse render`: MIDI to audio, with a SoundFont through FluidSynth or the built-in synth."""

    soundfont: str | None = None
    sample_rate: int = Field(44100, ge=8000, le=192000)
    format: Literal["wav", "flac"] = "wav"
    stereo: bool = True
    normalize: Normalization = "loudness"
    target_lufs: float = Field(-14.0, ge=-70, le=0)


# ---------------------------------------------------------------------------------- MusicGen


MUSICGEN_MODELS = {
    "small": "facebook/musicgen-small",
    "medium": "facebook/musicgen-medium",
    "large": "facebook/musicgen-large",
    "melody": "facebook/musicgen-melody",
    "melody-large": "facebook/musicgen-melody-large",
    "stereo-small": "facebook/musicgen-stereo-small",
    "stereo-medium": "facebook/musicgen-stereo-medium",
    "stereo-large": "facebook/musicgen-stereo-large",
    "stereo-melody": "facebook/musicgen-stereo-melody",
    "stereo-melody-large": "facebook/musicgen-stereo-melody-large",
}


class AudioRequest(Contract):
    """`muse gen audio`: MusicGen text-to-audio."""

    prompt: str | None = None
    duration: float = Field(10.0, ge=1, le=300, description="seconds")
    model: str = "small"
    temperature: float = Field(1.0, gt=0, le=5)
    top_k: int = Field(250, ge=0, le=2048)
    top_p: float = Field(0.0, ge=0, le=1)
    cfg_coef: float = Field(3.0, ge=0, le=30, description="classifier-free guidance")
    extend_stride: float = Field(18.0, ge=1, le=29, description="seconds advanced per 30 s window")
    count: int = Field(1, ge=1, le=16)
    seed: Seed | None = None
    melody: AudioInput | None = None
    continuation: AudioInput | None = None
    decoder: Literal["encodec", "mbd"] = "encodec"
    format: AudioFormat = "wav"
    float_wav: bool = False
    normalize: Normalization = "loudness"
    target_lufs: float = Field(-14.0, ge=-70, le=0)

    @field_validator("prompt")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return " ".join(v.split()) or None

    @model_validator(mode="after")
    def _needs_something(self) -> "AudioRequest":
        if self.prompt is None and self.melody is None and self.continuation is None:
            raise ValueError("prompt must not be empty (or give --continue / --melody)")
        return self


class AudioClip(Contract):
    audio: bytes = Field(repr=False)
    format: AudioFormat
    sample_rate: int
    channels: int
    duration: float
    seed: int


class AudioResult(Contract):
    engine: str
    model: str
    seed: int
    device: str = "cpu"
    decoder: str = "encodec"
    clips: list[AudioClip]
    timings: dict[str, float] = {}


# ------------------------------------------------------------------ Piano perceptual model

PIANO_DIMENSIONS: tuple[str, ...] = (
    "Timing_Stable_Unstable",
    "Articulation_Short_Long",
    "Articulation_Soft_cushioned_Hard_solid",
    "Pedal_Sparse/dry_Saturated/wet",
    "Pedal_Clean_Blurred",
    "Timbre_Even_Colorful",
    "Timbre_Shallow_Rich",
    "Timbre_Bright_Dark",
    "Timbre_Soft_Loud",
    "Dynamic_Sophisticated/mellow_Raw/crude",
    "Dynamic_Little_dynamic_range_Large_dynamic_range",
    "Music_Making_Fast_paced_Slow_paced",
    "Music_Making_Flat_Spacious",
    "Music_Making_Disproportioned_Balanced",
    "Music_Making_Pure_Dramatic/expressive",
    "Emotion_&_Mood_Optimistic/pleasant_Dark",
    "Emotion_&_Mood_Low_Energy_High_Energy",
    "Emotion_&_Mood_Honest_Imaginative",
    "Interpretation_Unsatisfactory/doubtful_Convincing",
)
"""PercePiano's 19 perceptual dimensions, spelled and ordered as in its label files."""

PIANO_SEGMENT_SHAPE = (128, 128)
"""One model input: 128 mel bands x 128 frames (22050 Hz, hop 512: about 2.97 s)."""


class PianoRequest(Contract):
    """The piano perceptual model's input: log-mel segments made locally, so no audio travels."""

    segments: bytes = Field(repr=False, description="float32 little-endian [n_segments, 128 mels, 128 frames]")
    n_segments: int = Field(ge=1, le=8192)
    hop_frames: int = Field(32, ge=1, le=128, description="frames between segment starts")
    batch_size: int = Field(32, ge=1, le=512, description="segments per forward pass")
    per_segment: bool = False

    @model_validator(mode="after")
    def _size(self) -> "PianoRequest":
        rows, cols = PIANO_SEGMENT_SHAPE
        expected = self.n_segments * rows * cols * 4
        if len(self.segments) != expected:
            raise ValueError(
                f"segments has {len(self.segments)} bytes; {self.n_segments} float32 segments of "
                f"{rows}x{cols} need {expected}"
            )
        return self


class PianoResult(Contract):
    engine: str
    model: str = Field(description="checkpoint name and content digest")
    device: str = "cpu"
    dimensions: list[str]
    mean: list[float] = Field(description="per dimension, over all segments")
    spread: list[float] = Field(description="per dimension: standard deviation over segments")
    per_segment: list[list[float]] | None = None
    n_segments: int
    hop_frames: int
    output: Literal["sigmoid", "linear"] = Field(description="sigmoid: scores in 0..1; linear: the checkpoint's own scale")
    scale: tuple[float, float] | None = Field(None, description="score range the checkpoint declares, if any")
    timings: dict[str, float] = {}


# ------------------------------------------------------------------------------------- record


def record(contract: BaseModel) -> dict[str, Any]:
    """A JSON-able dict of a contract for sidecars and manifests: bytes become a digest, never data."""

    def scrub(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return {"sha256": hashlib.sha256(value).hexdigest(), "bytes": len(value)}
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [scrub(v) for v in value]
        return value

    return scrub(contract.model_dump(mode="python"))


def request_hash(contract: BaseModel) -> str:
    """Content hash of a request: the same request always hashes the same (batch resume)."""
    import json

    payload = json.dumps(record(contract), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

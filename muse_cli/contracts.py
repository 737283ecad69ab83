"""Requests and results: the one place where parameter names, ranges and defaults live.

They cross the Modal boundary as plain dicts (JSON-able fields plus raw bytes) and are validated
on both sides. The CLI, batch files and the HTTP API all build these same models, so an option
means the same thing everywhere.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

PROTOCOL_VERSION = 2
"""Bumped when a request or result changes shape; client and deployed app must agree.
2: `precision` in MidiRequest, AudioRequest, SongRequest, LyricsRequest and their results."""

Difficulty = Literal["beginner", "intermediate", "advanced"]
TimeSignature = Literal["2/4", "3/4", "4/4", "6/8"]
AudioFormat = Literal["wav", "flac", "mp3"]
Normalization = Literal["loudness", "peak", "rms", "clip", "none"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
"""Model weights on the local backend: auto = int8 on a CPU, bf16 on a GPU (muse_cli/engines/precision.py)."""

_PRECISION_HELP = "weights: auto (int8 on a CPU, bf16 on a GPU), fp32, bf16 or int8 (CPU only)"

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


def _words(v: str) -> str:
    """Whitespace collapsed to single spaces; text that is only spaces is no text."""
    v = " ".join(v.split())
    if not v:
        raise ValueError("must not be empty or only spaces")
    return v


Text = Annotated[str, AfterValidator(_words)]
"""A one-line text field (prompt, description, tags): trimmed, never blank."""


def _checked(parse: Any, value: Any) -> Any:
    """Run a domain parser inside a validator: its InputError becomes a field error."""
    from muse_cli.errors import InputError

    try:
        return parse(value)
    except InputError as exc:
        raise ValueError(exc.message) from None


class Contract(BaseModel):
    # allow_inf_nan=False: no muse parameter means anything at NaN or infinity.
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, ser_json_bytes="base64", val_json_bytes="base64"
    )


class AudioInput(Contract):
    """An audio file the user gave (melody, continuation, analysis input), carried as its bytes."""

    name: str
    data: bytes = Field(repr=False)


# --------------------------------------------------------------------------------------- MIDI


class MidiRequest(Contract):
    """`muse gen midi`: MIDI-LLM from a prompt, or the etude composer from structured options."""

    prompt: Text | None = None
    engine: Literal["auto", "etude", "midi-llm"] = "auto"
    model: str = "slseanwu/MIDI-LLM_Llama-3.2-1B"
    difficulty: Difficulty | None = None
    key: str | None = None
    tempo: float | None = Field(None, ge=20, le=300, description="beats per minute")
    time_signature: TimeSignature | None = None
    bars: int | None = Field(None, ge=1, le=256)
    instrument: str = Field("piano", validate_default=True)
    hands: Literal[1, 2] | None = None
    style: Text | None = None
    count: int = Field(1, ge=1, le=16)
    seed: Seed | None = None
    temperature: float = Field(1.0, gt=0, le=5)
    top_p: float = Field(0.98, gt=0, le=1)
    max_tokens: int = Field(2046, ge=3, le=8190)
    precision: Precision = Field("auto", description="MIDI-LLM " + _PRECISION_HELP)

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        from muse_cli.music.theory import parse_key

        return None if v is None else _checked(parse_key, v).name

    @field_validator("instrument")
    @classmethod
    def _instrument(cls, v: str) -> str:
        from muse_cli.music.instruments import parse_instrument

        return _checked(parse_instrument, v).name


class MidiMetadata(Contract):
    noteCount: int
    duration: float = Field(description="seconds")
    tempo: float = Field(description="beats per minute")
    key: str = Field(description="the composed key where the engine knows it (etude), else estimated from the notes")
    key_confidence: float | None = Field(None, description="0-1, for an estimated key only")
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
    precision: str | None = Field(None, description="what the model ran at: fp32, bf16, fp16, int8 (fp8 on vLLM)")
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
    max_duration: float = Field(
        3600.0, gt=0, le=24 * 3600, description="seconds; a longer MIDI is refused before anything is rendered"
    )


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

    prompt: Text | None = None
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
    precision: Precision = Field("auto", description="MusicGen " + _PRECISION_HELP)

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
    precision: str | None = Field(None, description="what the language model ran at: fp32, bf16, fp16 or int8")
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


# ---------------------------------------------------------------------------------- Analysis

ANALYSIS_SCHEMA_VERSION = "1.1"  # 1.1: the `score` section (muse analyze --score)
"""Version of the `muse analyze` report layout (docs/analysis-schema.md); bumped on any key change."""


class AnalyzeRequest(Contract):
    """`muse analyze`: measured descriptors of a piano performance given as audio or MIDI."""

    input: AudioInput | None = Field(None, description="the audio or MIDI file (batch lines and HTTP uploads)")
    transcribe: bool | None = Field(None, description="note transcription of audio; None: on when available")
    notes: bool = Field(False, description="include the list of notes in the report")
    midi: bool = Field(False, description="return the transcription as a MIDI file")
    plot: bool = Field(False, description="draw waveform, loudness, tempo and piano roll as PNG")
    max_duration: float = Field(1800.0, gt=0, le=4 * 3600, description="seconds; longer input is refused")
    checkpoint: str | None = Field(None, description="perceptual model checkpoint (path or volume name)")
    trust_checkpoint: bool = Field(False, description="allow a pickle checkpoint")
    score: AudioInput | None = Field(None, description="the score played (MIDI or MusicXML): adds practice feedback")
    # Transcription settings, as basic-pitch's CLI names them (its defaults: 0.5, 0.3, 127.7 ms;
    # ours keeps shorter notes so staccato survives).
    onset_threshold: float = Field(0.5, gt=0, lt=1, description="onset posterior a note must reach to start")
    frame_threshold: float = Field(0.3, gt=0, lt=1, description="note posterior below which a note ends")
    minimum_note_length: float = Field(58.0, ge=0, le=5000, description="ms; shorter notes are dropped")

    @model_validator(mode="after")
    def _midi_needs_notes(self) -> "AnalyzeRequest":
        if self.midi and self.transcribe is False:
            raise ValueError("midi output needs the transcription: do not turn transcribe off")
        if self.score is not None and self.transcribe is False:
            raise ValueError("score feedback needs the transcription of audio: do not turn transcribe off")
        return self


class Measure(Contract):
    """One measured value with its unit and a plain-words reading; value None when not measurable."""

    value: int | float | None
    unit: str
    reading: str | None = None


class Curve(Contract):
    """A quantity over time: values[i] is measured at times_s[i]."""

    unit: str
    times_s: list[float] = []
    values: list[float] = []


class Swell(Contract):
    kind: Literal["crescendo", "diminuendo"]
    start_s: float
    end_s: float
    size_db: float


class LoudnessSection(Contract):
    integrated: Measure
    dynamic_range: Measure
    crescendos: Measure
    diminuendos: Measure
    swells: list[Swell] = []
    curve: Curve


class TimingSection(Contract):
    steadiness: Measure
    beats: Measure
    tempo_curve: Curve


class ArticulationSection(Contract):
    legato_ratio: Measure
    staccato_share: Measure


class PedalSection(Contract):
    overlap_share: Measure
    pedal_down_share: Measure


class TimbreSection(Contract):
    brightness: Measure
    loudness_spread: Measure
    velocity_spread: Measure


class NoteEvent(Contract):
    onset: float = Field(description="seconds")
    offset: float = Field(description="seconds")
    pitch: int = Field(ge=0, le=127)
    velocity: int = Field(ge=0, le=127)


class NotesSection(Contract):
    count: Measure
    density: Measure
    polyphony: Measure
    max_polyphony: Measure
    lowest: Measure
    highest: Measure
    range: Measure
    events: list[NoteEvent] | None = None


class ScoreSource(Contract):
    name: str
    kind: Literal["midi", "musicxml"]
    notes: int
    bars: int
    time_signature: str = Field(description="the first time signature, e.g. 3/4")
    pickup: bool = Field(description="the score opens with an incomplete bar, numbered 0")
    key_signature: int = Field(description="sharps (> 0) or flats (< 0)")


class ScoreCounts(Contract):
    score_notes: int
    played: int = Field(description="score notes played at their pitch")
    wrong_pitch: int = Field(description="score notes played at another pitch")
    missed: int
    extra: int = Field(description="performed notes that match no score note")


class Passage(Contract):
    kind: Literal["rushing", "dragging"]
    first_bar: int
    last_bar: int
    tempo_change: float = Field(description="% against the performance's own tempo; > 0 faster")


class ScoreTiming(Contract):
    median_deviation: Measure
    deviation_spread: Measure
    early_notes: Measure
    late_notes: Measure
    passages: list[Passage] = []


class TempoPoint(Contract):
    bar: int
    beat: float
    bpm: float


class ScoreTempo(Contract):
    marked: Measure
    performed: Measure
    ratio: Measure
    curve: list[TempoPoint] = []


class ScoreDynamics(Contract):
    velocity_offset: Measure
    shape_correlation: Measure


class ScoreArticulation(Contract):
    duration_ratio: Measure


class BarFeedback(Contract):
    bar: int
    notes: int = Field(description="score notes in the bar")
    played: int
    wrong_pitch: list[str] = Field(description='e.g. "E4 for F4": played, then written')
    missed: list[str]
    extra: list[str]
    early: list[float] = Field(description="ms, notes early by more than the timing threshold")
    late: list[float] = Field(description="ms, notes late by more than the timing threshold")
    median_deviation_ms: float | None
    tempo_bpm: float | None
    summary: str


class ScoreNoteResult(Contract):
    bar: int
    beat: float
    pitch: int
    name: str
    status: Literal["played", "wrong_pitch", "missed"]
    played_pitch: int | None = None
    played_name: str | None = None
    onset_s: float | None = Field(None, description="performed onset, seconds from the start of the input")
    deviation_ms: float | None = None


class ExtraNote(Contract):
    bar: int
    pitch: int
    name: str
    onset_s: float


class ScoreSection(Contract):
    """`muse analyze --score`: the performance against its score (docs/analysis-schema.md, `score`)."""

    source: ScoreSource
    alignment: str = Field(description="the method that aligned performance and score")
    counts: ScoreCounts
    accuracy: Measure
    timing: ScoreTiming
    tempo: ScoreTempo
    dynamics: ScoreDynamics
    articulation: ScoreArticulation
    bars: list[BarFeedback] = []
    notes: list[ScoreNoteResult] | None = None
    extra_notes: list[ExtraNote] | None = None


class AnalysisSource(Contract):
    name: str
    kind: Literal["audio", "midi"]
    sample_rate: int | None = None
    channels: int | None = None


class AnalysisReport(Contract):
    """`muse analyze` output; every key is described in docs/analysis-schema.md."""

    schema_version: str = ANALYSIS_SCHEMA_VERSION
    source: AnalysisSource
    duration_s: Measure
    tempo_bpm: Measure
    key: str | None
    key_confidence: Measure
    loudness: LoudnessSection
    timing: TimingSection
    articulation: ArticulationSection
    pedal: PedalSection
    timbre: TimbreSection
    notes: NotesSection
    perceptual: dict[str, Any] | None = None
    transcription: str | None = Field(None, description="method that produced the notes; None: no notes from audio")
    warnings: list[str] = []
    score: ScoreSection | None = Field(None, description="against the score, with --score")


# -------------------------------------------------------------------------------------- Songs

ACESTEP_SAMPLE_RATE = 48000
SONG_MAX_DURATION = 240.0
"""ACE-Step v1 was trained on clips up to 240 s; its pipeline caps extension at that length too."""

AceScheduler = Literal["euler", "heun", "pingpong"]
AceCfgType = Literal["apg", "cfg", "cfg_star"]
LyricsTask = Literal["tags", "lyrics", "categories"]


class SongRequest(Contract):
    """`muse gen song`: tags and lyrics (given, or written by the lyrics LLM), then ACE-Step.

    Modes: a description alone (the LLM writes tags and lyrics); tags with `lyrics` (the user's),
    with `describe_lyrics` (the LLM writes lyrics about that) or with `instrumental`. A description
    with any of those lets the LLM write the tags the user left out.
    """

    description: Text | None = Field(None, description="what the song is: style, mood, subject")
    lyrics: str | None = Field(None, description="the user's lyrics, with [verse]/[chorus]/[bridge] tags")
    describe_lyrics: Text | None = Field(None, description="what the LLM's lyrics should be about")
    tags: Text | None = Field(None, description="comma-separated style tags for ACE-Step")
    instrumental: bool = False
    duration: float = Field(180.0, ge=1, le=SONG_MAX_DURATION, description="seconds")
    steps: int = Field(60, ge=1, le=200, description="diffusion steps")
    guidance: float = Field(15.0, ge=0, le=30, description="classifier-free guidance scale")
    scheduler: AceScheduler = "euler"
    cfg_type: AceCfgType = "apg"
    omega: float = Field(10.0, ge=-100, le=100, description="granularity scale")
    seed: int = Field(-1, ge=-1, le=2**32 - 1, description="-1: random (the seed used is recorded)")
    format: AudioFormat = "wav"
    float_wav: bool = False
    cover: bool = Field(True, description="make cover art (SDXL-Turbo)")
    categories: bool = Field(True, description="name 3 to 5 genres with the lyrics LLM")
    precision: Precision = Field("auto", description="the lyrics LLM's " + _PRECISION_HELP)

    @field_validator("lyrics")
    @classmethod
    def _lyrics(cls, v: str | None) -> str | None:
        if v is None:
            return None
        lines = [line.strip() for line in v.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
        text = "\n".join(lines).strip()
        if not text:
            raise ValueError("lyrics are empty")
        if len(text) > 8000:
            raise ValueError(f"lyrics have {len(text)} characters, at most 8000 fit in one song")
        return text

    @model_validator(mode="after")
    def _mode(self) -> "SongRequest":
        if self.instrumental and self.lyrics is not None:
            raise ValueError("give either --instrumental or --lyrics, not both")
        if self.instrumental and self.describe_lyrics is not None:
            raise ValueError("give either --instrumental or --describe-lyrics, not both")
        if self.lyrics is not None and self.describe_lyrics is not None:
            raise ValueError("give either --lyrics or --describe-lyrics, not both")
        if self.description is None and self.tags is None:
            if self.lyrics is not None or self.describe_lyrics is not None or self.instrumental:
                raise ValueError("--tags (or a description to write them from) is needed with this mode")
            raise ValueError("description must not be empty (or give --tags)")
        return self

    @property
    def tags_source(self) -> Literal["user", "llm"]:
        return "user" if self.tags is not None else "llm"

    @property
    def lyrics_source(self) -> Literal["user", "llm", "instrumental"]:
        if self.instrumental:
            return "instrumental"
        return "user" if self.lyrics is not None else "llm"


class LyricsRequest(Contract):
    """One job for the lyrics LLM: write tags, write lyrics, or name genres."""

    task: LyricsTask
    description: str | None = Field(None, description="song description, or what the lyrics are about")
    tags: str | None = None
    instrumental: bool = Field(False, description="tags task: no vocals")
    duration: float = Field(180.0, ge=1, le=SONG_MAX_DURATION, description="lyrics task: song length to fill")
    seed: Seed | None = None
    temperature: float = Field(0.7, gt=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(1024, ge=16, le=4096)
    precision: Precision = Field("auto", description=_PRECISION_HELP)

    @field_validator("description", "tags")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        # Internal stage requests: an empty answer from an earlier stage means "not given".
        return None if v is None else (" ".join(v.split()) or None)

    @model_validator(mode="after")
    def _inputs(self) -> "LyricsRequest":
        if self.task == "tags" and self.description is None:
            raise ValueError("the tags task needs a description")
        if self.description is None and self.tags is None:
            raise ValueError(f"the {self.task} task needs a description or tags")
        return self


class LyricsResult(Contract):
    engine: str
    model: str
    seed: int
    device: str = "cpu"
    precision: str | None = Field(None, description="what the model ran at: fp32, bf16, fp16 or int8")
    task: LyricsTask
    tags: str | None = None
    lyrics: str | None = None
    categories: list[str] = []
    attempts: int = Field(1, description="generations needed for a usable answer")
    timings: dict[str, float] = {}


class CoverRequest(Contract):
    """Cover art: SDXL-Turbo text-to-image, a few steps without guidance."""

    prompt: Text
    steps: int = Field(2, ge=1, le=50)
    guidance: float = Field(0.0, ge=0, le=20)
    width: int = Field(512, ge=64, le=1024, multiple_of=8)
    height: int = Field(512, ge=64, le=1024, multiple_of=8)
    seed: Seed | None = None



class CoverResult(Contract):
    engine: str
    model: str
    seed: int
    device: str = "cpu"
    image: bytes = Field(repr=False, description="PNG")
    width: int
    height: int
    timings: dict[str, float] = {}


class AceStepRequest(Contract):
    """One ACE-Step text-to-music run: the tags and lyrics are final here."""

    tags: str = Field(min_length=1)
    lyrics: str = Field(min_length=1, description='with structure tags, or "[instrumental]"')
    duration: float = Field(180.0, ge=1, le=SONG_MAX_DURATION)
    steps: int = Field(60, ge=1, le=200)
    guidance: float = Field(15.0, ge=0, le=30)
    scheduler: AceScheduler = "euler"
    cfg_type: AceCfgType = "apg"
    omega: float = Field(10.0, ge=-100, le=100)
    seed: Seed | None = None
    format: AudioFormat = "wav"
    float_wav: bool = False


class AceStepResult(Contract):
    engine: str
    model: str
    seed: int
    device: str = "cpu"
    audio: bytes = Field(repr=False)
    format: AudioFormat
    sample_rate: int = ACESTEP_SAMPLE_RATE
    channels: int
    duration: float
    timings: dict[str, float] = Field({}, description="preprocess, diffusion, decode (seconds)")


class SongResult(Contract):
    """Everything `muse gen song` made, with where each piece came from and how long it took."""

    engine: str = "acestep"
    model: str
    seed: int = Field(description="the song seed; stage seeds derive from it")
    device: str = "cpu"
    audio: bytes = Field(repr=False)
    format: AudioFormat
    sample_rate: int = ACESTEP_SAMPLE_RATE
    channels: int
    duration: float
    tags: str
    lyrics: str
    categories: list[str] = []
    cover: bytes | None = Field(None, repr=False, description="PNG")
    tags_source: Literal["user", "llm"]
    lyrics_source: Literal["user", "llm", "instrumental"]
    seeds: dict[str, int] = Field({}, description="per stage: acestep, tags, lyrics, categories, cover")
    models: dict[str, str] = Field({}, description="per stage: the model that ran it")
    timings: dict[str, float] = Field({}, description="llm, diffusion, decode, cover, categories, total ...")
    warnings: list[str] = Field([], description="optional stages (cover, categories) that failed")


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

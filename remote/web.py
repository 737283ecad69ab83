"""The muse HTTP API: every capability over one authenticated FastAPI app.

`create_app(backend, token=..., storage_dir=...)` builds the app. The Modal function `web` at the
end of this module serves it next to the model classes (ModalBackend, token from the `muse-api`
Secret); `muse serve` runs the same app with uvicorn on the local backend.

Routes drive `muse_cli.jobs.KINDS`, the jobs the CLI and `muse batch` run, and map muse errors to
statuses: InputError 422, a model not deployed or not installed 503, TransientFailure 503, other
failures 500 with one line. FastAPI is imported only inside `create_app`, so this module imports
where only modal is installed. docs/http-api.md documents every route.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose types are
# defined inside create_app, at run time.
import base64
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import modal

from remote.app import app
from remote.images import image
from remote.plan import service
from remote.web_gate import (
    BODY_IDLE_S,
    ApiError,
    Gate,
    check_token,
    digest,
    error_body,
    field_errors,
    from_muse_error,
    invalid,
)
from remote.web_store import MEDIA_TYPES, FileStore, StorageError, storage_from_env

log = logging.getLogger("muse.web")

TOKEN_ENV = "MUSE_API_TOKEN"
SECRET_NAME = "muse-api"
MIN_TOKEN_CHARS = 16

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Largest multipart body (`/v1/analyze`): about 5 minutes of 44.1 kHz stereo WAV."""
MAX_JSON_BYTES = 1024 * 1024
"""Largest JSON body: the longest valid request (8000 characters of lyrics) is far smaller."""
INLINE_MAX_BYTES = 16 * 1024 * 1024
"""Results larger than this are stored and returned as a key for `GET /v1/files/{key}`."""

ACCEPTED_AUDIO = {
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/flac": "flac", "audio/x-flac": "flac", "audio/mpeg": "mp3",
}



# ------------------------------------------------------------------------------------ helpers


def validate(contract: Any, fields: dict[str, Any]) -> Any:
    """Build a contract; its validators' complaints become field-level 422s."""
    from pydantic import ValidationError

    try:
        return contract.model_validate(fields)
    except ValidationError as exc:
        raise invalid(field_errors(exc.errors())) from None


def run_job(kind_name: str, fields: dict[str, Any], backend: Any) -> tuple[Any, Any]:
    """Validate, check and run one job of `jobs.KINDS`; returns (request, Outcome)."""
    from muse_cli.errors import MuseError
    from muse_cli.kinds import KINDS
    from muse_cli.progress import null_progress

    kind = KINDS[kind_name]
    request = validate(kind.request_type, fields)
    try:
        kind.check(request)
        return request, kind.run(request, backend, null_progress)
    except MuseError as exc:
        raise from_muse_error(exc) from None


def audio_choice(accept: str | None) -> str | None:
    """The audio format an Accept header asks for first, or None for JSON."""
    for part in (accept or "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ACCEPTED_AUDIO:
            return ACCEPTED_AUDIO[media]
        if media in ("application/json", "*/*", "application/*"):
            return None
    return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def subset(name: str, contract: Any, names: tuple[str, ...], *, extra: str = "forbid",
           overrides: Mapping[str, tuple[Any, Any]] | None = None, doc: str = "") -> Any:
    """An HTTP body model with some of a contract's fields, ranges and defaults included.

    The contract stays the one source of names and ranges; the body only chooses which of its
    fields a route accepts (and the JSON schema that OpenAPI shows for them).
    """
    from copy import copy

    from pydantic import ConfigDict, create_model

    defs: dict[str, Any] = {}
    for field in names:
        info = copy(contract.model_fields[field])
        defs[field] = (info.annotation, info)
    defs.update(overrides or {})
    config = ConfigDict(extra=extra, allow_inf_nan=False)  # type: ignore[typeddict-item]
    return create_model(name, __config__=config, __doc__=doc or None, **defs)


# ------------------------------------------------------------------------------------- health


def local_models(aliases: Mapping[str, str]) -> dict[str, list[str]]:
    """What the local backend can run right now, per endpoint (no loading, no network)."""
    import importlib.util

    from muse_cli.contracts import MUSICGEN_MODELS, MidiRequest
    from muse_cli.kinds.midi import midi_llm_cached

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


def deployed_models() -> dict[str, list[str]]:
    """On Modal: the classes deployed with this app (the web function is part of the same app)."""
    from muse_cli.contracts import MUSICGEN_MODELS
    from remote.plan import SERVICES

    have = set(SERVICES)
    return {
        "midi": ["etude"] + (["midi-llm"] if "MidiLLM" in have else []),
        "audio": sorted(MUSICGEN_MODELS) if "MusicGen" in have else [],
        "songs": ["acestep"] if {"AceStep", "LyricsLLM", "CoverArt"} <= have else [],
        "analyze": ["measures", "transcription"] + (["perceptual"] if "PianoModel" in have else []),
    }


# ---------------------------------------------------------------------------------------- app


def create_app(
    backend: Any,
    *,
    token: str,
    storage_dir: str | os.PathLike,
    model_aliases: Mapping[str, str] | None = None,
    default_audio_model: str | None = None,
    models: Callable[[], dict[str, list[str]]] | None = None,
    max_json_bytes: int = MAX_JSON_BYTES,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    inline_max_bytes: int = INLINE_MAX_BYTES,
    cors_origins: tuple[str, ...] = (),
    on_store: Callable[[], None] | None = None,
    on_miss: Callable[[], None] | None = None,
    body_idle_s: float = BODY_IDLE_S,
    store: Any = None,
) -> Any:
    """The FastAPI app serving every muse capability through `backend`.

    token: the bearer token every route but /health requires (at least 16 characters).
    storage_dir: where results too large to inline are kept for `GET /v1/files/{key}`.
    store: instead of that folder, an `S3Store` (remote/web_store.py): results go to its bucket.
    model_aliases: extra MusicGen model names this server accepts, mapped to what the backend
        loads (a local folder, a hub id): HTTP clients never name server paths themselves.
    default_audio_model: the model for requests that name none (and for /generate_endpoint).
    models: what /health lists as available; by default probed from the local backend.
    body_idle_s: a request body that sends nothing for this long is answered 408 (the Gate).
    """
    from typing import Annotated, Literal

    from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    import re
    from copy import copy

    from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, ConfigDict, Field, create_model
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from muse_cli import __version__
    from muse_cli.contracts import (
        MUSICGEN_MODELS,
        PROTOCOL_VERSION,
        AnalysisReport,
        AnalyzeRequest,
        AudioFormat,
        AudioRequest,
        MidiMetadata,
        MidiRequest,
        SongRequest,
        Text,
    )
    from muse_cli.errors import MuseError

    if not token or len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the API token must have at least {MIN_TOKEN_CHARS} characters")
    token_digest = digest(token)
    if store is None:
        store = FileStore(storage_dir, on_put=on_store, on_miss=on_miss)
    aliases = dict(model_aliases or {})
    audio_default = default_audio_model or AudioRequest.model_fields["model"].default
    list_models = models or (lambda: local_models(aliases))

    api = FastAPI(
        title="muse",
        version=__version__,
        description="Music generation and analysis: MIDI, audio, songs and performance reports. "
        "Every route but /health needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like everything but /health
    )
    bearer = HTTPBearer(auto_error=False, description="the server's API token")

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        # The Gate middleware has already refused bad tokens; this declares the scheme in
        # OpenAPI and guards any route should the app be mounted without the Gate.
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        problem = check_token(header, token_digest)
        if problem is not None:
            raise ApiError(401, "unauthorized", problem, headers={"www-authenticate": "Bearer"})

    auth = [Depends(authorized)]

    # ---------------------------------------------------------------- errors: one JSON shape

    def render(err: ApiError) -> JSONResponse:
        return JSONResponse(error_body(err.kind, err.message, err.hint, err.fields), err.status, err.headers)

    @api.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return render(exc)

    @api.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return render(invalid(field_errors(list(exc.errors()))))

    @api.exception_handler(MuseError)
    async def _muse(_: Request, exc: MuseError) -> JSONResponse:
        return render(from_muse_error(exc))

    @api.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        log.warning("%s", exc)
        return render(ApiError(503, "storage_unavailable", str(exc), headers={"retry-after": "30"}))

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return render(ApiError(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail),
                               headers=dict(exc.headers or {})))

    @api.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s", type(exc).__name__, exc_info=exc)
        return render(ApiError(500, "internal", "internal error: the server log has the details"))

    # ------------------------------------------------------------------------ body models

    class Failure(BaseModel):
        success: bool = False
        error: dict[str, Any]

    failures = {code: {"model": Failure} for code in (401, 413, 422, 500, 503)}

    MidiBody = subset(
        "MidiBody", MidiRequest,
        ("prompt", "engine", "difficulty", "key", "tempo", "time_signature", "bars", "instrument", "hands",
         "style", "seed", "temperature", "top_p", "max_tokens"),
        doc="One MIDI piece: MIDI-LLM from a prompt, or the etude composer from structured fields.",
    )
    MidiCompatBody = subset(
        "MidiCompatBody", MidiRequest, ("prompt", "temperature", "instrument", "difficulty", "key", "tempo", "seed"),
        extra="ignore", doc="The earlier MIDI-LLM service's request; unknown fields are ignored.",
    )
    def prompt_required() -> tuple[Any, Any]:
        return str, Field(min_length=1, max_length=2000, description="what to generate, in words")

    AudioBody = subset(
        "AudioBody", AudioRequest,
        ("duration", "temperature", "top_k", "top_p", "cfg_coef", "seed", "format"),
        overrides={
            "prompt": prompt_required(),
            "model": (str | None, Field(None, description=f"a MusicGen name; default {audio_default}")),
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
    SongBody = subset(
        "SongBody", SongRequest,
        ("description", "lyrics", "describe_lyrics", "tags", "instrumental", "duration", "steps", "guidance",
         "scheduler", "cfg_type", "omega", "seed", "format", "cover", "categories"),
        doc="An ACE-Step song: from a description, with the user's lyrics, or with lyrics the LLM "
        "writes about `describe_lyrics`; `instrumental` for none.",
    )

    class MidiReply(BaseModel):
        success: bool = True
        midiData: str = Field(description="the MIDI file, base64")
        metadata: MidiMetadata
        model: str
        engine: str
        seed: int
        backend: str
        notices: list[str] = []

    class AudioReply(BaseModel):
        audio_base64: str | None = Field(None, description="the audio file, base64 (when inline)")
        audio_key: str | None = Field(None, description="GET /v1/files/{key} (when too large to inline)")
        format: AudioFormat
        sample_rate: int
        channels: int
        duration: float
        seed: int
        model: str

    class AudioCompatReply(BaseModel):
        audio_base64: str
        sample_rate: int
        duration: float
        seed: int

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

    class AnalyzeReply(AnalysisReport):
        model_config = ConfigDict(frozen=True, extra="forbid")
        midi_base64: str | None = Field(None, description="the transcription as MIDI, when midi=true")
        plot_base64: str | None = Field(None, description="PNG plot, when plot=true")
        score_plot_base64: str | None = Field(None, description="PNG practice plot, when a score is sent and plot=true")

    Delivery = Annotated[
        Literal["auto", "inline", "key"],
        Query(description="auto: inline up to the server's limit, else a key for GET /v1/files/{key}"),
    ]

    def deliver(data: bytes, suffix: str, delivery: str) -> tuple[str | None, str | None]:
        """(base64, None) inline, or (None, key) stored."""
        if delivery == "inline" or (delivery == "auto" and len(data) <= inline_max_bytes):
            return b64(data), None
        return None, store.put(data, suffix)

    # --------------------------------------------------------------------------- routes

    @api.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness and what this server can run; no token needed."""
        return {"status": "ok", "version": __version__, "protocol": PROTOCOL_VERSION,
                "backend": backend.name, "models": list_models(),
                # seed 001's field: the default MusicGen, by hub id (a --model alias by its name,
                # never the server path behind it)
                "model": MUSICGEN_MODELS.get(audio_default, audio_default)}

    @api.get("/openapi.json", include_in_schema=False, dependencies=auth)
    def openapi() -> JSONResponse:
        return JSONResponse(api.openapi())

    def midi(body: BaseModel) -> dict[str, Any]:
        _, outcome = run_job("midi", {**body.model_dump(exclude_unset=True), "count": 1}, backend)
        result = outcome.result
        sample = result.samples[0]
        return {"success": True, "midiData": b64(sample.midi), "metadata": sample.metadata, "model": result.model,
                "engine": result.engine, "seed": sample.seed, "backend": outcome.backend, "notices": outcome.notices}

    @api.post("/v1/midi", tags=["midi"], dependencies=auth, response_model=MidiReply, responses=failures)
    def midi_v1(body: MidiBody) -> dict[str, Any]:  # type: ignore[valid-type]
        """Compose one MIDI piece (MIDI-LLM where deployed, else the etude composer)."""
        return midi(body)

    @api.post("/generate", tags=["compatibility"], dependencies=auth, response_model=MidiReply, responses=failures)
    def midi_compat(body: MidiCompatBody) -> dict[str, Any]:  # type: ignore[valid-type]
        """The earlier MIDI-LLM service's route and contract."""
        return midi(body)

    def audio(fields: dict[str, Any], format_: str | None = None) -> tuple[Any, Any]:
        name = fields.pop("model", None) or audio_default
        if name in aliases:
            model = aliases[name]
        elif name in MUSICGEN_MODELS or name in MUSICGEN_MODELS.values():
            model = name
        else:
            served = ", ".join(sorted(set(MUSICGEN_MODELS) | set(aliases)))
            raise invalid([{"field": "model", "message": f"{name!r} is not served here: use one of {served}"}])
        if format_ is not None:
            fields["format"] = format_
        _, outcome = run_job("audio", {**fields, "model": model, "count": 1}, backend)
        return outcome.result.clips[0], name

    @api.post(
        "/v1/audio", tags=["audio"], dependencies=auth, response_model=AudioReply,
        responses={**failures, 200: {"content": {m: {} for m in ("audio/wav", "audio/flac", "audio/mpeg")},
                                     "description": "JSON, or the audio file when Accept names an audio type"}},
    )
    def audio_v1(
        body: AudioBody,  # type: ignore[valid-type]
        delivery: Delivery = "auto",
        accept: Annotated[str | None, Header()] = None,
    ) -> Any:
        """Generate one clip with MusicGen: the audio file (Accept: audio/wav or audio/flac) or JSON."""
        fields = body.model_dump(exclude_unset=True)
        wanted = audio_choice(accept)
        if wanted is not None and fields.get("format", wanted) != wanted:
            raise invalid([{"field": "format", "message": f"{fields['format']!r} conflicts with Accept: {accept}"}])
        clip, name = audio(fields, wanted)
        if wanted is not None:
            headers = {"x-muse-seed": str(clip.seed), "x-muse-sample-rate": str(clip.sample_rate),
                       "x-muse-duration": f"{clip.duration:.3f}", "x-muse-model": name,
                       "content-disposition": f'attachment; filename="muse-{clip.seed}.{clip.format}"'}
            return Response(clip.audio, media_type=MEDIA_TYPES[clip.format], headers=headers)
        inline, key = deliver(clip.audio, clip.format, delivery)
        return {"audio_base64": inline, "audio_key": key, "format": clip.format, "sample_rate": clip.sample_rate,
                "channels": clip.channels, "duration": clip.duration, "seed": clip.seed, "model": name}

    @api.post("/generate_endpoint", tags=["compatibility"], dependencies=auth, response_model=AudioCompatReply,
              responses=failures)
    def audio_compat(body: AudioCompatBody) -> dict[str, Any]:  # type: ignore[valid-type]
        """The earlier MusicGen service's route and contract (WAV, base64)."""
        clip, _ = audio(body.model_dump(), "wav")
        return {"audio_base64": b64(clip.audio), "sample_rate": clip.sample_rate, "duration": clip.duration,
                "seed": clip.seed}

    @api.post("/v1/songs", tags=["songs"], dependencies=auth, response_model=SongReply, responses=failures)
    def songs_v1(body: SongBody, delivery: Delivery = "auto") -> dict[str, Any]:  # type: ignore[valid-type]
        """Make a song with ACE-Step: audio, cover art and genre categories."""
        if delivery != "inline":
            store.ready()  # a store that cannot take the result fails before any GPU time
        _, outcome = run_job("song", body.model_dump(exclude_unset=True), backend)
        song = outcome.result
        audio_b64, audio_key = deliver(song.audio, song.format, delivery)
        cover_b64, cover_key = deliver(song.cover, "png", delivery) if song.cover else (None, None)
        return {"audio_base64": audio_b64, "audio_key": audio_key, "cover_base64": cover_b64, "cover_key": cover_key,
                "categories": song.categories, "format": song.format, "sample_rate": song.sample_rate,
                "channels": song.channels, "duration": song.duration, "tags": song.tags, "lyrics": song.lyrics,
                "tags_source": song.tags_source, "lyrics_source": song.lyrics_source, "seed": song.seed,
                "model": song.model, "warnings": song.warnings}

    analyze_defaults = AnalyzeRequest.model_fields

    @api.post("/v1/analyze", tags=["analysis"], dependencies=auth, response_model=AnalyzeReply,
              response_model_exclude_none=False, responses=failures)
    def analyze_v1(
        file: Annotated[UploadFile, File(description="a WAV/FLAC/OGG/MP3 recording or a MIDI performance")],
        score: Annotated[UploadFile | None, File(description=analyze_defaults["score"].description)] = None,
        transcribe: Annotated[bool | None, Form(description=analyze_defaults["transcribe"].description)] = None,
        notes: Annotated[bool, Form(description=analyze_defaults["notes"].description)] = False,
        midi: Annotated[bool, Form(description=analyze_defaults["midi"].description)] = False,
        plot: Annotated[bool, Form(description=analyze_defaults["plot"].description)] = False,
        max_duration: Annotated[float, Form(gt=0, le=4 * 3600, allow_inf_nan=False,
                                            description=analyze_defaults["max_duration"].description)] = 1800.0,
    ) -> dict[str, Any]:
        """Analyse an uploaded performance: the `muse analyze` JSON report."""
        from muse_cli.pipelines.analysis import client_duration_problem

        if problem := client_duration_problem(max_duration):
            raise invalid([{"field": "max_duration", "message": problem}])
        data = file.file.read()
        if not data:
            raise invalid([{"field": "file", "message": "the uploaded file is empty"}])
        name = Path(file.filename or "upload").name or "upload"
        fields = {"transcribe": transcribe, "notes": notes, "midi": midi, "plot": plot, "max_duration": max_duration,
                  "input": {"name": name, "data": data}}
        if score is not None:
            score_data = score.file.read()
            if not score_data:
                raise invalid([{"field": "score", "message": "the uploaded score is empty"}])
            fields["score"] = {"name": Path(score.filename or "score").name or "score", "data": score_data}
        _, outcome = run_job("analyze", {k: v for k, v in fields.items() if v is not None}, backend)
        result = outcome.result
        report = getattr(result, "report", result)
        reply = report.model_dump(mode="json")
        midi_bytes, png = getattr(result, "midi", None), getattr(result, "png", None)
        reply["midi_base64"] = b64(midi_bytes) if midi_bytes else None
        reply["plot_base64"] = b64(png) if png else None
        score_png = getattr(result, "score_png", None)
        reply["score_plot_base64"] = b64(score_png) if score_png else None
        return reply

    # ------------------------------------------------------------ seed 004's routes

    seed_fields = SongRequest.model_fields
    # seed 004's name -> the song contract's; the contract's ranges and defaults come along.
    SEED_NAMES = {"full_described_song": "description", "prompt": "tags", "lyrics": "lyrics",
                  "described_lyrics": "describe_lyrics", "audio_duration": "duration", "seed": "seed",
                  "guidance_scale": "guidance", "infer_step": "steps", "instrumental": "instrumental"}
    CONTRACT_WORDS = {v: k for k, v in SEED_NAMES.items() if k != v}

    def seed_body(name: str, required: dict[str, Any], doc: str) -> Any:
        defs: dict[str, tuple[Any, Any]] = {
            seed_name: (annotation, Field(description=seed_fields[SEED_NAMES[seed_name]].description))
            for seed_name, annotation in required.items()
        }
        for seed_name in ("audio_duration", "seed", "guidance_scale", "infer_step", "instrumental"):
            info = copy(seed_fields[SEED_NAMES[seed_name]])
            defs[seed_name] = (info.annotation, info)
        # Unknown fields are ignored, as the seed's own server did (and the other compat routes do).
        return create_model(name, __config__=ConfigDict(extra="ignore", allow_inf_nan=False), __doc__=doc, **defs)

    DescriptionBody = seed_body("GenerateFromDescription", {"full_described_song": Text},
                                "Seed 004: the LLM writes the tags and the lyrics from one description.")
    LyricsBody = seed_body("GenerateWithLyrics", {"prompt": Text, "lyrics": str},
                           "Seed 004: the user's tags (`prompt`) and lyrics.")
    DescribedLyricsBody = seed_body("GenerateWithDescribedLyrics", {"prompt": Text, "described_lyrics": Text},
                                    "Seed 004: the user's tags; the LLM writes lyrics about `described_lyrics`.")

    class SeedReply(BaseModel):
        r2_key: str = Field(description="the song (WAV) in the configured store: the bucket's object key, "
                            "or a key for GET /v1/files/{key}")
        cover_image_r2_key: str | None = Field(description="the cover art (PNG); null if it failed")
        categories: list[str]

    def seed_song(body: BaseModel) -> dict[str, Any]:
        """One adapter for the three seed routes: rename to the song contract, run, store both files."""
        fields = {SEED_NAMES[k]: v for k, v in body.model_dump().items()}
        fields.update(format="wav", cover=True, categories=True)
        store.ready()  # before any GPU time
        try:
            _, outcome = run_job("song", fields, backend)
        except ApiError as err:  # name the seed's fields, not the contract's
            raise seed_words(err) from None
        song = outcome.result
        files = [(song.audio, song.format)] + ([(song.cover, "png")] if song.cover else [])
        keys = store.put_group(files)
        return {"r2_key": keys[0], "cover_image_r2_key": keys[1] if song.cover else None,
                "categories": song.categories}

    def seed_words(err: ApiError) -> ApiError:
        def words(text: str) -> str:
            return re.sub(r"\b(" + "|".join(CONTRACT_WORDS) + r")\b", lambda m: CONTRACT_WORDS[m.group(1)], text)

        fields = [{"field": words(f["field"]), "message": words(f["message"])} for f in err.fields or []]
        return ApiError(err.status, err.kind, words(err.message), hint=err.hint, fields=fields or None,
                        headers=err.headers)

    seed_routes = {"/generate-from-description": DescriptionBody, "/generate-with-lyrics": LyricsBody,
                   "/generate-with-described-lyrics": DescribedLyricsBody}

    def seed_route(path: str, body_model: Any) -> None:
        def route(body: body_model) -> dict[str, Any]:  # type: ignore[valid-type]
            return seed_song(body)

        route.__doc__ = f"Seed 004's `{path}`: {body_model.__doc__}"
        api.post(path, tags=["compatibility"], dependencies=auth, response_model=SeedReply, responses=failures,
                 name=path.strip("/").replace("-", "_"))(route)

    for path, model in seed_routes.items():
        seed_route(path, model)

    @api.post("/auth-status", tags=["compatibility"], dependencies=auth, responses=failures)
    def auth_status() -> dict[str, Any]:
        """Seed 004's token check: 200 for a good token (401 otherwise, from the Gate)."""
        return {"authenticated": True, "status": "ok"}

    @api.get(
        "/v1/files/{key:path}", tags=["files"], dependencies=auth,
        responses={**failures, 404: {"model": Failure},
                   200: {"content": {m: {} for m in MEDIA_TYPES.values()}, "description": "the stored file"}},
    )
    def files_v1(key: str) -> Any:
        """A result stored by an earlier call (its `*_key` or `r2_key`): from the folder for a day, or
        streamed from the S3 bucket through this server (no redirect: a presigned URL would hand
        the client the access key id, and the bucket may not be reachable from the client)."""
        if not isinstance(store, FileStore):
            opened = store.open(key)
            if opened is None:
                raise ApiError(404, "not_found", "no such file")
            chunks, length, media = opened
            return StreamingResponse(chunks, media_type=media, headers={
                "content-length": str(length), "content-disposition": f'attachment; filename="{key.rsplit("/", 1)[-1]}"'})
        path = store.path(key)
        if path is None:
            raise ApiError(404, "not_found", "no such file (keys expire after a day)")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix[1:]], filename=key)

    api.add_middleware(Gate, token_digest=token_digest, max_json=max_json_bytes, max_upload=max_upload_bytes,
                       body_idle_s=body_idle_s)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        # Outermost, so a browser's preflight (which carries no token) is answered before the Gate.
        api.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type", "accept"],
                           expose_headers=["x-muse-seed", "x-muse-sample-rate", "x-muse-duration", "x-muse-model"])
    api.state.store = store
    return api


# -------------------------------------------------------------------------------------- Modal

FILES_DIR = "/files"
FILES_VOLUME = "muse-files"
files_volume = modal.Volume.from_name(FILES_VOLUME, create_if_missing=True)

web_image = image(
    "web",
    "fastapi==0.165.0",
    "python-multipart==0.0.34",
    "librosa==0.11.0",
    "soxr==1.1.0",
    "onnxruntime==1.31.1",
    "matplotlib==3.11.2",
    "boto3==1.44.8",  # results in an S3-compatible bucket when MUSE_STORAGE is set
    no_deps=("basic-pitch==0.4.0",),  # only its ONNX model file is used
)


@app.function(**service(
    "web", kind="function", image=web_image, image_name="web", loads_weights=False, secrets=(SECRET_NAME,),
    timeout=1800,  # a 240 s song with lyrics, cover and categories, waited for in one request
    scaledown_window=300, cpu=2.0, memory=4096, volumes={FILES_DIR: files_volume},
))
@modal.concurrent(max_inputs=32)
@modal.asgi_app()
def web() -> Any:
    """The HTTP API on Modal: requests fan out to the model classes of this same app."""
    from muse_cli.backends.modal import ModalBackend

    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN_CHARS:
        raise RuntimeError(
            f"{TOKEN_ENV} is missing or shorter than {MIN_TOKEN_CHARS} characters: "
            f"modal secret create {SECRET_NAME} {TOKEN_ENV}=<token>"
        )
    origins = tuple(o.strip() for o in os.environ.get("MUSE_CORS_ORIGINS", "").split(",") if o.strip())
    # MUSE_STORAGE=s3://bucket/prefix (with MUSE_S3_ENDPOINT_URL and AWS_* keys, from the same
    # Secret) keeps results in that bucket; otherwise on the muse-files Volume.
    store = storage_from_env()
    return create_app(
        ModalBackend(), token=token, storage_dir=FILES_DIR, models=deployed_models, cors_origins=origins,
        on_store=files_volume.commit, on_miss=files_volume.reload, store=store,
    )

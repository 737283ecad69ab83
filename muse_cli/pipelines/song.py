"""`muse gen song`: the stages of a song and the order they run in.

    1. LLM stage (only what the user did not give): style tags from the description, then lyrics
       (from the description or `describe_lyrics`, with the tags as style context).
    2. At once, on three workers: ACE-Step diffusion + decode (the long part), cover art and genre
       categories (both need only the tags). Cover and categories are optional extras: if one
       fails, the song is still returned, with a warning naming what failed.

Every stage goes through `run(family, request, progress=...)`, the backend's run function, so
the same code drives in-process engines and deployed Modal classes. Stage seeds derive from the
song seed, so one recorded seed reproduces every stage.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol

from muse_cli.contracts import (
    AceStepRequest,
    AceStepResult,
    CoverRequest,
    CoverResult,
    LyricsRequest,
    LyricsResult,
    SongRequest,
    SongResult,
)
from muse_cli.engines.base import derive_seed, resolve_seed
from muse_cli.music import songtext
from muse_cli.progress import ProgressFn, null_progress

STAGES = ("acestep", "tags", "lyrics", "categories", "cover")
LLM_SHARE = 10.0
"""Percent of the progress bar the LLM stage takes when it runs (diffusion takes the rest)."""


class StageRunner(Protocol):
    def __call__(self, family: str, request: Any, *, progress: ProgressFn = ...) -> Any: ...


def stage_seeds(seed: int) -> dict[str, int]:
    """acestep uses the song seed itself; the LLM and cover stages derive theirs from it."""
    return {name: seed if i == 0 else derive_seed(seed, i) for i, name in enumerate(STAGES)}


class _Background:
    """One stage on a daemon thread: Ctrl-C in the caller is never held up by a remote call."""

    def __init__(self, fn: Callable[[], Any]):
        self._result: Any = None
        self._error: BaseException | None = None
        self.seconds = 0.0

        def work() -> None:
            started = time.perf_counter()
            try:
                self._result = fn()
            except BaseException as exc:  # handed to the caller by result()
                self._error = exc
            finally:
                self.seconds = round(time.perf_counter() - started, 3)

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def result(self) -> Any:
        while self._thread.is_alive():
            self._thread.join(0.2)  # short joins keep the main thread responsive to Ctrl-C
        if self._error is not None:
            raise self._error
        return self._result


def _warning(stage: str, exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{stage} failed: {message.splitlines()[0]}"


def make_song(request: SongRequest, run: StageRunner, progress: ProgressFn = null_progress) -> SongResult:
    """Run every stage of one song and gather the result (audio, cover, texts, seeds, timings)."""
    started = time.perf_counter()
    seed = resolve_seed(None if request.seed < 0 else request.seed)
    seeds = stage_seeds(seed)
    timings: dict[str, float] = {}
    models: dict[str, str] = {}
    warnings: list[str] = []

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 3)
        return out

    # ---- 1. the LLM stage: tags, then lyrics (the tags give the lyrics their style)
    needs_tags = request.tags is None
    needs_lyrics = not request.instrumental and request.lyrics is None
    share = LLM_SHARE if needs_tags or needs_lyrics else 0.0
    llm_started = time.perf_counter()
    if needs_tags:
        answer: LyricsResult = timed("tags", lambda: run("lyrics", LyricsRequest(
            task="tags", description=request.description, instrumental=request.instrumental,
            seed=seeds["tags"], precision=request.precision)))
        tags = answer.tags or ""
        models["lyrics"] = answer.model
        progress(share / 2 if needs_lyrics else share, 100.0)
    else:
        tags = songtext.normalize_tags(request.tags or "") or (request.tags or "")
    if request.instrumental:
        lyrics = songtext.INSTRUMENTAL_LYRICS
    elif request.lyrics is not None:
        lyrics = request.lyrics
    else:
        answer = timed("lyrics", lambda: run("lyrics", LyricsRequest(
            task="lyrics", description=request.describe_lyrics or request.description, tags=tags,
            duration=request.duration, seed=seeds["lyrics"], precision=request.precision)))
        lyrics = answer.lyrics or ""
        models["lyrics"] = answer.model
    if share:
        timings["llm"] = round(time.perf_counter() - llm_started, 3)
        progress(share, 100.0)

    # ---- 2. diffusion, cover art and categories at once
    def music_progress(done: float, total: float) -> None:
        if total > 0:
            progress(share + (100.0 - share) * min(done / total, 1.0), 100.0)

    music = _Background(lambda: run("acestep", AceStepRequest(
        tags=tags, lyrics=lyrics, duration=request.duration, steps=request.steps,
        guidance=request.guidance, scheduler=request.scheduler, cfg_type=request.cfg_type,
        omega=request.omega, seed=seeds["acestep"], format=request.format,
        float_wav=request.float_wav), progress=music_progress))
    cover = _Background(lambda: run("cover", CoverRequest(
        prompt=songtext.cover_prompt(tags, request.description), seed=seeds["cover"]))) if request.cover else None
    genres = _Background(lambda: run("lyrics", LyricsRequest(
        task="categories", tags=tags, description=request.description,
        seed=seeds["categories"], precision=request.precision))) if request.categories else None

    song: AceStepResult = music.result()
    timings["acestep"] = music.seconds
    timings.update({k: v for k, v in song.timings.items() if k in ("preprocess", "diffusion", "decode")})
    models["acestep"] = song.model

    image: bytes | None = None
    if cover is not None:
        try:
            art: CoverResult = cover.result()
            image = art.image
            models["cover"] = art.model
        except Exception as exc:  # an optional extra: the finished song is worth more than its cover
            warnings.append(_warning("cover", exc))
        timings["cover"] = cover.seconds
    categories: list[str] = []
    if genres is not None:
        try:
            named: LyricsResult = genres.result()
            categories = list(named.categories)
            models.setdefault("lyrics", named.model)
        except Exception as exc:  # optional, as the cover
            warnings.append(_warning("categories", exc))
        timings["categories"] = genres.seconds

    timings["total"] = round(time.perf_counter() - started, 3)
    progress(100.0, 100.0)
    used = set(describe_plan(request))
    return SongResult(
        model=song.model,
        seed=seed,
        device=song.device,
        audio=song.audio,
        format=song.format,
        sample_rate=song.sample_rate,
        channels=song.channels,
        duration=song.duration,
        tags=tags,
        lyrics=lyrics,
        categories=categories,
        cover=image,
        tags_source=request.tags_source,
        lyrics_source=request.lyrics_source,
        seeds={k: v for k, v in seeds.items() if k in used},
        models=models,
        timings=timings,
        warnings=warnings,
    )


def describe_plan(request: SongRequest) -> list[str]:
    """The stages a request will run, in order (for --dry-run style reporting and tests)."""
    plan = []
    if request.tags is None:
        plan.append("tags")
    if not request.instrumental and request.lyrics is None:
        plan.append("lyrics")
    plan.append("acestep")
    if request.cover:
        plan.append("cover")
    if request.categories:
        plan.append("categories")
    return plan

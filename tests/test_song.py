"""Song orchestration: which stages run for each mode, in what order and with what inputs, what
runs at the same time, how failures travel, and the SongResult it assembles. Most tests drive
`make_song` with a recording stage runner; the last one runs the real lyrics and cover engines
on tiny models (ACE-Step, not installable here, runs as the stand-in pipeline)."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest
from pydantic import ValidationError

from muse_cli.contracts import (
    AceStepRequest,
    AceStepResult,
    CoverRequest,
    CoverResult,
    LyricsResult,
    SongRequest,
    SongResult,
)
from muse_cli.errors import RuntimeFailure
from muse_cli.music.audio import encode_audio
from muse_cli.progress import null_progress
from muse_cli.pipelines.song import describe_plan, make_song, stage_seeds

PNG = b"\x89PNG\r\n\x1a\nstand-in"
LLM_TAGS = "synth-pop, female vocals, synthesizer, nostalgic, 118 bpm, a minor"
LLM_LYRICS = "[verse]\nneon lights\n\n[chorus]\nsummer nights"


def song_audio(seconds: float = 0.25) -> bytes:
    t = np.arange(int(48000 * seconds)) / 48000
    tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return encode_audio(np.stack([tone, tone]), 48000, "wav")


class Stages:
    """A stage runner with the backend's signature that records every call and answers like the
    engines would; `fail` makes a family raise, `hooks` run inside a stage (to probe concurrency)."""

    def __init__(self, fail: dict[str, BaseException] | None = None, hooks: dict | None = None):
        self.calls: list[tuple[str, object]] = []
        self.fail = fail or {}
        self.hooks = hooks or {}
        self.lock = threading.Lock()

    def __call__(self, family, request, *, progress=null_progress):
        with self.lock:
            self.calls.append((family, request))
        key = family if family != "lyrics" else f"lyrics:{request.task}"
        if key in self.hooks:
            self.hooks[key]()
        if key in self.fail:
            raise self.fail[key]
        if family == "lyrics":
            fields = {"tags": {"tags": LLM_TAGS}, "lyrics": {"lyrics": LLM_LYRICS},
                      "categories": {"categories": ["Synth-pop", "Electronic", "Pop"]}}[request.task]
            return LyricsResult(engine="lyrics", model="tiny-qwen", seed=request.seed, task=request.task, **fields)
        if family == "cover":
            return CoverResult(engine="cover", model="tiny-sdxl", seed=request.seed, image=PNG, width=512, height=512)
        assert family == "acestep"
        for step in range(1, 5):
            progress(step, 5)
        return AceStepResult(engine="acestep", model="ace", seed=request.seed, device="cuda", audio=song_audio(),
                             format="wav", channels=2, duration=0.25,
                             timings={"preprocess": 0.1, "diffusion": 2.0, "decode": 0.5, "acestep": 2.7})

    def families(self) -> list[str]:
        return [f if f != "lyrics" else f"lyrics:{r.task}" for f, r in self.calls]

    def request(self, key: str):
        return next(r for f, r in self.calls if (f if f != "lyrics" else f"lyrics:{r.task}") == key)


# -------------------------------------------------------------------------------------- modes


def test_description_mode_writes_tags_then_lyrics_then_the_rest():
    stages = Stages()
    result = make_song(SongRequest(description="summer synth-pop about neon nights", seed=7, duration=30), stages)
    order = stages.families()
    assert order[:2] == ["lyrics:tags", "lyrics:lyrics"]
    assert sorted(order[2:]) == ["acestep", "cover", "lyrics:categories"]
    tags_req, lyrics_req = stages.request("lyrics:tags"), stages.request("lyrics:lyrics")
    assert tags_req.description == "summer synth-pop about neon nights" and not tags_req.instrumental
    assert lyrics_req.tags == LLM_TAGS and lyrics_req.description == tags_req.description
    assert lyrics_req.duration == 30
    ace: AceStepRequest = stages.request("acestep")
    assert (ace.tags, ace.lyrics, ace.duration, ace.steps, ace.guidance) == (LLM_TAGS, LLM_LYRICS, 30, 60, 15.0)
    assert (ace.scheduler, ace.cfg_type, ace.omega, ace.format) == ("euler", "apg", 10.0, "wav")
    cover: CoverRequest = stages.request("cover")
    assert cover.prompt.startswith("album cover art, summer synth-pop about neon nights, synth-pop")
    assert (cover.steps, cover.guidance) == (2, 0.0)
    assert stages.request("lyrics:categories").tags == LLM_TAGS

    assert isinstance(result, SongResult)
    assert (result.tags, result.lyrics, result.cover) == (LLM_TAGS, LLM_LYRICS, PNG)
    assert result.categories == ["Synth-pop", "Electronic", "Pop"]
    assert (result.tags_source, result.lyrics_source) == ("llm", "llm")
    assert (result.sample_rate, result.channels, result.format, result.device) == (48000, 2, "wav", "cuda")
    assert result.seed == 7 and result.seeds == stage_seeds(7)
    assert result.seeds["acestep"] == 7 == ace.seed and tags_req.seed == result.seeds["tags"]
    assert result.models == {"lyrics": "tiny-qwen", "acestep": "ace", "cover": "tiny-sdxl"}
    assert {"llm", "tags", "lyrics", "acestep", "preprocess", "diffusion", "decode", "cover", "categories",
            "total"} <= set(result.timings)
    assert result.timings["diffusion"] == 2.0 and result.timings["decode"] == 0.5
    assert result.warnings == []


def test_user_lyrics_and_tags_skip_the_llm_stage():
    stages = Stages()
    lyrics = "[Verse]\n  My own words  \r\n\r\n[chorus]\nla la"
    result = make_song(SongRequest(tags="Pop ,  piano,, pop", lyrics=lyrics, seed=1), stages)
    assert sorted(stages.families()) == ["acestep", "cover", "lyrics:categories"]
    assert result.tags == "Pop, piano" == stages.request("acestep").tags
    assert result.lyrics == "[Verse]\nMy own words\n\n[chorus]\nla la" == stages.request("acestep").lyrics
    assert (result.tags_source, result.lyrics_source) == ("user", "user")
    assert "llm" not in result.timings and "tags" not in result.seeds and "lyrics" not in result.seeds


def test_describe_lyrics_uses_that_description_and_the_user_tags():
    stages = Stages()
    result = make_song(SongRequest(tags="rave, funk, 140 bpm", describe_lyrics="dancing all night"), stages)
    assert stages.families()[0] == "lyrics:lyrics"
    lyrics_req = stages.request("lyrics:lyrics")
    assert (lyrics_req.description, lyrics_req.tags) == ("dancing all night", "rave, funk, 140 bpm")
    assert result.lyrics == LLM_LYRICS and result.lyrics_source == "llm" and result.tags_source == "user"


def test_instrumental_with_description_writes_instrumental_tags_and_no_lyrics():
    stages = Stages()
    result = make_song(SongRequest(description="calm lo-fi beat", instrumental=True), stages)
    assert "lyrics:lyrics" not in stages.families()
    assert stages.request("lyrics:tags").instrumental
    assert result.lyrics == "[instrumental]" == stages.request("acestep").lyrics
    assert result.lyrics_source == "instrumental"


def test_instrumental_with_tags_needs_no_llm_at_all():
    stages = Stages()
    make_song(SongRequest(tags="ambient, pads", instrumental=True, cover=False, categories=False), stages)
    assert stages.families() == ["acestep"]
    assert describe_plan(SongRequest(tags="ambient", instrumental=True, cover=False, categories=False)) == ["acestep"]


def test_tags_alone_get_llm_lyrics_in_that_style():
    stages = Stages()
    make_song(SongRequest(tags="surf rock, reverb guitar", cover=False, categories=False), stages)
    assert stages.families() == ["lyrics:lyrics", "acestep"]
    assert stages.request("lyrics:lyrics").description is None
    assert stages.request("lyrics:lyrics").tags == "surf rock, reverb guitar"


# ---------------------------------------------------------------------------- concurrency


def test_cover_and_categories_run_while_acestep_diffuses():
    both_started = threading.Barrier(3, timeout=10)
    stages = Stages(hooks={k: both_started.wait for k in ("acestep", "cover", "lyrics:categories")})
    # Were the three run one after another, the barrier would break (BrokenBarrierError) instead.
    result = make_song(SongRequest(tags="pop", lyrics="[verse]\nhi"), stages)
    assert result.cover == PNG and len(result.categories) == 3


def test_progress_goes_from_llm_share_to_100_monotonically():
    seen = []
    make_song(SongRequest(description="a song"), Stages(), progress=lambda d, t: seen.append(d / t))
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert 0.1 in seen, "the LLM stage ends at its share of the bar"
    assert any(0.1 < x < 1.0 for x in seen), "diffusion steps move the bar"


# -------------------------------------------------------------------------------- failures


def test_cover_failure_is_a_warning_not_a_lost_song():
    stages = Stages(fail={"cover": RuntimeFailure("CUDA out of memory", hint="x")})
    result = make_song(SongRequest(tags="pop", lyrics="[verse]\nhi"), stages)
    assert result.cover is None and result.audio
    assert result.warnings == ["cover failed: CUDA out of memory"]
    assert "cover" not in result.models


def test_categories_failure_is_a_warning():
    stages = Stages(fail={"lyrics:categories": RuntimeFailure("the lyrics model gave no usable genre names")})
    result = make_song(SongRequest(tags="pop", lyrics="[verse]\nhi"), stages)
    assert result.categories == [] and result.cover == PNG
    assert result.warnings == ["categories failed: the lyrics model gave no usable genre names"]


def test_acestep_failure_propagates():
    stages = Stages(fail={"acestep": RuntimeFailure("out of memory", hint="use a bigger GPU")})
    with pytest.raises(RuntimeFailure, match="out of memory"):
        make_song(SongRequest(tags="pop", lyrics="[verse]\nhi"), stages)


def test_lyrics_failure_stops_before_any_diffusion():
    stages = Stages(fail={"lyrics:lyrics": RuntimeFailure("no usable lyrics in 2 tries")})
    with pytest.raises(RuntimeFailure, match="no usable lyrics"):
        make_song(SongRequest(description="a song"), stages)
    assert "acestep" not in stages.families()


# ------------------------------------------------------------------------------------- seeds


def test_random_seed_is_resolved_and_recorded():
    a = make_song(SongRequest(tags="pop", instrumental=True, cover=False, categories=False), Stages())
    assert 0 <= a.seed < 2**32 and a.seeds == {"acestep": a.seed}


def test_stage_seeds_are_distinct_and_stable():
    seeds = stage_seeds(123)
    assert seeds["acestep"] == 123 and len(set(seeds.values())) == len(seeds)
    assert stage_seeds(123) == seeds and stage_seeds(124) != seeds


# -------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"description": "   "}, "must not be empty"),
        ({}, "description must not be empty"),
        ({"description": "x", "duration": 0}, "greater than or equal to 1"),
        ({"description": "x", "duration": 240.5}, "less than or equal to 240"),
        ({"description": "x", "steps": 0}, "greater than or equal to 1"),
        ({"description": "x", "steps": 201}, "less than or equal to 200"),
        ({"description": "x", "instrumental": True, "lyrics": "[verse]\nhi"}, "--instrumental or --lyrics"),
        ({"tags": "pop", "instrumental": True, "describe_lyrics": "love"}, "--instrumental or --describe-lyrics"),
        ({"tags": "pop", "lyrics": "[verse]\nhi", "describe_lyrics": "love"}, "--lyrics or --describe-lyrics"),
        ({"lyrics": "[verse]\nhi"}, "--tags"),
        ({"describe_lyrics": "love"}, "--tags"),
        ({"instrumental": True}, "--tags"),
        ({"tags": "pop", "lyrics": " \n \n"}, "lyrics are empty"),
        ({"description": "x", "seed": -2}, "greater than or equal to -1"),
        ({"description": "x", "scheduler": "ddim"}, "euler"),
        ({"description": "x", "cfg_type": "x"}, "apg"),
        ({"description": "x", "format": "ogg"}, "wav"),
        ({"description": "x", "guidance": float("nan")}, "finite"),
    ],
)
def test_bad_song_requests_fail_before_any_gpu_time(fields, message):
    with pytest.raises(ValidationError, match=message):
        SongRequest(**fields)


def test_song_request_defaults():
    r = SongRequest(description="  summer   pop ")
    assert r.description == "summer pop"
    assert (r.duration, r.steps, r.guidance, r.scheduler, r.cfg_type, r.omega, r.seed, r.format) == (
        180.0, 60, 15.0, "euler", "apg", 10.0, -1, "wav")
    assert r.cover and r.categories and not r.instrumental


# --------------------------------------------------------------- the real engines, end to end


def test_make_song_through_real_tiny_engines(tmp_path):
    pytest.importorskip("diffusers")
    from muse_cli.engines import acestep as ace
    from muse_cli.engines.cover import CoverEngine
    from muse_cli.engines.lyrics import LyricsEngine
    from muse_cli.music.audio import decode_audio
    from test_song_engines import StandInPipeline
    from tiny_song_models import build_tiny_chat_llm, build_tiny_sdxl

    lyrics = LyricsEngine(str(build_tiny_chat_llm(tmp_path / "llm", sections=True)))
    cover = CoverEngine(str(build_tiny_sdxl(tmp_path / "sdxl")))
    music = ace.AceStepEngine("ACE-Step/ACE-Step-v1-3.5B")
    module = types.SimpleNamespace(tqdm=lambda it, *a, **k: it)
    music._pipe, music._module = StandInPipeline(module), module
    engines = {"lyrics": lyrics, "cover": cover, "acestep": music}
    for engine in (lyrics, cover):
        engine.load()

    def run(family, request, *, progress=null_progress):
        if family == "cover":  # the tiny UNet works at 64 px; SDXL-Turbo's 512 px would just be slow here
            request = request.model_copy(update={"width": 64, "height": 64})
        return engines[family].generate(request, progress)

    started = time.perf_counter()
    result = make_song(SongRequest(tags="pop, rock, folk", describe_lyrics="rain", duration=1, seed=5), run)
    assert time.perf_counter() - started < 120
    audio, sr = decode_audio(result.audio)
    assert sr == 48000 and audio.shape[0] == 2
    assert result.cover.startswith(b"\x89PNG")
    assert result.lyrics.split("\n")[0].startswith("[")
    assert 3 <= len(result.categories) <= 5
    assert result.models == {"lyrics": lyrics.model_id, "acestep": "ACE-Step/ACE-Step-v1-3.5B", "cover": cover.model_id}
    assert result.warnings == []

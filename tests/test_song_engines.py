"""Song engines: the lyrics LLM and the cover model on tiny random models of the real
architectures (loaded by path through the engines' own loading code), ACE-Step around its
pipeline (the package is not installable here; the real run is kept and skipped), and the
Modal classes through `.local()`."""

from __future__ import annotations

import importlib.util
import inspect
import io
import os
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from muse_cli.contracts import (
    PROTOCOL_VERSION,
    AceStepRequest,
    CoverRequest,
    LyricsRequest,
    LyricsResult,
)
from muse_cli.engines import acestep as ace
from muse_cli.errors import RuntimeFailure
from muse_cli.music import songtext
from tiny_song_models import build_tiny_chat_llm, build_tiny_sdxl

HAS_ACESTEP = importlib.util.find_spec("acestep") is not None
HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None


@pytest.fixture(scope="module")
def llm_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    return {
        "sections": build_tiny_chat_llm(root / "sections", sections=True),
        "plain": build_tiny_chat_llm(root / "plain", sections=False),
    }


@pytest.fixture(scope="module")
def llm(llm_dirs):
    from muse_cli.engines.lyrics import LyricsEngine

    engine = LyricsEngine(str(llm_dirs["sections"]))
    engine.load()
    return engine


# -------------------------------------------------------------------------------- lyrics LLM


def test_lyrics_engine_writes_parsed_lyrics_with_tiny_qwen2(llm):
    calls = []
    request = LyricsRequest(task="lyrics", description="rain on the window", tags="pop", seed=2, max_new_tokens=96)
    result = llm.generate(request, progress=lambda done, total: calls.append((done, total)))
    assert isinstance(result, LyricsResult)
    assert result.task == "lyrics" and result.model == llm.model_id and result.seed == 2 and result.device == "cpu"
    # Whatever the random model said, what comes back is singable: tags on their own lines, words under them.
    assert songtext.parse_lyrics(result.lyrics) == result.lyrics
    lines = result.lyrics.split("\n")
    assert any(songtext.section_tag(line) for line in lines)
    assert any(line and not line.startswith("[") for line in lines)
    assert calls and calls[-1] == (1.0, 1.0)
    assert all(done <= total for done, total in calls)
    again = llm.generate(request)
    assert again.lyrics == result.lyrics, "same seed, same lyrics"


def test_lyrics_engine_retries_then_fails_clearly(llm_dirs):
    from muse_cli.engines.lyrics import ATTEMPTS, LyricsEngine

    engine = LyricsEngine(str(llm_dirs["plain"]))  # its vocabulary has no "[": lyrics can never parse
    engine.load()
    answers = []
    original = engine.complete

    def spy(*args, **kwargs):
        answers.append(original(*args, **kwargs))
        return answers[-1]

    engine.complete = spy
    with pytest.raises(RuntimeFailure) as info:
        engine.generate(LyricsRequest(task="lyrics", description="x", seed=1, max_new_tokens=32))
    assert len(answers) == ATTEMPTS == 2
    assert answers[0] != answers[1], "the retry samples with another seed"
    assert "gave no usable lyrics in 2 tries" in info.value.message
    assert "no section tag" in info.value.message
    assert "--lyrics" in info.value.hint


def test_lyrics_engine_tags_and_categories_are_clean_or_fail_clearly(llm):
    for seed in range(3):
        try:
            tags = llm.generate(LyricsRequest(task="tags", description="a song", seed=seed, max_new_tokens=48)).tags
        except RuntimeFailure as exc:
            assert "gave no usable style tags" in exc.message
            continue
        assert tags and "\n" not in tags
        items = tags.split(", ")
        assert all(item == item.strip() and item for item in items)
        assert len({i.casefold() for i in items}) == len(items)
    result = llm.generate(LyricsRequest(task="categories", tags="pop, rock, folk", seed=0, max_new_tokens=32))
    assert 3 <= len(result.categories) <= 5
    assert len({c.casefold() for c in result.categories}) == len(result.categories)


def test_lyrics_engine_token_budget_caps_tags(llm, monkeypatch):
    budgets = []
    original = llm.complete
    monkeypatch.setattr(llm, "complete", lambda *a, **kw: budgets.append(kw["max_new_tokens"]) or original(*a, **kw))
    try:
        llm.generate(LyricsRequest(task="tags", description="a song", seed=0, max_new_tokens=4096))
    except RuntimeFailure:
        pass
    assert budgets and max(budgets) == 160


def test_lyrics_engine_missing_model_is_a_runtime_failure(tmp_path):
    from muse_cli.engines.lyrics import LyricsEngine

    with pytest.raises(RuntimeFailure, match="no model folder"):
        LyricsEngine(str(tmp_path / "absent")).load()


def test_lyrics_engine_refuses_a_model_without_chat_template(llm_dirs, tmp_path):
    import shutil

    from muse_cli.engines.lyrics import LyricsEngine

    copy = tmp_path / "base"
    shutil.copytree(llm_dirs["plain"], copy)
    for name in ("chat_template.jinja", "chat_template.json"):
        (copy / name).unlink(missing_ok=True)
    config = copy / "tokenizer_config.json"
    import json

    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    with pytest.raises(RuntimeFailure, match="no chat template"):
        LyricsEngine(str(copy)).load()


def test_lyrics_request_validation():
    with pytest.raises(ValueError, match="tags task needs a description"):
        LyricsRequest(task="tags", tags="pop")
    with pytest.raises(ValueError, match="needs a description or tags"):
        LyricsRequest(task="categories")
    assert LyricsRequest(task="lyrics", tags="  pop,  rock ").tags == "pop, rock"


# ------------------------------------------------------------------------------------- cover


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory):
    if not HAS_DIFFUSERS:
        pytest.skip("diffusers is not installed (pip install diffusers): the cover engine needs it")
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))


def test_cover_engine_makes_a_png_with_tiny_sdxl(sdxl_dir):
    from PIL import Image

    from muse_cli.engines.cover import CoverEngine

    engine = CoverEngine(str(sdxl_dir))
    engine.load()
    steps = []
    request = CoverRequest(prompt="album cover art, synth-pop, neon", width=64, height=64, seed=3)
    result = engine.generate(request, progress=lambda done, total: steps.append((done, total)))
    assert result.image.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(result.image))
    assert image.size == (64, 64) == (result.width, result.height)
    assert steps == [(1, 2), (2, 2)], "two steps, as SDXL-Turbo is run"
    assert result.seed == 3 and result.model == str(sdxl_dir)
    assert engine.generate(request).image == result.image, "same seed, same picture"
    other = engine.generate(request.model_copy(update={"seed": 4}))
    assert other.image != result.image


def test_cover_engine_bad_model_is_a_runtime_failure(tmp_path):
    if not HAS_DIFFUSERS:
        pytest.skip("diffusers is not installed")
    from muse_cli.engines.cover import CoverEngine

    with pytest.raises(RuntimeFailure, match="cannot load the cover model"):
        CoverEngine(str(tmp_path)).load()


def test_cover_request_defaults_are_turbo_settings():
    request = CoverRequest(prompt="  x  ")
    assert (request.steps, request.guidance, request.width, request.height, request.prompt) == (2, 0.0, 512, 512, "x")
    with pytest.raises(ValueError):
        CoverRequest(prompt=" ")
    with pytest.raises(ValueError):
        CoverRequest(prompt="x", width=500)


# ----------------------------------------------------------------------------------- ACE-Step


def ace_request(**kw) -> AceStepRequest:
    base = dict(tags="pop, piano", lyrics="[verse]\nhello", duration=30, steps=27, guidance=12.5,
                scheduler="heun", cfg_type="cfg_star", omega=5.0, seed=11)
    return AceStepRequest(**{**base, **kw})


def test_pipeline_kwargs_are_keywords_of_the_pinned_call():
    kwargs = ace.pipeline_kwargs(ace_request(), 11, "/dev/shm/x/song.wav")
    assert set(kwargs) <= ace.ACESTEP_CALL_PARAMETERS
    assert kwargs == {
        "format": "wav", "audio_duration": 30.0, "prompt": "pop, piano", "lyrics": "[verse]\nhello",
        "infer_step": 27, "guidance_scale": 12.5, "scheduler_type": "heun", "cfg_type": "cfg_star",
        "omega_scale": 5.0, "manual_seeds": [11], "save_path": "/dev/shm/x/song.wav", "batch_size": 1,
        "task": "text2music",
    }
    assert isinstance(kwargs["infer_step"], int) and isinstance(kwargs["manual_seeds"][0], int)


@pytest.mark.skipif(not HAS_ACESTEP, reason="acestep is not installed (not on PyPI; the Modal image has it)")
def test_pinned_signatures_match_installed_acestep():
    from acestep.pipeline_ace_step import ACEStepPipeline

    call = set(inspect.signature(ACEStepPipeline.__call__).parameters) - {"self"}
    init = set(inspect.signature(ACEStepPipeline.__init__).parameters) - {"self", "kwargs"}
    assert ace.ACESTEP_CALL_PARAMETERS <= call
    assert ace.ACESTEP_INIT_PARAMETERS <= init


def write_wav(path: Path, seconds: float = 0.5, sr: int = 48000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, np.stack([tone, -tone], axis=1).astype(np.float32), sr, subtype="FLOAT")


def test_read_outputs_and_timings(tmp_path):
    wav = tmp_path / "a.wav"
    write_wav(wav)
    params = {"timecosts": {"preprocess": 0.1234, "diffusion": 5.0, "latent2audio": 1.5}, "actual_seeds": [1]}
    path, got = ace.read_outputs([str(wav), params])
    assert path == wav and got is params
    assert ace.stage_timings(params) == {"preprocess": 0.123, "diffusion": 5.0, "decode": 1.5}
    assert ace.stage_timings({}) == {}
    for bad in (None, [], [str(wav)], [str(wav), "not a dict"]):
        with pytest.raises(RuntimeFailure, match="ACE-Step returned"):
            ace.read_outputs(bad)
    with pytest.raises(RuntimeFailure, match="wrote no audio"):
        ace.read_outputs([str(tmp_path / "absent.wav"), params])


def test_step_progress_counts_the_step_loop_only_and_restores():
    sentinel = object()
    module = types.SimpleNamespace(tqdm=sentinel)
    seen = []
    with ace.step_progress(module, lambda d, t: seen.append((d, t))):
        assert list(module.tqdm(enumerate("abc"), total=3)) == [(0, "a"), (1, "b"), (2, "c")]
        assert list(module.tqdm(range(2))) == [0, 1]  # the per-file save loop: no progress
    assert seen == [(1, 4), (2, 4), (3, 4)]
    assert module.tqdm is sentinel
    with pytest.raises(KeyError), ace.step_progress(module, lambda d, t: None):
        raise KeyError("x")
    assert module.tqdm is sentinel


class StandInPipeline:
    """What ACEStepPipeline does at the interface the engine relies on: take keywords, run the
    tqdm-wrapped step loop, write a 48 kHz stereo WAV to save_path, return [path, params]."""

    def __init__(self, module):
        self.module = module
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        for _ in self.module.tqdm(range(kwargs["infer_step"]), total=kwargs["infer_step"]):
            pass
        print("decoding")  # the real decoder prints too
        write_wav(Path(kwargs["save_path"]), seconds=kwargs["audio_duration"])
        return [kwargs["save_path"], {"timecosts": {"preprocess": 0.01, "diffusion": 0.2, "latent2audio": 0.05},
                                      "actual_seeds": kwargs["manual_seeds"]}]


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_acestep_engine_around_the_pipeline(fmt, capsys):
    from muse_cli.music.audio import decode_audio

    engine = ace.AceStepEngine("ACE-Step/ACE-Step-v1-3.5B")
    module = types.SimpleNamespace(tqdm=lambda it, *a, **k: it)
    engine._pipe, engine._module = StandInPipeline(module), module
    seen = []
    result = engine.generate(ace_request(duration=1.5, steps=4, format=fmt), progress=lambda d, t: seen.append((d, t)))
    call = engine._pipe.calls[0]
    assert set(call) <= ace.ACESTEP_CALL_PARAMETERS and call["manual_seeds"] == [11]
    assert not Path(call["save_path"]).exists(), "scratch file removed"
    assert Path(call["save_path"]).parent.parent == Path(ace.scratch_dir(ace.song_file_bytes(1.5)))
    assert (result.format, result.sample_rate, result.channels, result.duration) == (fmt, 48000, 2, 1.5)
    audio, sr = decode_audio(result.audio)
    assert sr == 48000 and audio.shape == (2, 72000)
    assert seen[:4] == [(1, 5), (2, 5), (3, 5), (4, 5)] and seen[-1] == (1.0, 1.0)
    assert {"preprocess", "diffusion", "decode", "acestep"} <= set(result.timings)
    assert result.timings["decode"] == 0.05
    out, err = capsys.readouterr()
    assert out == "" and "decoding" in err, "stdout stays muse's own"


def test_acestep_checkpoint_folder_must_have_all_parts(tmp_path):
    (tmp_path / "music_dcae_f8c8").mkdir()
    with pytest.raises(RuntimeFailure, match="missing music_vocoder, ace_step_transformer, umt5-base"):
        ace.AceStepEngine(str(tmp_path)).checkpoint_dir()
    for part in ace.CHECKPOINT_PARTS:
        (tmp_path / part).mkdir(exist_ok=True)
    assert ace.AceStepEngine(str(tmp_path)).checkpoint_dir() == str(tmp_path)


@pytest.mark.skipif(HAS_ACESTEP, reason="acestep is installed here")
def test_acestep_missing_package_names_the_install(tmp_path):
    with pytest.raises(RuntimeFailure, match="ACE-Step is not installed") as info:
        ace.AceStepEngine(str(tmp_path)).load()
    assert ace.ACESTEP_COMMIT in info.value.hint and "--backend modal" in info.value.hint


@pytest.mark.skipif(
    not HAS_ACESTEP or not os.environ.get("MUSE_ACESTEP_CHECKPOINT"),
    reason="needs the acestep package and MUSE_ACESTEP_CHECKPOINT (a downloaded ACE-Step-v1-3.5B folder)",
)
def test_acestep_real_pipeline():
    from muse_cli.music.audio import decode_audio

    engine = ace.AceStepEngine(os.environ["MUSE_ACESTEP_CHECKPOINT"])
    engine.load()
    result = engine.generate(AceStepRequest(tags="lo-fi, piano, mellow", lyrics="[instrumental]", duration=5,
                                            steps=10, seed=1))
    audio, sr = decode_audio(result.audio)
    assert sr == 48000 and audio.shape[0] == 2 and 4.0 < audio.shape[1] / sr < 6.0
    assert float(np.abs(audio).max()) > 1e-3


# -------------------------------------------------------------------------------------- Modal


def payload(request) -> dict:
    return {"protocol": PROTOCOL_VERSION, "request": request.model_dump(mode="python")}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_modal_lyrics_class_local(llm_dirs):
    pytest.importorskip("modal")
    from remote.song import LyricsLLM

    request = LyricsRequest(task="lyrics", description="rain", tags="pop", seed=2, max_new_tokens=96)
    reply = LyricsLLM(model=str(llm_dirs["sections"])).generate.local(payload(request))
    assert reply["protocol"] == PROTOCOL_VERSION
    assert songtext.parse_lyrics(reply["result"]["lyrics"]) == reply["result"]["lyrics"]
    events = list(LyricsLLM(model=str(llm_dirs["plain"])).generate_stream.local(payload(request)))
    assert events[-1]["error"]["type"] == "runtime"
    assert "no usable lyrics" in events[-1]["error"]["message"]
    assert all(e["event"] == "progress" for e in events[:-1])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_modal_acestep_class_without_package_answers_in_protocol(tmp_path):
    pytest.importorskip("modal")
    if HAS_ACESTEP:
        pytest.skip("acestep is installed here")
    from remote.song import AceStep

    reply = AceStep(model=str(tmp_path)).generate.local(payload(ace_request()))
    assert reply["error"]["type"] == "unavailable"
    assert "ACE-Step is not installed" in reply["error"]["message"]
    bad = {"protocol": PROTOCOL_VERSION, "request": {**ace_request().model_dump(), "duration": 999}}
    assert AceStep(model=str(tmp_path)).generate.local(bad)["error"]["type"] == "input"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_modal_cover_class_local(sdxl_dir):
    pytest.importorskip("modal")
    from remote.song import CoverArt

    request = CoverRequest(prompt="album cover art, jazz", width=64, height=64, seed=1)
    reply = CoverArt(model=str(sdxl_dir)).generate.local(payload(request))
    assert reply["result"]["image"].startswith(b"\x89PNG")


def test_engine_modules_import_light():
    import subprocess
    import sys

    code = (
        "import sys, muse_cli.engines.acestep, muse_cli.engines.lyrics, muse_cli.engines.cover, muse_cli.pipelines.song;"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'acestep') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr


def test_acestep_scratch_folder_has_room_for_the_song():
    """A 240 s float32 stereo 48 kHz song is ~92 MB: more than a 64 MB container /dev/shm holds."""
    import shutil
    import tempfile

    assert 92_000_000 < ace.song_file_bytes(240) < 94_000_000
    assert ace.song_file_bytes(1.5) == 72000 * 2 * 4 + (1 << 20)
    if not os.path.isdir(ace.SHM):
        pytest.skip("no /dev/shm here")
    too_big_for_shm = shutil.disk_usage(ace.SHM).free + 1
    if shutil.disk_usage(tempfile.gettempdir()).free < too_big_for_shm:
        pytest.skip("the temp folder is no bigger than /dev/shm here")
    assert ace.scratch_dir(too_big_for_shm) == tempfile.gettempdir()
    assert ace.scratch_dir(1 << 20) == ace.SHM
    with pytest.raises(ace.RuntimeFailure, match="no room"):
        ace.scratch_dir(1 << 62)

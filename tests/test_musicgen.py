"""MusicGen engine on tiny random checkpoints of the real architecture, loaded by path.

The tiny EnCodec runs at 640 Hz with 10 frames per second (tests/tiny_musicgen.py), so window
arithmetic is the real one (30 s windows, 18 s stride) at a few hundred decoder steps per clip.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
sf = pytest.importorskip("soundfile")

sys.path.insert(0, str(Path(__file__).parent))  # tiny_musicgen
from tiny_musicgen import TINY_FRAME_RATE, TINY_HOP, TINY_SR

from muse_cli.contracts import PROTOCOL_VERSION, AudioInput, AudioRequest
from muse_cli.engines.base import derive_seed
from muse_cli.errors import InputError, RuntimeFailure


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Build the three tiny checkpoints once; one thread keeps a shared 2-core machine fast."""
    from tiny_musicgen import build_tiny_musicgen, build_tiny_musicgen_melody

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("musicgen")
    paths = {
        "mono": str(build_tiny_musicgen(root / "mono")),
        "stereo": str(build_tiny_musicgen(root / "stereo", stereo=True, seed=1)),
        "melody": str(build_tiny_musicgen_melody(root / "melody", seed=2)),
    }
    yield paths
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def engines(tiny):
    from muse_cli.engines.musicgen import MusicGenEngine

    loaded = {}
    for name, path in tiny.items():
        engine = MusicGenEngine(path)
        engine.load()
        loaded[name] = engine
    return loaded


def req(model: str, **kw) -> AudioRequest:
    kw.setdefault("prompt", "jazz piano")
    kw.setdefault("seed", 7)
    kw.setdefault("normalize", "none")
    return AudioRequest(model=model, **kw)


def read(clip) -> np.ndarray:
    x, sr = sf.read(io.BytesIO(clip.audio), dtype="float32", always_2d=True)
    assert sr == clip.sample_rate
    return x.T


def wav_bytes(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.atleast_2d(x).T, sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def tone(seconds: float, sr: int, freq: float = 110.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------------------- names and inputs


def test_resolve_model_names_paths_and_hub_ids(tiny):
    from muse_cli.engines.musicgen import is_melody_model, resolve_model

    assert resolve_model("small") == "facebook/musicgen-small"
    assert resolve_model("stereo-melody-large") == "facebook/musicgen-stereo-melody-large"
    assert resolve_model("someone/my-musicgen") == "someone/my-musicgen"
    assert resolve_model(tiny["mono"]) == str(Path(tiny["mono"]).resolve())
    for bad in ["huge", "a/b/c", "../nowhere", ""]:
        with pytest.raises(InputError, match="unknown"):
            resolve_model(bad)
    assert is_melody_model(tiny["melody"]) and not is_melody_model(tiny["mono"])
    assert is_melody_model("facebook/musicgen-melody") and not is_melody_model("facebook/musicgen-small")


def test_bad_inputs_are_rejected_before_loading(tiny):
    from muse_cli.engines.musicgen import MusicGenEngine, validate_request

    melody = AudioInput(name="m.wav", data=wav_bytes(tone(2, 8000), 8000))
    with pytest.raises(InputError, match="melody model"):
        validate_request(req("small", melody=melody))
    with pytest.raises(InputError, match="melody model"):
        MusicGenEngine(tiny["mono"]).generate(req(tiny["mono"], melody=melody))  # never loads
    silent = AudioInput(name="quiet.wav", data=wav_bytes(np.zeros(8000, np.float32), 8000))
    with pytest.raises(InputError, match="silent"):
        validate_request(req("small", continuation=silent))
    corrupt = AudioInput(name="broken.wav", data=b"RIFF....WAVEfmt nonsense")
    with pytest.raises(InputError, match="broken.wav"):
        validate_request(req("small", continuation=corrupt))
    with pytest.raises(InputError, match="unknown"):
        MusicGenEngine("not a model")


def test_offline_and_not_cached_fails_fast_naming_pull(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from muse_cli.engines.musicgen import MusicGenEngine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    engine = MusicGenEngine("small")
    with pytest.raises(RuntimeFailure) as err:
        engine.load()
    assert "muse models pull small" in err.value.hint
    assert "facebook/musicgen-small" in err.value.message


def test_window_plan_covers_exactly_and_keeps_context():
    from muse_cli.engines.musicgen_windows import plan_windows

    plan = plan_windows(new_frames=3500, prompt_frames=0, frame_rate=50, extend_stride_s=18, channel_codebooks=4)
    assert [w.context for w in plan.windows] == [0, 600, 600, 600]
    assert [w.new for w in plan.windows] == [1500, 900, 900, 200]
    assert all(w.context + w.new <= 1500 for w in plan.windows)
    assert sum(w.new for w in plan.windows) == 3500 and plan.steps == 3500 + 4 * 3
    one = plan_windows(1500, 0, 50, 18, 4)
    assert len(one.windows) == 1
    cont = plan_windows(new_frames=100, prompt_frames=900, frame_rate=50, extend_stride_s=10, channel_codebooks=4)
    assert cont.windows[0].start == 900 and cont.windows[0].context == 900 and cont.frames == 1000


def test_first_window_takes_the_whole_prompt_like_audiocraft():
    """audiocraft's _generate_tokens: a 25 s prompt conditions the first window whole (not its last 12 s),
    later windows keep 30 - stride s; windows start every `stride` s, counted from the prompt's start."""
    from muse_cli.engines.musicgen_windows import plan_windows

    plan = plan_windows(new_frames=1000, prompt_frames=1250, frame_rate=50, extend_stride_s=18, channel_codebooks=4)
    assert [(w.start, w.context, w.new) for w in plan.windows] == [(1250, 1250, 250), (1500, 600, 750)]
    assert [w.start - w.context for w in plan.windows] == [0, 900]  # audiocraft: offsets 0, 1 x stride
    long_prompt = plan_windows(new_frames=500, prompt_frames=2000, frame_rate=50, extend_stride_s=18, channel_codebooks=4)
    assert [(w.context, w.new) for w in long_prompt.windows] == [(600, 500)]


def test_seeded_noise_is_a_function_of_seed_step_and_token():
    from muse_cli.engines.musicgen_windows import uniform_noise

    a = uniform_noise(torch.tensor([1, 2]), 5, 4, 64)
    b = uniform_noise(torch.tensor([2]), 5, 4, 64)
    assert torch.equal(a[1], b[0])  # clip 2 of a batch draws what a lone clip with that seed draws
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, uniform_noise(torch.tensor([1, 2]), 6, 4, 64))
    assert 0 < float(a.min()) and float(a.max()) < 1 and abs(float(a.mean()) - 0.5) < 0.05


# ---------------------------------------------------------------------------- generation


def test_one_second_is_exact_and_progress_counts_steps(engines, tiny):
    seen = []
    result = engines["mono"].generate(req(tiny["mono"], duration=1.37), progress=lambda d, t: seen.append((d, t)))
    x = read(result.clips[0])
    assert x.shape == (1, round(1.37 * TINY_SR))
    assert result.engine == "musicgen" and result.clips[0].channels == 1 and result.seed == 7
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1][0] == seen[-1][1] == result.timings["steps"]
    assert result.timings["steps"] == 14 + 3  # ceil(1.37 s * 10 fps) frames + codebook delay


def test_thirty_seconds_is_one_window(engines, tiny):
    result = engines["mono"].generate(req(tiny["mono"], duration=30))
    assert result.timings["windows"] == 1
    assert read(result.clips[0]).shape == (1, 30 * TINY_SR)


def test_codes_from_the_sampler_are_what_generate_decodes(engines):
    """The engine reads codes from its sampler; generate's own audio must decode from the same codes."""
    from transformers import LogitsProcessorList

    from muse_cli.engines.musicgen_windows import SeededSampler, steps_for

    engine = engines["mono"]
    ids, mask = engine._text_inputs("rock guitar", 2)
    sampler = SeededSampler([3, 4], engine.codebooks, temperature=1.0, top_k=20, top_p=0.0, guidance=3.0, step_offset=0)
    with torch.inference_mode():
        audio = engine.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=steps_for(25, 4), do_sample=False, guidance_scale=3.0,
            logits_processor=LogitsProcessorList([sampler]), temperature=None, top_k=None, top_p=None,
        )
    codes = sampler.codes(25, 4)
    assert codes.shape == (2, 4, 25)
    ours = engine._decode(codes, "encodec")
    np.testing.assert_allclose(ours, audio.numpy(), atol=1e-5)


@pytest.mark.parametrize("name, channels", [("mono", 1), ("stereo", 2)])
def test_a_windowed_request_is_decoded_once(engines, tiny, name, channels):
    """EnCodec's decoder runs once per clip and channel over the whole clip: never per window."""
    engine = engines[name]
    passes = []
    hook = engine.model.audio_encoder.decoder.register_forward_hook(
        lambda module, args, out: passes.append(tuple(out.shape))
    )
    try:
        result = engine.generate(req(tiny[name], duration=40, count=2))
    finally:
        hook.remove()
    assert result.timings["windows"] == 2
    assert len(passes) == 2 * channels, passes  # today's code also decoded each window's batch
    assert all(shape[0] == 1 and shape[-1] == 40 * TINY_SR for shape in passes), passes
    for clip in result.clips:
        assert read(clip).shape == (channels, 40 * TINY_SR)


def test_generate_outside_muse_windows_still_decodes(engines):
    """The codes-only switch is scoped: the plain `generate` call afterwards returns audio again."""
    from muse_cli.engines.musicgen_windows import codes_only

    engine = engines["mono"]
    ids, mask = engine._text_inputs("calm lofi", 1)
    with torch.inference_mode(), codes_only(engine.model):
        codes = engine.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False)
    with torch.inference_mode():
        audio = engine.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False)
    assert codes.dtype == torch.long and codes.shape[-2:] == (4, 9)
    assert audio.is_floating_point() and audio.shape[-1] == 9 * TINY_HOP


@pytest.fixture(scope="module")
def long_pair(engines, tiny):
    """One 70 s request with two clips (4 windows) reused by several tests."""
    return engines["mono"].generate(req(tiny["mono"], duration=70, count=2, seed=11))


def test_windowed_length_is_exact(long_pair):
    assert long_pair.timings["windows"] == 4
    for clip in long_pair.clips:
        assert read(clip).shape == (1, 70 * TINY_SR) and clip.duration == 70


def test_seams_have_no_jumps(long_pair):
    x = read(long_pair.clips[0])[0]
    step = np.abs(np.diff(x))
    typical = np.quantile(step, 0.999)
    # window starts: 30 s, then every 18 s of new audio
    for seconds in (30, 48, 66):
        seam = seconds * TINY_FRAME_RATE * TINY_HOP
        assert step[seam - 2 : seam + 2].max() <= typical, f"jump at the {seconds} s seam"


def test_each_window_continues_from_the_codes_before_it(engines, tiny):
    engine = engines["mono"]
    calls, decoded = [], []
    generate, decode = engine.model.generate, engine._decode

    def spy_generate(**kwargs):
        calls.append(kwargs.get("decoder_input_ids"))
        return generate(**kwargs)

    def spy_decode(codes, decoder):
        decoded.append(codes)
        return decode(codes, decoder)

    engine.model.generate, engine._decode = spy_generate, spy_decode
    try:
        engine.generate(req(tiny["mono"], duration=40, count=2))
    finally:
        del engine.model.generate, engine._decode
    assert len(calls) == 2 and calls[0] is None
    codes = decoded[0]  # [2 clips, 4 codebooks, 400 frames]
    context = 12 * TINY_FRAME_RATE  # 30 s window - 18 s stride
    expected = codes[:, :, 300 - context : 300].reshape(2 * 4, context)
    assert torch.equal(calls[1], expected)


def test_long_clip_starts_like_the_short_one(engines, tiny, long_pair):
    """Window 1 of a long clip is the same draw as a 30 s clip with that seed (EnCodec's look-ahead aside)."""
    short = engines["mono"].generate(req(tiny["mono"], duration=30, seed=11))
    a, b = read(short.clips[0])[0], read(long_pair.clips[0])[0]
    head = 25 * TINY_SR
    np.testing.assert_allclose(a[:head], b[:head], atol=2e-4)


def test_seeds_reproduce_and_batch_clips_reproduce_alone(engines, tiny, long_pair):
    assert [c.seed for c in long_pair.clips] == [11, derive_seed(11, 1)]
    a, b = (read(c)[0] for c in long_pair.clips)
    assert not np.allclose(a, b)
    again = engines["mono"].generate(req(tiny["mono"], duration=5, seed=3))
    first = engines["mono"].generate(req(tiny["mono"], duration=5, seed=3))
    assert again.clips[0].audio == first.clips[0].audio
    other = engines["mono"].generate(req(tiny["mono"], duration=5, seed=4))
    assert other.clips[0].audio != first.clips[0].audio
    pair = engines["mono"].generate(req(tiny["mono"], duration=5, seed=3, count=2))
    alone = engines["mono"].generate(req(tiny["mono"], duration=5, seed=derive_seed(3, 1)))
    np.testing.assert_allclose(read(pair.clips[1]), read(alone.clips[0]), atol=1e-4)
    np.testing.assert_allclose(read(pair.clips[0]), read(first.clips[0]), atol=1e-4)


def test_sampling_settings_change_the_draw(engines, tiny):
    base = engines["mono"].generate(req(tiny["mono"], duration=3, seed=5))
    greedy_ish = engines["mono"].generate(req(tiny["mono"], duration=3, seed=5, top_k=1))
    nucleus = engines["mono"].generate(req(tiny["mono"], duration=3, seed=5, top_p=0.5))
    no_cfg = engines["mono"].generate(req(tiny["mono"], duration=3, seed=5, cfg_coef=1.0))
    clips = [c.clips[0].audio for c in (base, greedy_ish, nucleus, no_cfg)]
    assert len(set(clips)) == 4
    # top_k 1 leaves one token per step: the seed no longer matters
    other = engines["mono"].generate(req(tiny["mono"], duration=3, seed=6, top_k=1))
    assert other.clips[0].audio == greedy_ish.clips[0].audio


def test_stereo_model_gives_two_channels(engines, tiny):
    result = engines["stereo"].generate(req(tiny["stereo"], duration=2.5, count=2))
    for clip in result.clips:
        x = read(clip)
        assert clip.channels == 2 and x.shape == (2, round(2.5 * TINY_SR))
        assert not np.allclose(x[0], x[1])  # left and right come from their own codebooks


def test_bf16_precision_runs(tiny):
    from muse_cli.engines.musicgen import MusicGenEngine

    for name in ("stereo", "melody"):
        engine = MusicGenEngine(tiny[name], device="cpu", precision="bf16")
        engine.load()
        assert next(engine.model.decoder.parameters()).dtype == torch.bfloat16
        assert next(engine.model.audio_encoder.parameters()).dtype == torch.float32
        result = engine.generate(req(tiny[name], duration=2, count=2, precision="bf16"))
        assert result.precision == "bf16"
        x = read(result.clips[0])
        assert x.shape == (engine.channels, 2 * TINY_SR) and np.isfinite(x).all() and np.abs(x).max() > 0


def test_formats_and_loudness(engines, tiny):
    from muse_cli.music.audio import integrated_loudness, peak_db

    loud = engines["mono"].generate(req(tiny["mono"], duration=4, normalize="loudness", target_lufs=-20, format="flac"))
    x = read(loud.clips[0])
    assert loud.clips[0].audio[:4] == b"fLaC" and loud.clips[0].format == "flac"
    assert abs(integrated_loudness(x, TINY_SR) - (-20)) < 1.0 and peak_db(x) <= -0.9
    peak = engines["mono"].generate(req(tiny["mono"], duration=4, normalize="peak", float_wav=True))
    assert peak.clips[0].audio[:4] == b"RIFF"
    assert abs(peak_db(read(peak.clips[0])) - (-1.0)) < 0.05


def test_unconditional_continuation_includes_the_prompt(engines, tiny):
    prompt = tone(3.05, 8000)  # resampled to the model rate and cut to whole frames (3.0 s)
    intro = AudioInput(name="intro.wav", data=wav_bytes(prompt, 8000))
    request = req(tiny["mono"], prompt=None, duration=4, continuation=intro)
    result = engines["mono"].generate(request)
    x = read(result.clips[0])
    assert x.shape == (1, 3 * TINY_SR + 4 * TINY_SR)


def test_long_continuation_uses_windows(engines, tiny):
    prompt = tone(20, 8000)
    request = req(tiny["stereo"], duration=25, continuation=AudioInput(name="intro.wav", data=wav_bytes(prompt, 8000)))
    result = engines["stereo"].generate(request)
    assert result.timings["windows"] == 2  # the 20 s prompt + 10 s new, then 12 s context + 15 s new
    assert read(result.clips[0]).shape == (2, 45 * TINY_SR)


def test_continuation_first_window_is_conditioned_on_the_whole_prompt(engines, tiny):
    """A 25 s prompt goes into the first window whole (audiocraft), not cut to its last 12 s."""
    engine = engines["mono"]
    prompt_codes = []
    generate = engine.model.generate

    def spy_generate(**kwargs):
        prompt_codes.append(kwargs.get("decoder_input_ids"))
        return generate(**kwargs)

    engine.model.generate = spy_generate
    try:
        intro = AudioInput(name="intro.wav", data=wav_bytes(tone(25, 8000), 8000))
        result = engine.generate(req(tiny["mono"], duration=10, continuation=intro))
    finally:
        del engine.model.generate
    assert [None if c is None else c.shape[-1] for c in prompt_codes] == [25 * TINY_FRAME_RATE, 12 * TINY_FRAME_RATE]
    assert read(result.clips[0]).shape == (1, 35 * TINY_SR)


def test_melody_model_follows_a_melody(engines, tiny):
    melody = AudioInput(name="hum.wav", data=wav_bytes(tone(4, 8000, 220.0), 8000))
    with_text = engines["melody"].generate(req(tiny["melody"], duration=35, melody=melody))
    assert with_text.timings["windows"] == 2
    assert read(with_text.clips[0]).shape == (1, 35 * TINY_SR)
    melody_only = engines["melody"].generate(req(tiny["melody"], prompt=None, duration=2, melody=melody))
    text_only = engines["melody"].generate(req(tiny["melody"], duration=2))
    assert melody_only.clips[0].audio != text_only.clips[0].audio


def test_chroma_matches_transformers_feature_extractor():
    pytest.importorskip("torchaudio", reason="transformers' melody feature extractor needs torchaudio")
    from transformers import MusicgenMelodyFeatureExtractor

    from muse_cli.engines.musicgen_windows import chroma_features

    x = tone(3, 32000, 261.6) + tone(3, 32000, 392.0)
    ref = MusicgenMelodyFeatureExtractor()(x, sampling_rate=32000, return_tensors="pt")["input_features"][0]
    ours = chroma_features(x, 32000, n_fft=16384, hop=4096, num_chroma=12, max_samples=30 * 32000)
    assert torch.equal(ours, ref)


def test_mbd_without_audiocraft_points_to_modal(engines, tiny):
    try:
        import audiocraft  # noqa: F401

        pytest.skip("audiocraft is installed: the real MBD path runs instead")
    except ImportError:
        pass
    with pytest.raises(InputError, match="32 kHz"):  # tiny models are not 32 kHz: refused before audiocraft
        engines["mono"].generate(req(tiny["mono"], duration=1, decoder="mbd"))
    engine = engines["mono"]
    with pytest.raises(RuntimeFailure) as err:
        engine.load_mbd()
    assert "--backend modal" in err.value.hint


# ---------------------------------------------------------------------------- Modal class


@pytest.mark.filterwarnings("ignore:The MusicGen.generate function is executing locally")
def test_modal_class_runs_locally(tiny):
    pytest.importorskip("modal")
    from muse_cli.ops.catalog import gpu_for
    from remote.musicgen import MusicGen

    # One GPU table (the catalog): large models get the larger GPU, unknown ids keep the class default.
    assert gpu_for("musicgen", "large") in {"L40S", "A100", "A100-80GB"} and gpu_for("musicgen", "someone/x") is None
    payload = {"protocol": PROTOCOL_VERSION, "request": req(tiny["mono"], duration=1).model_dump(mode="python")}
    reply = MusicGen(model=tiny["mono"]).generate.local(payload)
    assert "result" in reply, reply
    assert reply["result"]["clips"][0]["sample_rate"] == TINY_SR
    bad = {"protocol": PROTOCOL_VERSION, "request": {**payload["request"], "duration": 0.5}}
    assert MusicGen(model=tiny["mono"]).generate.local(bad)["error"]["type"] == "input"

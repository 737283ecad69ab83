"""MIDI-LLM engine on a tiny random Llama with the real vocabulary layout, loaded like real weights."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pretty_midi
import pytest

from muse_cli.contracts import MidiRequest
from muse_cli.errors import InputError, RuntimeFailure
from muse_cli.music import amt

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from muse_cli.engines.midi_llm import (  # noqa: E402
    PROMPT_PREFIX, START_ID, TEXT_VOCAB_SIZE, AmtConstraint, MidiLLMEngine, describe, prompt_ids,
    token_budget, vllm_sampling_kwargs,
)

sys.path.insert(0, str(Path(__file__).parent))  # tiny_midi_llm
from tiny_midi_llm import make_tiny_model  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # A model this small is all dispatch overhead: extra threads only wait on each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("midi-llm-tiny")
    make_tiny_model(path)
    return str(path)


@pytest.fixture(scope="module")
def engine(tiny_path):
    e = MidiLLMEngine(tiny_path, runtime="transformers")
    e.load()
    return e


# ------------------------------------------------------------------------------------ prompt


def test_describe_builds_a_sentence_from_options():
    req = MidiRequest(difficulty="beginner", key="C", tempo=80)
    assert describe(req) == "A beginner piano piece in C major at 80 BPM."
    req = MidiRequest(difficulty="advanced", style="baroque", instrument="flute", time_signature="3/4")
    assert describe(req) == "An advanced baroque flute piece with a 3/4 time signature."
    assert describe(MidiRequest(key="Am", instrument="string ensemble")) == "A string ensemble piece in A minor."


def test_describe_appends_options_to_the_prompt():
    assert describe(MidiRequest(prompt="A cheerful rock song")) == "A cheerful rock song"
    assert describe(MidiRequest(prompt="jazz ballad", key="Dm", tempo=72.5)) == \
        "jazz ballad. A piece in D minor at 72.5 BPM."
    # the default piano does not contradict a prompt; a chosen instrument is added
    assert describe(MidiRequest(prompt="Road trip song!", instrument="violin")) == "Road trip song! A violin piece."


@pytest.mark.parametrize("fields", [{}, {"instrument": "violin"}, {"bars": 8, "hands": 1}])
def test_nothing_to_go_on_is_an_input_error(fields):
    with pytest.raises(InputError, match="prompt"):
        describe(MidiRequest(**fields))


def test_prompt_ids_follow_the_training_format(engine):
    ids = prompt_ids(engine._tokenizer, "jazz ballad")
    assert ids[0] == engine._tokenizer.bos_token_id and ids[-1] == START_ID == TEXT_VOCAB_SIZE + amt.AUTOREGRESS
    assert engine._tokenizer.decode(ids[1:-1]) == (PROMPT_PREFIX + "jazz ballad").strip()


def test_vllm_sampling_arguments():
    req = MidiRequest(prompt="x", temperature=0.9, top_p=0.95, max_tokens=100)
    kw = vllm_sampling_kwargs(req, seed=7)
    assert {k: kw[k] for k in ("n", "temperature", "top_p", "max_tokens", "seed")} == \
        {"n": 1, "temperature": 0.9, "top_p": 0.95, "max_tokens": 99, "seed": 7}
    assert kw["allowed_token_ids"][0] == 128256 and kw["allowed_token_ids"][-1] == 183281
    assert len(kw["allowed_token_ids"]) == 55026
    assert token_budget(MidiRequest(prompt="x")) == 2046


def test_what_vllm_may_sample_the_decoder_plays():
    """vLLM's allowed ids are MIDI-LLM's own (AMT 0..55025, anticipated controls included); every
    triple drawn from them, event or control or a mix, is a note, as anticipation's events_to_midi plays it."""
    import numpy as np

    allowed = np.array(vllm_sampling_kwargs(MidiRequest(prompt="x"), seed=1)["allowed_token_ids"]) - 128256
    assert allowed.min() == 0 and allowed.max() == amt.SEPARATOR and len(allowed) == amt.SEPARATOR + 1
    rng = np.random.default_rng(0)
    n = 300
    control = rng.random((n, 3)) < 0.5
    onsets = np.sort(rng.integers(0, amt.MAX_TIME, n))
    t = onsets + np.where(control[:, 0], amt.ATIME_OFFSET, amt.TIME_OFFSET)
    d = rng.integers(0, amt.MAX_DUR, n) + np.where(control[:, 1], amt.ADUR_OFFSET, amt.DUR_OFFSET)
    x = rng.integers(0, amt.MAX_NOTE, n) + np.where(control[:, 2], amt.ANOTE_OFFSET, amt.NOTE_OFFSET)
    tokens = np.stack([t, d, x], axis=1).ravel()
    assert np.isin(tokens, allowed).all()
    pm, stats = amt.decode_with_stats(tokens)
    assert (stats.notes, stats.skipped, stats.controls) == (n, 0, int(control.any(axis=1).sum()))
    assert sum(len(i.notes) for i in pm.instruments) == n


# ------------------------------------------------------------------------------ constraint


def feed(c: AmtConstraint, *tokens: int) -> None:
    for t in tokens:
        c.advance(torch.tensor([t]))


def allowed(c: AmtConstraint) -> set[int]:
    first, _, mask = c.window()
    return {first + i for i in torch.nonzero(mask[0]).flatten().tolist()}


def test_constraint_enforces_triples_and_onset_order():
    c = AmtConstraint(1)
    assert allowed(c) == set(range(0, amt.MAX_TIME))
    feed(c, 120)
    assert allowed(c) == set(range(amt.DUR_OFFSET, amt.NOTE_OFFSET))
    feed(c, amt.DUR_OFFSET + 5)
    notes = allowed(c)
    assert amt.REST not in notes and len(notes) == amt.MAX_NOTE  # REST only with duration 0
    feed(c, amt.NOTE_OFFSET + 60)
    assert min(allowed(c)) == 120  # onsets never go back
    feed(c, 130, amt.DUR_OFFSET)
    assert amt.REST in allowed(c)


def test_constraint_caps_simultaneous_notes_at_64():
    c = AmtConstraint(1)
    for k in range(64):
        feed(c, 0, amt.DUR_OFFSET + 500 + k, amt.NOTE_OFFSET + k)
    assert min(allowed(c)) == 500  # the first of the 64 notes ends at tick 500


def test_constraint_limits_melodic_instruments_and_finishes_at_100s():
    c = AmtConstraint(1)
    for program in range(15):
        feed(c, 0, amt.DUR_OFFSET + 1, amt.NOTE_OFFSET + 128 * program + 60)
    feed(c, 0, amt.DUR_OFFSET + 1)
    instruments = {(t - amt.NOTE_OFFSET) // 128 for t in allowed(c) if t < amt.REST}
    assert instruments == set(range(15)) | {amt.DRUMS}

    c = AmtConstraint(1)
    for k in range(64):
        feed(c, amt.MAX_TIME - 1, amt.DUR_OFFSET, amt.NOTE_OFFSET + k)
    c.window()
    assert bool(c.finished[0])


def test_constraint_is_a_logits_processor():
    c = AmtConstraint(2)
    prompt = torch.zeros(2, 4, dtype=torch.long)
    scores = c(prompt, torch.zeros(2, TEXT_VOCAB_SIZE + 55030))
    assert torch.isfinite(scores).sum(1).tolist() == [amt.MAX_TIME, amt.MAX_TIME]
    step = torch.cat([prompt, torch.tensor([[TEXT_VOCAB_SIZE + 7], [TEXT_VOCAB_SIZE + 9]])], 1)
    scores = c(step, torch.zeros(2, TEXT_VOCAB_SIZE + 55030))
    finite = torch.isfinite(scores[0]).nonzero().flatten()
    assert (finite.min().item(), finite.max().item()) == (TEXT_VOCAB_SIZE + amt.DUR_OFFSET,
                                                         TEXT_VOCAB_SIZE + amt.NOTE_OFFSET - 1)


# -------------------------------------------------------------------------------- generation


def notes_of(sample) -> list[tuple]:
    pm = pretty_midi.PrettyMIDI(io.BytesIO(sample.midi))
    return sorted((i.program, i.is_drum, n.pitch, round(n.start, 2), round(n.end, 2))
                  for i in pm.instruments for n in i.notes)


def test_constrained_samples_decode_cleanly_for_many_seeds(engine):
    progress = []
    result = engine.generate(MidiRequest(prompt="jazz ballad", count=16, seed=11, max_tokens=60),
                             progress=lambda d, t: progress.append((d, t)))
    more = engine.generate(MidiRequest(difficulty="beginner", key="C", count=4, seed=12, max_tokens=60))
    samples = result.samples + more.samples
    assert len(samples) == 20
    for s in samples:
        assert s.metadata.skipped_tokens == 0
        assert s.metadata.tokens_generated <= 60 and s.metadata.tokens_generated % 3 == 0
        assert s.metadata.noteCount > 0 and s.metadata.noteCount == len(notes_of(s))
    assert len({tuple(notes_of(s)) for s in samples}) == 20  # count > 1 gives distinct samples
    assert progress[-1] == (60, 60) and progress[0] == (0, 60)
    assert (result.engine, result.model, result.seed, result.device) == ("midi-llm", engine.model_id, 11, "cpu")
    assert [s.seed for s in result.samples[:2]] == [11, 11 + 7919]


def test_samples_reproduce_per_seed(engine):
    req = MidiRequest(prompt="jazz ballad", count=2, seed=5, max_tokens=45)
    a, b = engine.generate(req), engine.generate(req)
    assert [s.midi for s in a.samples] == [s.midi for s in b.samples]
    # the second sample's seed on its own gives the same music
    alone = engine.generate(MidiRequest(prompt="jazz ballad", seed=a.samples[1].seed, max_tokens=45))
    assert notes_of(alone.samples[0]) == notes_of(a.samples[1])


def test_max_tokens_is_respected(engine):
    result = engine.generate(MidiRequest(prompt="jazz ballad", seed=3, max_tokens=10))
    assert result.samples[0].metadata.tokens_generated == 9  # whole triples only
    assert result.samples[0].metadata.noteCount <= 3


def test_empty_sample_is_retried_once_then_fails(engine):
    class Flaky(MidiLLMEngine):
        def __init__(self, inner, empty_draws):
            self.__dict__.update(inner.__dict__)
            self.empty_draws = empty_draws
            self.seen = []

        def _sample(self, ids, seeds, request, progress):
            out = super()._sample(ids, seeds, request, progress)
            self.seen.append(list(seeds))
            return [[] if len(self.seen) <= self.empty_draws else toks for toks in out]

    once = Flaky(engine, empty_draws=1)
    result = once.generate(MidiRequest(prompt="jazz ballad", seed=100, max_tokens=30))
    assert once.seen == [[100], [101]] and result.samples[0].seed == 101
    assert result.samples[0].metadata.noteCount > 0
    with pytest.raises(RuntimeFailure, match="no notes"):
        Flaky(engine, empty_draws=2).generate(MidiRequest(prompt="jazz ballad", seed=100, max_tokens=30))


def test_engine_rejects_a_request_with_nothing_to_go_on(engine):
    with pytest.raises(InputError):
        engine.generate(MidiRequest())


# ------------------------------------------------------------------------------------ loading


def test_missing_offline_model_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeFailure) as info:  # from the cache check, before any network attempt
        MidiLLMEngine("nobody/not-a-cached-model", runtime="transformers").load()
    assert "not downloaded" in info.value.message
    assert "muse models pull nobody/not-a-cached-model" in info.value.hint  # pull takes any hub id
    with pytest.raises(RuntimeFailure, match="not found"):
        MidiLLMEngine(str(tmp_path / "missing"), runtime="transformers").load()


def test_fp8_needs_vllm(tiny_path):
    with pytest.raises(InputError, match="fp8"):
        MidiLLMEngine(tiny_path, runtime="transformers", fp8=True).load()


def test_a_plain_llama_without_music_tokens_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    make_tiny_model(tmp_path)  # tokenizer; then overwrite the weights with a text-only vocabulary
    LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(tmp_path)
    with pytest.raises(RuntimeFailure, match="music vocabulary"):
        MidiLLMEngine(str(tmp_path), runtime="transformers").load()


HAS_VLLM = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


@pytest.mark.skipif(not HAS_VLLM, reason="vllm and a CUDA GPU are needed for the vLLM runtime (Modal image only)")
def test_vllm_runtime_on_the_tiny_model(tiny_path):
    e = MidiLLMEngine(tiny_path, runtime="vllm")
    e.load()
    result = e.generate(MidiRequest(prompt="jazz ballad", count=2, seed=1, max_tokens=60))
    assert len(result.samples) == 2
    for s in result.samples:
        assert s.metadata.tokens_generated <= 60
        assert s.metadata.skipped_tokens is not None


# ------------------------------------------------------------------------------- Modal class


def test_modal_class_runs_locally_with_the_transformers_runtime(tiny_path, monkeypatch):
    pytest.importorskip("modal")
    sys.path.insert(0, str(Path(__file__).parent.parent))  # remote/ is not an installed package
    from muse_cli.contracts import PROTOCOL_VERSION, MidiResult
    from remote.midi_llm import RUNTIME_ENV, MidiLLM

    monkeypatch.setenv(RUNTIME_ENV, "transformers")
    request = MidiRequest(prompt="jazz ballad", seed=4, max_tokens=30).model_dump(mode="python")
    payload = {"protocol": PROTOCOL_VERSION, "request": request}
    reply = MidiLLM(model=tiny_path).generate.local(payload)
    result = MidiResult.model_validate(reply["result"])
    assert result.engine == "midi-llm" and result.samples[0].metadata.skipped_tokens == 0

    bad = {"protocol": PROTOCOL_VERSION, "request": {"max_tokens": 30}}
    assert MidiLLM(model=tiny_path).generate.local(bad)["error"]["type"] == "input"
    events = list(MidiLLM(model=tiny_path).generate_stream.local(payload))
    assert events[-1]["result"]["samples"] and any(e.get("event") == "progress" for e in events[:-1])
    health = MidiLLM(model=tiny_path).health.local()
    assert (health["family"], health["runtime"], health["model"]) == ("midi-llm", "transformers", tiny_path)

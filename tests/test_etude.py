"""The etude composer: playable, exactly barred, in key, cadencing, reproducible pieces."""

from __future__ import annotations

import math
from collections import defaultdict
from functools import lru_cache

import numpy as np
import pytest
from pydantic import ValidationError

from muse_cli.contracts import MidiRequest
from muse_cli.engines.etude import LEVELS, EtudeEngine, parse_prompt_hints, plan_harmony
from muse_cli.errors import InputError
from muse_cli.music.midi import load_midi, midi_metadata
from muse_cli.music.theory import ALL_KEYS, parse_key

LEVEL_NAMES = ["beginner", "intermediate", "advanced"]
SIGNATURES = ["2/4", "3/4", "4/4", "6/8"]
BAR_QUARTERS = {"2/4": 2.0, "3/4": 3.0, "4/4": 4.0, "6/8": 3.0}
SEEDS = range(50)


@lru_cache(maxsize=None)
def piece(seed: int, **options):
    """(PrettyMIDI read back from the bytes, metadata) for one request."""
    request = MidiRequest(seed=seed, **options)
    sample = EtudeEngine().generate(request).samples[0]
    return load_midi(sample.midi), sample.metadata


def hands(pm) -> dict[str, list[tuple[float, float, int]]]:
    """Hand name -> sorted (onset, duration, pitch) in quarter notes."""
    _, tempi = pm.get_tempo_changes()
    beats = tempi[0] / 60.0
    out = {}
    for inst in pm.instruments:
        out[inst.name] = sorted((n.start * beats, (n.end - n.start) * beats, n.pitch) for n in inst.notes)
    return out


def events(notes):
    """Group simultaneous notes: (onset, duration, pitches); every chord must share one duration."""
    groups = defaultdict(list)
    for onset, duration, pitch in notes:
        groups[round(onset, 4)].append((round(duration, 4), pitch))
    out = []
    for onset in sorted(groups):
        durations = {d for d, _ in groups[onset]}
        assert len(durations) == 1, f"chord at {onset} has mixed durations {durations}"
        out.append((onset, durations.pop(), sorted(p for _, p in groups[onset])))
    return out


# ---------------------------------------------------------------------------------- bars


@pytest.mark.parametrize("difficulty", LEVEL_NAMES)
@pytest.mark.parametrize("signature", SIGNATURES)
def test_every_bar_is_filled_exactly_in_both_hands(difficulty, signature):
    bar = BAR_QUARTERS[signature]
    for seed in range(8):
        pm, meta = piece(seed, difficulty=difficulty, time_signature=signature, hands=2, bars=8)
        assert meta.time_signature == signature
        assert [ts.numerator for ts in pm.time_signature_changes] == [int(signature.split("/")[0])]
        for name, notes in hands(pm).items():
            per_bar = defaultdict(float)
            position = 0.0
            for onset, duration, _ in events(notes):
                assert onset == pytest.approx(position, abs=1e-3), f"{name}: gap or overlap at {onset}"
                index = math.floor(onset / bar + 1e-6)
                assert onset + duration <= (index + 1) * bar + 1e-3, f"{name}: note crosses a bar line"
                per_bar[index] += duration
                position = onset + duration
            assert sorted(per_bar) == list(range(8))
            assert all(total == pytest.approx(bar, abs=1e-3) for total in per_bar.values()), (name, dict(per_bar))


@pytest.mark.parametrize("bars", [1, 2, 3, 5, 6, 7, 12])
def test_odd_lengths_fill_and_end_on_the_tonic(bars):
    pm, meta = piece(3, difficulty="intermediate", key="G major", bars=bars, hands=2)
    right = hands(pm)["Right hand"]
    last_end = max(o + d for o, d, _ in right)
    assert last_end == pytest.approx(4.0 * bars, abs=1e-3)
    assert right[-1][2] % 12 == parse_key("G").tonic


# ---------------------------------------------------------------------------- beginner rules


@pytest.mark.parametrize("hand_count", [1, 2])
def test_beginner_is_diatonic_in_a_five_finger_position(hand_count):
    for seed in SEEDS:
        pm, _ = piece(seed, difficulty="beginner", hands=hand_count)
        key = parse_key(pm_key_name(pm))
        h = hands(pm)
        assert len(h) == hand_count
        scale = key.pitch_classes()
        for notes in h.values():
            assert {p % 12 for _, _, p in notes} <= scale
            assert {round(d, 3) for _, d, _ in notes} <= {1.0, 2.0, 3.0, 4.0}  # quarter, half, dotted half, whole
        melody = [p for _, _, p in h["Right hand"]]
        assert max(melody) - min(melody) <= 8, "more than a five-finger position"
        assert len(set(melody)) >= 3


def pm_key_name(pm) -> str:
    """The key signature event the composer wrote, as a key name."""
    number = pm.key_signature_changes[0].key_number
    return ALL_KEYS[number].name  # ALL_KEYS lists 12 majors then 12 minors, like pretty_midi key numbers


def test_beginner_keys_have_at_most_one_accidental():
    allowed = {"C major", "G major", "F major", "A minor", "E minor", "D minor"}
    assert {pm_key_name(piece(seed, difficulty="beginner")[0]) for seed in SEEDS} <= allowed


# ------------------------------------------------------------------------------ difficulty


def test_ranges_and_rhythms_grow_with_difficulty():
    spans, shortest, chord_sizes = {}, {}, {}
    for level in LEVEL_NAMES:
        level_spans, level_short, level_chords = [], [], []
        for seed in range(20):
            pm, _ = piece(seed, difficulty=level, hands=2)
            h = hands(pm)
            right, left = [p for _, _, p in h["Right hand"]], [p for _, _, p in h["Left hand"]]
            assert max(left) < min(right), "left hand must stay below the right hand"
            level_spans.append(max(right) - min(right))
            level_short.append(round(min(d for _, d, _ in h["Right hand"]), 3))
            level_chords.append(max(len(p) for _, _, p in events(h["Left hand"])))
        spans[level], shortest[level] = np.mean(level_spans), min(level_short)
        chord_sizes[level] = max(level_chords)
    assert spans["beginner"] < spans["intermediate"] < spans["advanced"]
    assert shortest["beginner"] == 1.0 and shortest["intermediate"] == 0.5 and shortest["advanced"] <= 0.25
    assert chord_sizes["beginner"] <= 2 and chord_sizes["advanced"] >= 4


def test_advanced_uses_chromatic_passing_notes_and_triplets():
    chromatic = triplets = 0
    for seed in range(20):
        pm, _ = piece(seed, difficulty="advanced", hands=2)
        key = parse_key(pm_key_name(pm))
        right = hands(pm)["Right hand"]
        chromatic += sum(p % 12 not in key.pitch_classes(harmonic=True) for _, _, p in right)
        triplets += sum(abs(d - 1 / 3) < 1e-3 for _, d, _ in right)
    assert chromatic > 0 and triplets > 0


def test_intermediate_minor_raises_the_leading_tone():
    raised = 0
    for seed in range(10):
        pm, _ = piece(seed, difficulty="intermediate", key="A minor", hands=2)
        raised += sum(p % 12 == 8 for notes in hands(pm).values() for _, _, p in notes)  # G#
    assert raised > 0


# ---------------------------------------------------------------------------- tonal shape


@pytest.mark.parametrize("difficulty", LEVEL_NAMES)
def test_authentic_cadence_and_tonic_ending(difficulty):
    for seed in range(20):
        pm, _ = piece(seed, difficulty=difficulty, hands=2)
        key = parse_key(pm_key_name(pm))
        h = hands(pm)
        assert h["Right hand"][-1][2] % 12 == key.tonic
        left = events(h["Left hand"])
        assert min(left[-1][2]) % 12 == key.tonic
        bar = 4.0
        penultimate = [e for e in left if 6 * bar <= e[0] < 7 * bar]
        assert min(penultimate[0][2]) % 12 == (key.tonic + 7) % 12, "the bar before the end is V"


@pytest.mark.parametrize("difficulty", LEVEL_NAMES)
def test_harmonic_plan_phrases(difficulty):
    for seed in range(30):
        rng = np.random.Generator(np.random.PCG64(seed))
        plan = [c.label for c in plan_harmony(rng, 8, LEVELS[difficulty])]
        assert plan[0] == "I" and plan[4] == "I"
        assert plan[3] == "V", "the first phrase ends on a half cadence"
        assert plan[6] in ("V", "V7") and plan[7] == "I"
        assert plan[4:6] == plan[0:2], "the answering phrase restates the opening"
        if difficulty == "beginner":
            assert set(plan) <= {"I", "IV", "V"}


@pytest.mark.parametrize("difficulty, threshold", [("beginner", 0.9), ("intermediate", 0.8), ("advanced", 0.8)])
def test_the_notes_sound_in_the_composed_key(difficulty, threshold):
    """A listener's key (the estimate from the notes alone) mostly matches the key written."""
    hits = 0
    for seed in SEEDS:
        pm, _ = piece(seed, difficulty=difficulty)
        hits += midi_metadata(pm).key == pm_key_name(pm)
    assert hits / len(SEEDS) >= threshold


def test_metadata_reports_the_composed_key_not_an_estimate():
    # An 8-bar piece can read as a related key (C major as D minor); the composer knows its key.
    for seed in SEEDS:
        pm, meta = piece(seed, difficulty="beginner", hands=2)
        assert meta.key == pm_key_name(pm) and meta.key_confidence is None


@pytest.mark.parametrize("key", [k.name for k in ALL_KEYS])
def test_every_key_works(key):
    for difficulty in LEVEL_NAMES:
        pm, meta = piece(11, difficulty=difficulty, key=key, hands=2, bars=4)
        assert pm_key_name(pm) == key
        tonic = parse_key(key).tonic
        h = hands(pm)
        assert h["Right hand"][-1][2] % 12 == tonic and min(events(h["Left hand"])[-1][2]) % 12 == tonic
        if difficulty == "beginner":
            assert {p % 12 for notes in h.values() for _, _, p in notes} <= parse_key(key).pitch_classes()


def test_no_two_notes_overlap_on_one_pitch_and_velocities_are_sensible():
    for level in LEVEL_NAMES:
        for seed in range(10):
            pm, _ = piece(seed, difficulty=level, hands=2)
            by_pitch = defaultdict(list)
            velocities = []
            for inst in pm.instruments:
                for n in inst.notes:
                    by_pitch[n.pitch].append((n.start, n.end))
                    velocities.append(n.velocity)
            for spans in by_pitch.values():
                spans.sort()
                assert all(a_end <= b_start + 1e-6 for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
            assert 30 <= min(velocities) and max(velocities) <= 112 and len(set(velocities)) > 5


# --------------------------------------------------------------------------- reproducible


def test_same_seed_same_bytes_and_different_seeds_differ():
    engine = EtudeEngine()
    engine.load()
    request = MidiRequest(seed=1234, difficulty="intermediate", count=2)
    a, b = engine.generate(request), engine.generate(request)
    assert [s.midi for s in a.samples] == [s.midi for s in b.samples]
    assert a.samples[0].midi != a.samples[1].midi
    many = {engine.generate(MidiRequest(seed=s, key="C major")).samples[0].midi for s in range(20)}
    assert len(many) == 20


def test_result_shape_progress_and_sample_seeds():
    calls = []
    result = EtudeEngine("ignored").generate(
        MidiRequest(seed=7, count=3, instrument="violin", hands=2, tempo=88), progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert (result.engine, result.model, result.seed, result.device) == ("etude", "etude-1", 7, "cpu")
    assert [s.seed for s in result.samples] == [7, 7 + 7919, 7 + 2 * 7919]
    # Each sample reproduces on its own from its recorded seed.
    alone = EtudeEngine().generate(MidiRequest(seed=7 + 7919, instrument="violin", hands=2, tempo=88))
    assert alone.samples[0].midi == result.samples[1].midi
    pm = load_midi(result.samples[0].midi)
    assert [(i.name, i.program) for i in pm.instruments] == [("Right hand", 40), ("Left hand", 40)]
    meta = result.samples[0].metadata
    assert meta.tempo == pytest.approx(88.0, abs=0.01) and meta.instruments == ["Violin"]
    assert meta.noteCount == sum(len(i.notes) for i in pm.instruments)
    assert meta.duration == pytest.approx(8 * 4 * 60 / 88, abs=0.01)


def test_defaults():
    pm, meta = piece(5)
    assert meta.time_signature == "4/4" and meta.tempo == pytest.approx(72.0, abs=0.01)
    assert [i.name for i in pm.instruments] == ["Right hand"]  # beginner: one hand
    assert meta.duration == pytest.approx(8 * 4 * 60 / 72, abs=0.01)
    pm, meta = piece(5, difficulty="advanced")
    assert len(pm.instruments) == 2 and meta.tempo == pytest.approx(120.0, abs=0.01)
    # A melody instrument plays one line unless two hands are asked for.
    assert len(piece(5, difficulty="advanced", instrument="flute")[0].instruments) == 1


# -------------------------------------------------------------------------------- prompt


def test_prompt_hints_are_read():
    h = parse_prompt_hints("A slow waltz in D minor for beginners, 100 bpm, 16 bars, both hands")
    assert h.key == parse_key("Dm") and h.time_signature == "3/4" and h.tempo == 100.0
    assert h.difficulty == "beginner" and h.bars == 16 and h.hands == 2 and h.tempo_factor < 1
    h = parse_prompt_hints("a lively jig in F sharp minor, advanced")
    assert h.key == parse_key("F#m") and h.time_signature == "6/8" and h.tempo_factor > 1
    assert h.difficulty == "advanced"
    assert parse_prompt_hints("Bb major march").key == parse_key("Bb")
    assert parse_prompt_hints("a march").time_signature == "2/4"
    assert parse_prompt_hints("sad piece in 6/8").mode == "minor"
    assert parse_prompt_hints("right hand only exercise in G").hands == 1
    # An article is not a key, and nothing said means nothing set.
    nothing = parse_prompt_hints("a gentle melody in a quiet mood")
    assert nothing.key is None and nothing.time_signature is None and nothing.tempo is None


def test_prompt_fills_gaps_and_structured_options_win():
    pm, meta = piece(2, prompt="a slow waltz in D minor")
    assert pm_key_name(pm) == "D minor" and meta.time_signature == "3/4" and meta.tempo < 72
    pm, meta = piece(2, prompt="a slow waltz in D minor", key="G major", time_signature="4/4", tempo=100)
    assert pm_key_name(pm) == "G major" and meta.time_signature == "4/4"
    assert meta.tempo == pytest.approx(100.0, abs=0.01)
    for seed in range(10):
        assert parse_key(pm_key_name(piece(seed, prompt="a sad little tune")[0])).mode == "minor"


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "options",
    [{"key": "H major"}, {"bars": 0}, {"bars": 257}, {"tempo": float("nan")}, {"tempo": 5},
     {"time_signature": "5/4"}, {"hands": 3}, {"difficulty": "expert"}, {"instrument": "theremin"}],
)
def test_bad_options_are_rejected_before_composing(options):
    with pytest.raises((InputError, ValidationError)):
        MidiRequest(**options)

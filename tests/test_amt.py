"""AMT codec: reference semantics on valid streams, tolerance of malformed ones, round trips."""

from __future__ import annotations

import io
import random

import numpy as np
import pretty_midi
import pytest

from muse_cli.errors import InputError
from muse_cli.music import amt
from muse_cli.music.amt import DUR_OFFSET, NOTE_OFFSET, REST, SEPARATOR


def note(onset: int, dur: int, instrument: int, pitch: int) -> list[int]:
    return [onset, DUR_OFFSET + dur, NOTE_OFFSET + 128 * instrument + pitch]


def rows(pm: pretty_midi.PrettyMIDI) -> list[tuple]:
    """(is_drum, program, pitch, start tick, end tick), sorted."""
    return sorted(
        (inst.is_drum, inst.program, n.pitch, round(n.start * 100), round(n.end * 100))
        for inst in pm.instruments for n in inst.notes
    )


def test_constants_match_the_reference_layout():
    assert (amt.TIME_RESOLUTION, amt.MAX_TIME, amt.MAX_DUR) == (100, 10000, 1000)
    assert (amt.DUR_OFFSET, amt.NOTE_OFFSET, amt.REST, amt.CONTROL_OFFSET) == (10000, 11000, 27512, 27513)
    assert (amt.SEPARATOR, amt.AUTOREGRESS, amt.ANTICIPATE, amt.VOCAB_SIZE) == (55025, 55026, 55027, 55028)
    assert (amt.ADUR_OFFSET, amt.ANOTE_OFFSET) == (37513, 38513)


def test_decode_hand_built_stream():
    tokens = (
        note(0, 50, 0, 60)          # piano C4 0.0-0.5
        + note(0, 100, 0, 64)       # overlapping piano E4 0.0-1.0
        + note(25, 30, 128, 36)     # kick on drums
        + note(25, 50, 33, 40)      # electric bass
        + [30, DUR_OFFSET, REST]    # rest: dropped
        + note(50, 999, 0, 67)      # the longest duration
        + note(120, 0, 128, 42)     # zero duration: lasts one tick
    )
    pm, stats = amt.decode_with_stats(tokens)
    assert stats == amt.DecodeStats(notes=6, skipped=0, rests=1)
    assert [(i.program, i.is_drum) for i in pm.instruments] == [(0, False), (0, True), (33, False)]
    assert pm.instruments[1].name == "Drums"
    assert rows(pm) == sorted([
        (False, 0, 60, 0, 50), (False, 0, 64, 0, 100), (True, 0, 36, 25, 55), (False, 33, 40, 25, 75),
        (False, 0, 67, 50, 1049), (True, 0, 42, 120, 121),
    ])
    assert all(n.velocity == amt.DEFAULT_VELOCITY for i in pm.instruments for n in i.notes)


def test_separator_starts_the_next_sequence_after_the_previous_one_ends():
    tokens = note(0, 100, 0, 60) + note(50, 200, 0, 62) + [SEPARATOR] * 3 + note(10, 20, 40, 70)
    pm, stats = amt.decode_with_stats(tokens)
    assert (stats.notes, stats.separators, stats.skipped) == (3, 1, 0)
    # the first sequence ends at tick 250, so the violin note lands at 250 + 10
    assert (True, 40, 70, 260, 280) in [(not i.is_drum, i.program, n.pitch, round(n.start * 100),
                                         round(n.end * 100)) for i in pm.instruments for n in i.notes]


def test_controls_are_played_as_the_reference_plays_them_and_a_leading_flag_is_accepted():
    """anticipation's events_to_compound moves every token >= CONTROL_OFFSET (separators aside) down by
    CONTROL_OFFSET, so a control triple is the note it anticipates (what MIDI-LLM's vLLM path may sample)."""
    control = [amt.ATIME_OFFSET + 5, amt.ADUR_OFFSET + 10, amt.ANOTE_OFFSET + 128 * 40 + 67]
    mixed = [amt.TIME_OFFSET + 7, amt.ADUR_OFFSET + 20, NOTE_OFFSET + 64]  # shifted token by token, as the reference
    tokens = [amt.AUTOREGRESS] + note(0, 10, 0, 60) + control + mixed + note(8, 10, 0, 62)
    pm, stats = amt.decode_with_stats(tokens)
    assert stats == amt.DecodeStats(notes=4, skipped=0, controls=2)
    played = sorted((i.program, n.pitch, round(n.start * 100), round(n.end * 100)) for i in pm.instruments for n in i.notes)
    assert played == [(0, 60, 0, 10), (0, 62, 8, 18), (0, 64, 7, 27), (40, 67, 5, 15)]


@pytest.mark.parametrize(
    "tokens, notes, skipped",
    [
        ([], 0, 0),
        ([5], 0, 1),
        (note(0, 10, 0, 60) + [7, DUR_OFFSET + 3], 1, 2),                      # truncated triple
        ([DUR_OFFSET + 3] + note(0, 10, 0, 60) + note(10, 10, 0, 62), 2, 1),   # one stray token realigns
        (note(0, 10, 0, 60)[::-1] + note(10, 10, 0, 62), 1, 3),                 # wrong order
        ([SEPARATOR] + note(0, 10, 0, 60), 1, 1),                                # lone separator
        (note(0, 10, 0, 60) + [amt.AUTOREGRESS] + note(5, 10, 0, 60), 2, 1),     # a flag mid-stream
        ([NOTE_OFFSET + 60, DUR_OFFSET, 12] + note(0, 10, 0, 60), 1, 3),
        ([-1, 10 ** 30, amt.VOCAB_SIZE + 5] + note(0, 10, 0, 60), 1, 3),         # ids outside the vocabulary
    ],
)
def test_malformed_streams_are_skipped_and_counted(tokens, notes, skipped):
    pm, stats = amt.decode_with_stats(tokens)
    assert (stats.notes, stats.skipped) == (notes, skipped)
    assert sum(len(i.notes) for i in pm.instruments) == notes


def test_random_ids_never_raise_and_account_for_every_token():
    rng = np.random.default_rng(1)
    for length in [1, 2, 3, 4, 10, 100, 2046]:
        for _ in range(20):
            tokens = rng.integers(-5, amt.VOCAB_SIZE + 5, length)
            pm, stats = amt.decode_with_stats(tokens)
            consumed = 3 * (stats.notes + stats.rests + stats.separators)
            assert stats.controls <= stats.notes
            flag = 1 if tokens[0] in (amt.AUTOREGRESS, amt.ANTICIPATE) else 0
            assert consumed + stats.skipped + flag == length
            assert sum(len(i.notes) for i in pm.instruments) == stats.notes


def test_corrupted_valid_stream_keeps_the_untouched_notes():
    rng = random.Random(3)
    tokens = []
    t = 0
    for i in range(200):
        t += rng.choice([0, 10, 25])
        tokens += note(t, rng.randint(1, 300), rng.choice([0, 25, 128]), rng.randint(30, 90))
    corrupted = tokens[:150] + [DUR_OFFSET + 1] + tokens[150:]  # one inserted token
    _, stats = amt.decode_with_stats(corrupted)
    assert stats.notes == 200 and stats.skipped == 1
    dropped = tokens[:150] + tokens[151:]  # one lost token: its note is gone, the rest survive
    _, stats = amt.decode_with_stats(dropped)
    assert stats.notes == 199 and stats.skipped == 2


def make_midi(same_pitch_overlap: bool = True) -> pretty_midi.PrettyMIDI:
    """Three instruments with drums; a MIDI file cannot hold two overlapping notes of one pitch."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=97)
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(80, 60, 0.0, 0.503), pretty_midi.Note(64, 64, 0.0, 1.2),
                   pretty_midi.Note(90, 60 if same_pitch_overlap else 62, 0.25, 0.75),
                   pretty_midi.Note(70, 72, 3.333, 15.0)]  # longer than the vocabulary allows
    strings = pretty_midi.Instrument(program=48)
    strings.notes = [pretty_midi.Note(50, 55, 0.111, 2.222), pretty_midi.Note(50, 59, 99.5, 99.9)]
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(100, 36, k * 0.5, k * 0.5 + 0.1) for k in range(8)]
    pm.instruments = [piano, strings, drums]
    return pm


def test_round_trip_keeps_notes_within_10ms(tmp_path):
    pm = make_midi()
    tokens = amt.encode(pm)
    assert len(tokens) == 3 * 14
    onsets = tokens[0::3]
    assert onsets == sorted(onsets)  # arrival-time order
    back, stats = amt.decode_with_stats(tokens)
    assert stats.skipped == 0 and stats.notes == 14
    expected = sorted(
        (inst.is_drum, inst.program, n.pitch, n.start, min(n.end - n.start, 9.99))
        for inst in pm.instruments for n in inst.notes
    )
    got = sorted((inst.is_drum, inst.program, n.pitch, n.start, n.end - n.start)
                 for inst in back.instruments for n in inst.notes)
    for (d1, p1, k1, s1, l1), (d2, p2, k2, s2, l2) in zip(expected, got, strict=True):
        assert (d1, p1, k1) == (d2, p2, k2)
        assert abs(s1 - s2) <= 0.01 and abs(l1 - l2) <= 0.01 + 1e-9


def test_encode_reads_a_path(tmp_path):
    pm = make_midi(same_pitch_overlap=False)
    path = tmp_path / "piece.mid"
    pm.write(str(path))
    assert amt.encode(path) == amt.encode(str(path)) == amt.encode(pm)


def test_round_trip_through_midi_bytes():
    tokens = amt.encode(make_midi(same_pitch_overlap=False))
    buf = io.BytesIO()
    amt.decode(tokens).write(buf)
    buf.seek(0)
    assert amt.encode(pretty_midi.PrettyMIDI(buf)) == tokens


def test_encode_rejects_onsets_past_the_vocabulary_unless_truncating():
    pm = make_midi()
    pm.instruments[0].notes.append(pretty_midi.Note(80, 61, 120.0, 121.0))
    with pytest.raises(InputError, match="100|99.99"):
        amt.encode(pm)
    assert len(amt.encode(pm, truncate=True)) == 3 * 14


def test_encode_bad_file_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    with pytest.raises(InputError, match="bad.mid"):
        amt.encode(bad)

"""Descriptor maths on signals and note lists whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from muse_cli.music import features as ft
from muse_cli.music.transcribe import Note


def _sine(freq: float, seconds: float, sr: int, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t))[None, :]


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_k_weighted_loudness_matches_bs1770_at_any_rate(sr):
    from muse_cli.music.audio import integrated_loudness

    noise = np.random.default_rng(1).standard_normal((2, 5 * sr)) * 0.1
    _, lufs = ft.windowed_loudness(ft.k_weighted_power(noise, sr), sr, 5.0)
    assert lufs[0] == pytest.approx(integrated_loudness(noise, sr), abs=0.2)
    # The BS.1770 reference point: a full-scale 997 Hz sine in one channel reads -3.01 LUFS.
    _, sine = ft.windowed_loudness(ft.k_weighted_power(_sine(997, 3, sr), sr), sr, 3.0)
    assert sine[0] == pytest.approx(-3.01, abs=0.1)


def test_integrated_loudness_agrees_with_pyloudnorm_on_a_gated_signal():
    from muse_cli.music.audio import integrated_loudness

    sr = 44100
    rng = np.random.default_rng(3)
    # Loud, quiet and silent stretches exercise both gates.
    parts = [rng.standard_normal((2, 3 * sr)) * g for g in (0.2, 0.01, 0.0, 0.05)]
    audio = np.concatenate(parts, axis=1)
    _, momentary = ft.windowed_loudness(ft.k_weighted_power(audio, sr), sr, 0.4, 0.1)
    assert ft.integrated(momentary) == pytest.approx(integrated_loudness(audio, sr), abs=0.1)
    assert ft.integrated(np.full(10, -np.inf)) is None


def test_windowed_loudness_of_silence_is_minus_infinity():
    _, lufs = ft.windowed_loudness(np.zeros(44100), 44100, 0.4, 0.1)
    assert np.all(np.isneginf(lufs))


def _ramped_noise(gain_db_start: float, gain_db_end: float, seconds: float = 12, sr: int = 22050):
    noise = np.random.default_rng(2).standard_normal(int(seconds * sr)) * 0.05
    gain = 10 ** (np.linspace(gain_db_start, gain_db_end, noise.size) / 20)
    return ft.windowed_loudness(ft.k_weighted_power(noise * gain, sr), sr, ft.SHORT_TERM_WINDOW_S)


def test_dynamic_range_follows_a_gain_ramp():
    _, flat = _ramped_noise(0, 0)
    _, ramp = _ramped_noise(-15, 0)
    assert ft.dynamic_range(flat) < 0.5
    assert 9 < ft.dynamic_range(ramp) < 15  # percentiles 5..95 of a 15 dB ramp seen through 3 s windows


def test_dynamic_range_ignores_silence_below_the_gates():
    _, lufs = _ramped_noise(0, 0)
    with_silence = np.concatenate([np.full(20, -np.inf), lufs, np.full(20, -90.0)])
    assert ft.dynamic_range(with_silence) == pytest.approx(ft.dynamic_range(lufs))


def test_swells_find_a_crescendo_then_a_diminuendo_and_ignore_ripple():
    times = np.arange(0, 20, 0.25)
    rise = np.interp(times, [0, 8, 14, 20], [-30, -18, -24, -24])
    ripple = 1.2 * np.sin(times * 6)
    found = ft.swells(times, rise + ripple)
    assert [s.kind for s in found] == ["crescendo", "diminuendo"]
    assert found[0].size_db == pytest.approx(12, abs=2.5)
    assert found[1].size_db == pytest.approx(6, abs=2.5)
    assert ft.swells(times, -20 + ripple) == []


def test_active_span_and_inside_drop_the_edges():
    times = np.arange(0, 10, 0.1)
    lufs = np.where((times > 2) & (times < 8), -20.0, -np.inf)
    span = ft.active_span(times, lufs, 0.4)
    assert span == pytest.approx((1.9, 8.1), abs=0.15)
    mask = ft.inside(times, 3.0, span)
    assert times[mask].min() >= 3.4 - 1e-9 and times[mask].max() <= 6.6 + 1e-9


def test_tempo_and_timing_from_beats():
    steady = 0.5 + np.arange(40) * 0.6
    assert ft.tempo_from_beats(steady) == pytest.approx(100.0)
    assert ft.timing_variation(steady) == pytest.approx(0.0, abs=1e-9)
    swing = np.cumsum(0.6 * (1 + 0.15 * np.sin(np.arange(40) * 2 * np.pi / 8)))
    assert ft.timing_variation(swing) > 8
    times, bpm = ft.tempo_curve(steady)
    assert len(times) == 39 and np.allclose(bpm, 100.0)
    assert ft.tempo_from_beats(steady[:3]) is None


def test_beat_tracking_of_a_note_envelope_finds_the_tempo():
    notes = [Note(0.5 + i * 60 / 84, 0.5 + i * 60 / 84 + 0.3, 60, 80) for i in range(48)]
    envelope = ft.notes_envelope(notes, notes[-1].offset + 0.5)
    beats = ft.beat_times(envelope, trim=False)
    assert ft.tempo_from_beats(beats) == pytest.approx(84, rel=0.02)


def test_legato_ratios_group_chords_and_skip_rests():
    notes = [
        Note(0.0, 0.45, 60, 80), Note(0.01, 0.9, 48, 70),  # a chord (onsets 10 ms apart)
        Note(0.5, 0.95, 62, 80),
        Note(1.0, 1.2, 64, 80),
        Note(5.0, 5.4, 65, 80),  # after a 3.8 s rest: no ratio for the note before it
        Note(5.5, 5.9, 67, 80),  # the last note: nothing follows
    ]
    ratios = ft.legato_ratios(notes)
    np.testing.assert_allclose(sorted(ratios), sorted([0.9, 0.89 / 0.49, 0.9, 0.8]), rtol=1e-6)


def test_pedal_extends_sounding_ends_and_its_share_of_time():
    events = [(1.0, 127), (2.0, 0), (3.0, 100)]
    intervals = ft.pedal_intervals(events, end=4.0)
    assert intervals == [(1.0, 2.0), (3.0, 4.0)]
    assert ft.pedal_down_share(intervals, 4.0) == pytest.approx(0.5)
    notes = [Note(0.5, 1.5, 60, 80), Note(2.5, 2.8, 62, 80), Note(3.2, 3.5, 64, 80)]
    np.testing.assert_allclose(ft.pedal_extended_offsets(notes, intervals), [2.0, 2.8, 4.0])


def test_polyphony_density_and_pitch_classes():
    notes = [Note(0.0, 1.0, 60, 80), Note(0.0, 1.0, 64, 80), Note(0.0, 2.0, 67, 80), Note(1.0, 2.0, 72, 80)]
    mean, peak = ft.polyphony(notes)
    assert peak == 3 and mean == pytest.approx(2.5, abs=0.05)
    assert ft.note_density(notes) == pytest.approx(2.0)
    weights = ft.pitch_class_weights(notes)
    assert weights[0] == pytest.approx(2.0) and weights[7] == pytest.approx(2.0)


def test_brightness_rises_with_frequency_and_silence_has_none():
    sr = ft.ANALYSIS_RATE
    low = ft.brightness(_sine(220, 2, sr)[0].astype(np.float32))
    high = ft.brightness(_sine(2000, 2, sr)[0].astype(np.float32))
    assert low == pytest.approx(220, rel=0.2) and high == pytest.approx(2000, rel=0.1)
    assert ft.brightness(np.zeros(sr, np.float32)) is None

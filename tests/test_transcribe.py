"""Note transcription: windowing, note decoding from posteriorgrams, MIDI output, the real model."""

from __future__ import annotations

import numpy as np
import pytest
from _analysis_material import performance

from muse_cli.errors import RuntimeFailure
from muse_cli.music import transcribe as tr


def _posteriors(frames: int = 200) -> tr.Posteriors:
    return tr.Posteriors(frame=np.zeros((frames, 88), np.float32), onset=np.zeros((frames, 88), np.float32))


def _strike(post: tr.Posteriors, key: int, start: int, end: int, onset: float = 0.95, level: float = 0.8) -> None:
    post.frame[start:end, key] = level
    post.onset[start, key] = onset


def test_windows_tile_the_timeline_without_drift():
    audio = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    windows = tr._windows(audio)
    step = tr.KEPT_FRAMES * tr.HOP
    assert windows.shape == (int(np.ceil(len(audio) / step)), tr.WINDOW)
    first_kept = tr.EDGE_FRAMES * tr.HOP  # sample of window i that holds kept frame 0
    for i in range(len(windows)):
        start = i * step
        chunk = audio[start : start + 1000]
        np.testing.assert_array_equal(windows[i, first_kept : first_kept + len(chunk)], chunk)


def test_a_note_struck_at_the_very_start_is_found():
    post = _posteriors()
    _strike(post, key=39, start=0, end=50)  # onset peak in frame 0: no earlier frame to rise from
    (note,) = tr.notes_from_posteriors(post)
    assert note.pitch == 60 and note.onset == 0.0


def test_one_onset_makes_one_note_with_its_times_and_pitch():
    post = _posteriors()
    _strike(post, key=39, start=20, end=80)  # key 39 = MIDI 60
    (note,) = tr.notes_from_posteriors(post)
    assert note.pitch == 60
    assert note.onset == pytest.approx(20 / tr.FPS, abs=1e-3)
    assert note.offset == pytest.approx(80 / tr.FPS, abs=1e-3)
    assert note.velocity == round(127 * 0.8)


def test_restrike_of_a_sounding_key_needs_a_strong_onset():
    weak, strong = _posteriors(), _posteriors()
    for post, onset in ((weak, 0.6), (strong, 0.95)):
        _strike(post, key=39, start=20, end=120)
        post.onset[70, 39] = onset
    assert len(tr.notes_from_posteriors(weak)) == 1
    first, second = tr.notes_from_posteriors(strong)
    assert first.offset == pytest.approx(70 / tr.FPS, abs=1e-3)  # the restrike ends the earlier note
    assert second.onset == pytest.approx(70 / tr.FPS, abs=1e-3)


def test_blips_and_weak_onsets_make_no_notes():
    post = _posteriors()
    _strike(post, key=40, start=20, end=23)  # 35 ms: shorter than the minimum note
    _strike(post, key=50, start=60, end=120, onset=0.3)  # below the onset threshold ...
    post.frame[60:80, 50] = np.linspace(0.05, 0.8, 20)  # ... and no sudden frame rise to infer one from
    assert tr.notes_from_posteriors(post) == []


def test_a_sudden_frame_rise_counts_as_an_onset():
    post = _posteriors()
    _strike(post, key=39, start=20, end=80)
    _strike(post, key=50, start=100, end=160, onset=0.0)  # the onset head missed it
    assert [n.pitch for n in tr.notes_from_posteriors(post)] == [60, 71]


def _with_reference_strike(post: tr.Posteriors) -> tr.Posteriors:
    """A clean strike on a far key: it sets the scale of the onsets inferred from frame rises
    (the largest rise matches the largest onset), so gentle ramps elsewhere infer none."""
    _strike(post, key=80, start=150, end=190)
    return post


def test_a_bump_on_the_flank_of_one_onset_hump_is_not_a_second_note():
    post = _with_reference_strike(_posteriors())
    post.frame[20:29, 39] = np.linspace(0.1, 0.8, 9)
    post.frame[29:80, 39] = 0.8
    post.onset[18:31, 39] = [0.3, 0.45, 0.54, 0.53, 0.56, 0.62, 0.7, 0.8, 0.85, 0.8, 0.6, 0.4, 0.2]
    notes = [n for n in tr.notes_from_posteriors(post) if n.pitch == 60]
    assert [round(n.onset * tr.FPS) for n in notes] == [26]  # 0.54 dips only to 0.53 before the hump's top
    assert len([n for n in tr.notes_from_posteriors(post, prominence=0.0) if n.pitch == 60]) == 2  # basic-pitch's picking


def test_restrike_with_a_jump_of_the_activation_is_a_new_note():
    post = _posteriors()
    _strike(post, key=39, start=20, end=120, level=0.5)
    post.frame[70:120, 39] = 0.75  # the string excited anew
    post.onset[70, 39] = 0.65  # below the restrike threshold
    first, second = tr.notes_from_posteriors(post)
    assert second.onset == pytest.approx(70 / tr.FPS, abs=1e-3) and first.offset == second.onset
    assert len(tr.notes_from_posteriors(post, restrike_rise=0.0)) == 1


def test_an_early_rise_of_the_activation_does_not_read_as_the_key_sounding():
    post = _with_reference_strike(_posteriors())
    post.frame[15:23, 39] = np.linspace(0.1, 0.8, 8)  # the activation rises from frame 15 ...
    post.frame[23:80, 39] = 0.8
    post.onset[20, 39] = 0.6  # ... and the onset peaks 5 frames into the rise
    notes = [n for n in tr.notes_from_posteriors(post) if n.pitch == 60]
    assert [round(n.onset * tr.FPS) for n in notes] == [20]
    # Looking one frame back (3 frames before the onset) saw the key sounding: a weak restrike.
    assert [n for n in tr.notes_from_posteriors(post, lookback=3, restrike_rise=0.0) if n.pitch == 60] == []


def test_a_strong_onset_with_faint_activation_is_a_note_unless_an_overtone():
    post = _posteriors()
    post.frame[20:60, 60] = 0.2  # a high note: strong onset, frame posterior below threshold
    post.onset[20, 60] = 0.85
    _strike(post, key=20, start=100, end=160)  # a note and, an octave up, a faint partial with a strong onset
    post.frame[100:140, 32] = 0.2
    post.onset[100, 32] = 0.85
    notes = tr.notes_from_posteriors(post)
    assert [(n.pitch, round(n.onset * tr.FPS)) for n in notes] == [(81, 20), (41, 100)]
    assert notes[0].offset == pytest.approx(60 / tr.FPS, abs=1e-3)  # followed at half the frame threshold
    assert len(tr.notes_from_posteriors(post, strong_onset=0.0)) == 1


def test_posterior_stream_reads_back_every_row():
    if not tr.available():
        pytest.skip(tr.unavailable_reason())
    y = np.random.default_rng(1).standard_normal(60_000).astype(np.float32) * 0.1
    stream = tr.PosteriorStream()
    stream.add(y)
    stream.finish()
    try:
        whole = stream.rows(0, stream.n_frames)
        small = stream.all(chunk=50)
        assert small.frame.dtype == np.float16 and small.frame.shape == whole.frame.shape
        assert np.allclose(small.onset, whole.onset, atol=1e-3) and np.allclose(small.frame, whole.frame, atol=1e-3)
    finally:
        stream.close()


def test_to_midi_keeps_every_note():
    notes = [tr.Note(0.5, 1.0, 60, 80), tr.Note(0.5, 1.5, 64, 70), tr.Note(1.2, 1.2, 67, 90)]
    pm = tr.to_midi(notes)
    got = sorted((n.start, n.pitch, n.velocity) for n in pm.instruments[0].notes)
    assert got == sorted((n.onset, n.pitch, n.velocity) for n in notes)
    assert all(n.end > n.start for n in pm.instruments[0].notes)


def test_missing_model_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv(tr.MODEL_ENV, str(tmp_path / "absent.onnx"))
    assert tr.model_path() is None
    assert "muse models pull transcription" in tr.unavailable_reason()
    assert not tr.available()


def test_unreadable_model_is_a_runtime_failure(monkeypatch, tmp_path):
    bogus = tmp_path / "nmp.onnx"
    bogus.write_text("not a model")
    monkeypatch.setenv(tr.MODEL_ENV, str(bogus))
    with pytest.raises(RuntimeFailure, match="cannot load the transcription model"):
        tr.posteriors(np.zeros(22050, np.float32))


@pytest.mark.skipif(not tr.available(), reason=f"transcription unavailable: {tr.unavailable_reason()}")
def test_transcription_onset_f1_on_rendered_piano():
    import mir_eval

    from muse_cli.music.synth import synthesize

    pm = performance(tempo=120, beats=32, seed=4)
    audio = synthesize(pm, sample_rate=44100, stereo=False)
    notes = tr.transcribe(audio, 44100)
    ref = pm.instruments[0].notes
    ref_iv = np.array([[n.start, n.end] for n in ref])
    est_iv = np.array([[n.onset, n.offset] for n in notes])
    ref_hz = mir_eval.util.midi_to_hz(np.array([n.pitch for n in ref]))
    est_hz = mir_eval.util.midi_to_hz(np.array([n.pitch for n in notes]))
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(ref_iv, ref_hz, est_iv, est_hz, offset_ratio=None)
    assert f1 >= 0.85

"""MIDI rendering: the built-in synth's timing, dynamics and click-free edges, and FluidSynth."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from muse_cli.contracts import RenderRequest
from muse_cli.errors import InputError
from muse_cli.music import audio as A
from muse_cli.music import render as R
from muse_cli.music import synth as S

SR = 44100
RAW = RenderRequest(normalize="none")


def make_pm(notes, program=0, is_drum=False, pedal=()) -> pretty_midi.PrettyMIDI:
    """notes: (pitch, start, end, velocity); pedal: (down, up) pairs in seconds."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
    for pitch, start, end, velocity in notes:
        inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=start, end=end))
    for down, up in pedal:
        inst.control_changes += [pretty_midi.ControlChange(64, 127, down), pretty_midi.ControlChange(64, 0, up)]
    pm.instruments.append(inst)
    return pm


def melody() -> list[tuple[int, float, float, int]]:
    """Separated notes (each has died away before the next): onsets are unambiguous."""
    pitches = [48, 60, 64, 67, 72, 55, 76, 43]
    return [(p, 0.25 + 0.45 * i, 0.25 + 0.45 * i + 0.2, 70 + 6 * i) for i, p in enumerate(pitches)]


def midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def detect_onsets(x: np.ndarray, sr: int) -> np.ndarray:
    """Onset times (s) from the rise of the log-energy envelope (1 ms hops)."""
    mono = np.mean(x, axis=0)
    hop = sr // 1000
    frames = mono[: len(mono) // hop * hop].reshape(-1, hop)
    energy = np.convolve(np.mean(frames**2, axis=1), np.ones(3) / 3, mode="same")
    level = 10 * np.log10(energy + 1e-12)
    rise = level[5:] - level[:-5]  # dB gained over 5 ms
    floor = level.max() - 50
    onsets, last = [], -1.0
    for i in np.flatnonzero((rise > 12) & (level[5:] > floor)):
        t = i / 1000.0
        if t - last > 0.1:  # one onset per note
            onsets.append(t)
        last = t
    return np.array(onsets)


def click_score(x: np.ndarray, positions, sr: int) -> float:
    """Worst sample-to-sample step within 1 ms of a position, over the largest step in the 10 ms
    on either side: tones change smoothly, so a click stands out as a local outlier (> 1.5)."""
    d = np.max(np.abs(np.diff(x, axis=1)), axis=0)
    near, gap, side = int(0.001 * sr), int(0.0015 * sr), int(0.01 * sr)
    worst = 0.0
    for p in positions:
        around = np.r_[d[max(0, p - gap - side) : max(0, p - gap)], d[p + gap : p + gap + side]]
        worst = max(worst, float(d[max(0, p - near) : p + near].max()) / max(float(around.max()), 1e-9))
    return worst


def legato() -> list[tuple[int, float, float, int]]:
    """Overlapping line plus a chord: note boundaries fall inside other sounding notes."""
    notes = [(p, 0.1 + 0.15 * i, 0.1 + 0.15 * i + 0.3, 60 + (i * 7) % 60) for i, p in enumerate(range(40, 77, 3))]
    return notes + [(p, 0.5, 1.1, 100) for p in (43, 47, 50)]


# ------------------------------------------------------------------------------ built-in synth


def test_duration_matches_midi_end_plus_release():
    notes = melody()
    out = R.render_midi(make_pm(notes), RAW)
    expected = max(end for _, _, end, _ in notes) + S.RELEASE_S
    assert out.renderer == "builtin" and out.notice is None
    assert abs(out.duration - expected) < 0.003
    assert S.rendered_duration(make_pm(notes)) == pytest.approx(expected)


def test_onsets_at_note_starts():
    notes = melody()
    out = R.render_midi(make_pm(notes), RenderRequest())
    found = detect_onsets(out.audio, out.sample_rate)
    starts = np.array([start for _, start, _, _ in notes])
    assert len(found) == len(starts), found
    assert np.max(np.abs(found - starts)) < 0.015, found - starts


def test_onset_detector_can_fail():
    # The same notes shifted by 40 ms must not pass the timing check.
    notes = melody()
    late = [(p, s + 0.04, e + 0.04, v) for p, s, e, v in notes]
    found = detect_onsets(R.render_midi(make_pm(late), RAW).audio, SR)
    starts = np.array([start for _, start, _, _ in notes])
    assert len(found) == len(starts) and np.max(np.abs(found - starts)) > 0.03


def test_no_clipping_after_normalization():
    chords = [(p, 0.0, 2.0, 127) for p in (36, 40, 43, 48, 52, 55, 60, 64, 67, 72, 76, 79)]
    for strategy in ("loudness", "peak", "rms"):
        out = R.render_midi(make_pm(chords), RenderRequest(normalize=strategy, target_lufs=-8.0))
        assert A.peak_db(out.audio) <= -1.0 + 1e-4, strategy
    out = R.render_midi(make_pm(chords), RenderRequest())
    assert abs(A.integrated_loudness(out.audio, SR) - (-14.0)) < 0.5


def test_every_note_starts_and_ends_without_a_click():
    notes = legato()
    x = R.render_midi(make_pm(notes), RAW).audio
    starts = [int(round(s * SR)) for _, s, _, _ in notes]
    offs = [int(round(e * SR)) for _, _, e, _ in notes]
    ends = [int(round((e + S.RELEASE_S) * SR)) for _, _, e, _ in notes]
    assert click_score(x, starts, SR) < 1.5
    assert click_score(x, offs, SR) < 1.5
    assert click_score(x, ends[:-1], SR) < 1.5
    # Relative to the signal RMS, the steps at note starts are small too.
    d = np.max(np.abs(np.diff(x, axis=1)), axis=0)
    assert max(d[p : p + 44].max() for p in starts) < 0.5 * np.sqrt(np.mean(x**2))
    assert np.max(np.abs(x[:, 0])) == 0.0 and np.max(np.abs(x[:, -1])) < 1e-4


def test_click_check_can_fail(monkeypatch):
    t = np.arange(SR) / SR
    gated = np.sin(2 * np.pi * 220 * t + 1.0)[None, :] * 0.1
    gated[:, : SR // 4] = 0.0
    assert click_score(gated, [SR // 4], SR) > 1.5
    # The synth itself without its attack ramp: notes start abruptly and the check notices.
    monkeypatch.setattr(S, "_attack_ramp", lambda sr, length: np.ones(1, np.float32))
    notes = legato()
    x = R.render_midi(make_pm(notes), RAW).audio
    assert click_score(x, [int(round(s * SR)) for _, s, _, _ in notes], SR) > 1.5


def test_louder_velocity_is_louder_and_brighter():
    soft = R.render_midi(make_pm([(60, 0.0, 1.0, 30)]), RAW).audio
    loud = R.render_midi(make_pm([(60, 0.0, 1.0, 110)]), RAW).audio
    assert A.rms_db(loud) - A.rms_db(soft) > 6.0

    def centroid(x):
        spec = np.abs(np.fft.rfft(x[0]))
        freqs = np.fft.rfftfreq(x.shape[1], 1 / SR)
        return float(np.sum(freqs * spec) / np.sum(spec))

    assert centroid(loud) > centroid(soft) * 1.1


def test_low_notes_ring_longer():
    def remaining(pitch):
        x = R.render_midi(make_pm([(pitch, 0.0, 3.0, 90)]), RAW).audio
        return A.rms_db(x[:, int(2.5 * SR) : int(2.9 * SR)]) - A.rms_db(x[:, : int(0.2 * SR)])

    assert remaining(36) > remaining(84) + 10


def test_stereo_shape_and_pan():
    pm = make_pm([(30, 0.0, 0.5, 90), (100, 0.6, 1.0, 90)])
    stereo = R.render_midi(pm, RAW)
    mono = R.render_midi(pm, RenderRequest(normalize="none", stereo=False))
    assert stereo.audio.shape[0] == 2 and mono.audio.shape[0] == 1
    assert stereo.audio.shape[1] == mono.audio.shape[1]
    assert stereo.audio.dtype == np.float32 and mono.audio.dtype == np.float32
    low, high = stereo.audio[:, : int(0.5 * SR)], stereo.audio[:, int(0.7 * SR) :]
    assert A.rms_db(low[0]) > A.rms_db(low[1]) + 3  # low notes on the left
    assert A.rms_db(high[1]) > A.rms_db(high[0]) + 3
    # Constant power: the two channels together carry the mono note's energy.
    both = np.sum(np.mean(low**2, axis=1))
    assert both == pytest.approx(np.mean(mono.audio[:, : int(0.5 * SR)] ** 2), rel=1e-3)


def test_sustain_pedal_lengthens_sound():
    note = [(60, 0.0, 0.2, 90)]
    dry = R.render_midi(make_pm(note), RAW).audio
    wet = R.render_midi(make_pm(note, pedal=[(0.1, 1.5)]), RAW).audio
    assert abs(dry.shape[1] / SR - (0.2 + S.RELEASE_S)) < 0.003
    assert abs(wet.shape[1] / SR - (1.5 + S.RELEASE_S)) < 0.003
    assert A.rms_db(wet[:, int(1.0 * SR) : int(1.4 * SR)]) > A.rms_db(wet) - 20
    # Pedal pressed after the note-off changes nothing.
    late = R.render_midi(make_pm(note, pedal=[(0.5, 1.5)]), RAW).audio
    assert late.shape == dry.shape and np.allclose(late, dry)


def test_restrike_under_pedal_cuts_previous_note():
    pm = make_pm([(60, 0.0, 0.2, 90), (60, 0.5, 0.7, 90)], pedal=[(0.0, 1.0)])
    x = S.synthesize(pm, SR, stereo=False)
    assert abs(x.shape[1] / SR - (1.0 + S.RELEASE_S)) < 0.003
    assert np.isfinite(x).all()


def test_drums_are_short_noise_bursts():
    hits = [(36, 0.0, 0.1, 100), (38, 0.5, 0.6, 100), (42, 1.0, 1.05, 90)]
    out = R.render_midi(make_pm(hits, is_drum=True), RAW)
    x = out.audio
    assert abs(out.duration - (1.05 + S.RELEASE_S)) < 0.003
    for _, start, end, _ in hits:
        seg = x[:, int(start * SR) : int((end + S.RELEASE_S) * SR)]
        assert A.rms_db(seg) > -50
    assert np.max(np.abs(x[:, 0])) == 0.0 and np.max(np.abs(x[:, -1])) < 1e-4


def test_other_sample_rates():
    out = R.render_midi(make_pm(melody()[:2]), RenderRequest(sample_rate=22050))
    assert out.sample_rate == 22050
    assert abs(out.duration - (melody()[1][2] + S.RELEASE_S)) < 0.003


def test_render_to_bytes_from_midi_bytes():
    data = midi_bytes(make_pm(melody()))
    for fmt in ("wav", "flac"):
        encoded, out = R.render_to_bytes(data, RenderRequest(format=fmt))
        decoded, sr = A.decode_audio(encoded, f"x.{fmt}")
        assert sr == SR and decoded.shape == out.audio.shape
        assert np.max(np.abs(decoded - out.audio)) < 2 / 32768


def test_corrupt_midi_is_input_error():
    with pytest.raises(InputError):
        R.render_midi(b"MThd not really midi", RenderRequest())
    with pytest.raises(InputError):
        R.render_midi(b"", RenderRequest())


# --------------------------------------------------------------------------------- SoundFonts


def fake_soundfont(tmp_path: Path) -> Path:
    """A file with a SoundFont header: enough for validation, not for FluidSynth."""
    path = tmp_path / "piano.sf2"
    path.write_bytes(b"RIFF" + (4).to_bytes(4, "little") + b"sfbk")
    return path


def test_missing_soundfont_is_input_error(tmp_path):
    with pytest.raises(InputError, match="soundfont not found"):
        R.render_midi(make_pm(melody()), RenderRequest(soundfont=str(tmp_path / "nope.sf2")))


def test_non_soundfont_file_is_input_error(tmp_path):
    bogus = tmp_path / "notes.sf2"
    bogus.write_text("not a soundfont")
    with pytest.raises(InputError, match="is not a SoundFont"):
        R.render_midi(make_pm(melody()), RenderRequest(soundfont=str(bogus)))
    with pytest.raises(InputError, match="not a file"):
        R.render_midi(make_pm(melody()), RenderRequest(soundfont=str(tmp_path)))


def test_fluidsynth_missing_falls_back_with_notice(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "fluidsynth_available", lambda: False)
    out = R.render_midi(make_pm(melody()), RenderRequest(soundfont=str(fake_soundfont(tmp_path))))
    assert out.renderer == "builtin"
    assert out.notice and "piano.sf2" in out.notice and "pyfluidsynth" in out.notice
    assert out.audio.shape[0] == 2 and not A.is_silent(out.audio)


def test_fluidsynth_available_matches_import():
    try:
        import fluidsynth  # noqa: F401

        importable = True
    except (ImportError, OSError):
        importable = False
    assert R.fluidsynth_available() is importable


GM_SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@pytest.mark.skipif(not R.fluidsynth_available(), reason="FluidSynth (libfluidsynth + pyfluidsynth) not installed")
@pytest.mark.skipif(not GM_SOUNDFONT.exists(), reason="pretty_midi's bundled SoundFont is missing")
def test_fluidsynth_renders_with_soundfont():
    notes = melody()
    pm = make_pm(notes)
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 38, 0.25, 0.35))
    pm.instruments.append(drums)
    out = R.render_midi(pm, RenderRequest(soundfont=str(GM_SOUNDFONT)))
    assert out.renderer == "fluidsynth" and out.notice is None
    assert out.audio.shape[0] == 2 and out.audio.dtype == np.float32
    last_end = max(end for _, _, end, _ in notes)
    assert last_end < out.duration <= last_end + R.FLUIDSYNTH_MAX_TAIL_S + 0.11
    assert abs(A.integrated_loudness(out.audio, SR) - (-14.0)) < 0.5 and A.peak_db(out.audio) <= -1.0 + 1e-4
    found = detect_onsets(out.audio, SR)
    starts = np.array([start for _, start, _, _ in notes])
    assert len(found) == len(starts), found
    assert np.max(np.abs(found - starts)) < 0.02, found - starts
    mono = R.render_midi(pm, RenderRequest(soundfont=str(GM_SOUNDFONT), stereo=False))
    assert mono.audio.shape[0] == 1


@pytest.mark.skipif(not R.fluidsynth_available(), reason="FluidSynth (libfluidsynth + pyfluidsynth) not installed")
def test_fluidsynth_rejects_unloadable_soundfont(tmp_path):
    with pytest.raises(InputError, match="could not be loaded"):
        R.render_midi(make_pm(melody()), RenderRequest(soundfont=str(fake_soundfont(tmp_path))))


# ------------------------------------------------------------------ length cap, block rendering


def long_midi(path: Path, seconds: float) -> Path:
    """A few dozen bytes of MIDI that last `seconds`: one note held that long (issue 12, item 10)."""
    import struct

    def vlq(n: int) -> bytes:
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        return bytes(reversed(out))

    ticks = int(seconds * 2 * 480)  # 120 BPM, 480 ticks per beat
    track = b"\x00\xff\x51\x03\x07\xa1\x20" + b"\x00\x90\x3c\x40" + vlq(ticks) + b"\x80\x3c\x40" + b"\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


def test_synth_blocks_join_to_the_whole_render_bit_for_bit():
    pm = make_pm(legato(), pedal=[(0.3, 1.4)])
    drums = pretty_midi.Instrument(0, is_drum=True)
    drums.notes += [pretty_midi.Note(100, 36 + (i % 2) * 6, 0.2 * i, 0.2 * i + 0.05) for i in range(8)]
    pm.instruments.append(drums)
    whole = S.synthesize(pm, 22050, stereo=True)
    for block in (331, 22050, 10**7):
        joined = np.concatenate(list(S.synthesize_blocks(pm, 22050, True, block=block)), axis=1)
        assert np.array_equal(joined, whole), block


@pytest.mark.parametrize("renderer", ["builtin", "fluidsynth"])
@pytest.mark.parametrize("strategy", ["loudness", "peak", "rms", "clip", "none"])
def test_render_to_file_in_blocks_writes_what_the_whole_render_encodes(tmp_path, renderer, strategy):
    import soundfile as sf

    if renderer == "fluidsynth" and not (R.fluidsynth_available() and GM_SOUNDFONT.exists()):
        pytest.skip("FluidSynth (libfluidsynth + pyfluidsynth) not installed")
    notes = [(p, 0.1 + 0.21 * i, 0.1 + 0.21 * i + 0.5, 40 + (i * 13) % 87) for i, p in enumerate(range(36, 90, 2))]
    pm = make_pm(notes, pedal=[(1.0, 3.0)])
    for stereo in (True, False):
        request = RenderRequest(sample_rate=16000, normalize=strategy, target_lufs=-8.0, stereo=stereo,
                                soundfont=str(GM_SOUNDFONT) if renderer == "fluidsynth" else None)
        whole = R.render_midi(pm, request)
        expected, _ = sf.read(io.BytesIO(A.encode_audio(whole.audio, 16000, "wav")), dtype="int16", always_2d=True)
        info = R.render_to_file(pm, request, tmp_path / "x.wav", block_s=0.3)  # many blocks, limiter across edges
        written, _ = sf.read(tmp_path / "x.wav", dtype="int16", always_2d=True)
        assert info.renderer == renderer and info.samples == len(expected)
        assert np.abs(written.astype(int) - expected).max() <= 1, (strategy, stereo)


def test_block_loudness_equals_pyloudnorm_on_the_whole_signal():
    import pyloudnorm

    rng = np.random.default_rng(3)
    for channels, sr, seconds in ((1, 8000, 7.3), (2, 44100, 4.05)):
        x = rng.standard_normal((channels, int(sr * seconds))) * np.linspace(0.001, 0.5, int(sr * seconds))
        x[:, : sr] = 0.0  # a silent second the gates must drop
        meter = A.BlockLoudness(sr, channels, x.shape[1])
        for start in range(0, x.shape[1], 3001):
            meter.add(x[:, start : start + 3001])
        whole = pyloudnorm.Meter(sr).integrated_loudness(x.T if channels > 1 else x[0])
        assert abs(meter.result() - whole) < 1e-9


def test_a_long_midi_is_refused_before_rendering_with_both_durations(run_cli, tmp_path):
    src = long_midi(tmp_path / "long.mid", 7200)
    assert src.stat().st_size < 80
    with pytest.raises(InputError, match=r"7200 s.*at most 3600 s.*--max-duration"):
        R.render_midi(str(src), RenderRequest())
    code, out, err = run_cli("render", str(src))
    assert code == 2 and out == ""
    assert "2:00:00 (7200 s)" in err and "at most 3600 s" in err and "--max-duration" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mid"]
    code, _, err = run_cli("render", str(src), "--max-duration", "100000")
    assert code == 2 and "max_duration" in err.replace("-", "_")


def test_two_hours_render_with_the_limit_raised_in_bounded_memory(tmp_path):
    """A subprocess renders 2 h of MIDI block by block; its peak RSS stays far below the audio's size."""
    import json
    import subprocess
    import sys

    import soundfile as sf

    src = long_midi(tmp_path / "long.mid", 7200)
    probe = (
        "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    args = [sys.executable, "-c", probe, sys.executable, "-m", "muse_cli", "render", str(src), "--max-duration", "7300",
            "--mono", "--sample-rate", "8000", "-q"]
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    rc, peak_kib = (int(v) for v in done.stdout.split()[-2:])
    assert rc == 0, done.stderr
    info = sf.info(tmp_path / "long.wav")
    assert abs(info.duration - 7200.12) < 0.01
    raw_mib = 7200 * 8000 * 4 / 2**20  # the float32 audio a whole-array render holds: 220 MiB, then copies
    assert peak_kib / 1024 < 400, f"peak RSS {peak_kib / 1024:.0f} MiB for {raw_mib:.0f} MiB of audio"
    assert json.loads((tmp_path / "long.render.json").read_text())["request"]["max_duration"] == 7300

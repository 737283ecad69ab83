"""Audio I/O and loudness: real soundfile/pyloudnorm on small generated signals."""

from __future__ import annotations

import io
import math
import struct

import numpy as np
import pytest
import soundfile as sf

from muse_cli.errors import InputError
from muse_cli.music import audio as A

SR = 44100


def tone(seconds=1.0, freq=440.0, amp=0.3, sr=SR, channels=1, seed=0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    x = amp * np.sin(2 * np.pi * freq * t) + 0.01 * amp * rng.standard_normal(t.size)
    return np.repeat(x[None, :], channels, axis=0).astype(np.float32)


def drum_loop(seconds=3.0, sr=SR) -> np.ndarray:
    """Loud transients over a quiet bed: limiting is needed to reach -14 LUFS without clipping."""
    x = tone(seconds, 220.0, 0.05, sr, channels=2)
    for start in range(0, x.shape[1], sr // 2):
        n = min(2000, x.shape[1] - start)
        x[:, start : start + n] += 0.9 * np.exp(-np.arange(n) / 300.0)
    return x


# ---------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("channels", [1, 2])
def test_wav_pcm16_round_trip(channels):
    x = tone(0.5, channels=channels)
    y, sr = A.decode_audio(A.encode_audio(x, SR, "wav"))
    assert sr == SR and y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) < 2 / 32768


def test_wav_float_round_trip_is_exact():
    x = tone(0.5, channels=2) * 1.5  # float WAV keeps values beyond full scale
    data = A.encode_audio(x, SR, "wav", float_wav=True)
    assert sf.info(io.BytesIO(data)).subtype == "FLOAT"
    y, _ = A.decode_audio(data)
    np.testing.assert_array_equal(y, x)


def test_pcm16_clips_instead_of_wrapping():
    x = np.array([[0.5, 1.7, -2.0, 0.0]], dtype=np.float32)
    y, _ = A.decode_audio(A.encode_audio(x, SR, "wav"))
    assert y[0, 1] > 0.99 and y[0, 2] <= -0.99


def test_flac_round_trip():
    x = tone(0.5, channels=2)
    data = A.encode_audio(x, 48000, "flac")
    assert sf.info(io.BytesIO(data)).format == "FLAC"
    y, sr = A.decode_audio(data)
    assert sr == 48000 and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 2 / 32768


@pytest.mark.skipif(not A.mp3_supported(), reason="installed libsndfile has no MP3 support")
def test_mp3_round_trip():
    x = tone(1.0, freq=440.0, channels=2)
    data = A.encode_audio(x, SR, "mp3")
    assert data[:3] == b"ID3" or data[0] == 0xFF
    y, sr = A.decode_audio(data, "song.mp3")
    assert sr == SR and y.shape[0] == 2
    assert abs(y.shape[1] - x.shape[1]) < 2 * 1152  # at most a frame or two of codec padding
    # Lossy, but the tone survives: same level and same dominant frequency.
    assert abs(A.rms_db(y) - A.rms_db(x)) < 1.0
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert abs(np.argmax(spectrum) * SR / y.shape[1] - 440.0) < 3.0


@pytest.mark.skipif(not A.mp3_supported(), reason="installed libsndfile has no MP3 support")
def test_mp3_rejects_sample_rates_mp3_cannot_carry():
    with pytest.raises(InputError, match="96000"):
        A.encode_audio(tone(0.1, sr=96000), 96000, "mp3")


def test_unknown_format_is_input_error():
    with pytest.raises(InputError, match="ogg2"):
        A.encode_audio(tone(0.1), SR, "ogg2")


def test_ogg_decodes():
    buf = io.BytesIO()
    sf.write(buf, tone(0.5).T, SR, format="OGG", subtype="VORBIS")
    y, sr = A.decode_audio(buf.getvalue(), "x.ogg")
    assert sr == SR and y.shape[0] == 1 and abs(y.shape[1] - SR // 2) < 2048


# ------------------------------------------------------------------------------------ bad input


def test_empty_bytes():
    with pytest.raises(InputError, match=r"take\.wav.*empty"):
        A.decode_audio(b"", "take.wav")


def test_text_file_named_wav():
    with pytest.raises(InputError, match=r"notes\.wav: not a readable audio file"):
        A.decode_audio(b"these are my lyrics, not audio\n" * 20, "notes.wav")


def test_truncated_header():
    data = A.encode_audio(tone(0.1), SR, "wav")
    with pytest.raises(InputError, match="cut.wav"):
        A.decode_audio(data[:30], "cut.wav")


def test_header_only_is_zero_length():
    data = A.encode_audio(np.zeros((1, 0), np.float32), SR, "wav")
    with pytest.raises(InputError, match="no audio samples"):
        A.decode_audio(data, "blank.wav")


def test_nan_samples_rejected():
    x = np.full((1, 100), np.nan, dtype=np.float32)
    data = A.encode_audio(np.zeros((1, 100), np.float32), SR, "wav", float_wav=True)
    # Write NaNs directly: encode_audio refuses to produce them.
    buf = io.BytesIO()
    sf.write(buf, x.T, SR, format="WAV", subtype="FLOAT")
    assert len(buf.getvalue()) == len(data)
    with pytest.raises(InputError, match="NaN or infinite"):
        A.decode_audio(buf.getvalue(), "nan.wav")


def test_inf_samples_rejected():
    x = np.zeros((2, 100), dtype=np.float32)
    x[1, 50] = np.inf
    buf = io.BytesIO()
    sf.write(buf, x.T, SR, format="WAV", subtype="FLOAT")
    with pytest.raises(InputError, match="inf.wav"):
        A.decode_audio(buf.getvalue(), "inf.wav")


def test_nine_channels_rejected_eight_accepted():
    buf = io.BytesIO()
    sf.write(buf, np.zeros((100, 9), np.float32), SR, format="WAV", subtype="PCM_16")
    with pytest.raises(InputError, match="9 channels"):
        A.decode_audio(buf.getvalue(), "surround.wav")
    buf = io.BytesIO()
    sf.write(buf, np.zeros((100, 8), np.float32), SR, format="WAV", subtype="PCM_16")
    assert A.decode_audio(buf.getvalue())[0].shape == (8, 100)


def test_silence_is_valid_audio():
    y, _ = A.decode_audio(A.encode_audio(np.zeros((1, 1000), np.float32), SR, "wav"))
    assert A.is_silent(y)
    assert not A.is_silent(tone(0.1))
    assert A.is_silent(tone(0.1, amp=1e-4)) and not A.is_silent(tone(0.1, amp=1e-4), threshold_db=-90)


def test_read_audio(tmp_path):
    path = tmp_path / "a.flac"
    path.write_bytes(A.encode_audio(tone(0.2), SR, "flac"))
    y, sr = A.read_audio(path)
    assert sr == SR and y.shape == (1, int(0.2 * SR))
    with pytest.raises(InputError, match="not found"):
        A.read_audio(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="not a file"):
        A.read_audio(tmp_path)


def test_wav_with_bogus_sizes_in_header():
    # RIFF header claiming a huge data chunk, followed by only a few bytes.
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, SR, SR * 2, 2, 16)
    data = b"RIFF" + struct.pack("<I", 0xFFFFFF) + b"WAVE" + fmt + b"data" + struct.pack("<I", 0xFFFFFF) + b"\x00\x01"
    try:
        y, _ = A.decode_audio(data, "liar.wav")
    except InputError as exc:
        assert "liar.wav" in str(exc)
    else:  # libsndfile may salvage the one sample it has; then it must be a real, finite one
        assert y.shape[1] <= 1 and np.isfinite(y).all()


# ---------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("sr_from,sr_to", [(44100, 32000), (32000, 48000), (22050, 44100), (48000, 22050)])
def test_resample_length_and_pitch(sr_from, sr_to):
    x = tone(1.0, freq=1000.0, sr=sr_from, channels=2)
    y = A.resample(x, sr_from, sr_to)
    assert y.shape == (2, int(round(x.shape[1] * sr_to / sr_from))) and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert abs(np.argmax(spectrum) * sr_to / y.shape[1] - 1000.0) < 2.0
    assert abs(A.rms_db(y[:, 1000:-1000]) - A.rms_db(x)) < 0.2


def test_resample_same_rate_is_a_copy():
    x = tone(0.1)
    y = A.resample(x, SR, SR)
    np.testing.assert_array_equal(x, y)
    assert y is not x


def test_to_mono_and_stereo():
    x = np.stack([np.ones(10), -np.ones(10) * 0.5]).astype(np.float32)
    np.testing.assert_allclose(A.to_mono(x), np.full((1, 10), 0.25))
    assert A.to_stereo(A.to_mono(x)).shape == (2, 10)
    assert A.to_mono(np.zeros(5, np.float32)).shape == (1, 5)


# ---------------------------------------------------------------------------------- loudness


def test_loudness_of_reference_sine():
    # BS.1770: a 997 Hz sine at 0 dBFS peak on one channel reads -3.01 LUFS.
    t = np.arange(3 * 48000) / 48000
    x = np.sin(2 * np.pi * 997 * t)[None, :]
    assert abs(A.integrated_loudness(x, 48000) - (-3.01)) < 0.05


def test_loudness_of_silence_is_minus_inf():
    assert A.integrated_loudness(np.zeros((2, SR)), SR) == -math.inf
    assert A.integrated_loudness(np.zeros((1, 0)), SR) == -math.inf


def test_loudness_of_short_clip_matches_long_clip():
    long = A.integrated_loudness(tone(2.0), SR)
    short = A.integrated_loudness(tone(0.1), SR)  # shorter than one 400 ms block
    assert math.isfinite(short) and abs(short - long) < 0.3


@pytest.mark.parametrize("signal", ["tone", "drums", "short"])
def test_loudness_normalize_hits_target_without_clipping(signal):
    x = {"tone": tone(2.0, amp=0.02, channels=2), "drums": drum_loop(), "short": tone(0.2, amp=0.01)}[signal]
    y = A.normalize(x, SR, "loudness", target_lufs=-14.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert abs(A.integrated_loudness(y, SR) - (-14.0)) < 0.5
    assert A.peak_db(y) <= -1.0 + 1e-4


def test_loudness_normalize_other_targets():
    y = A.normalize(tone(2.0, amp=0.5), SR, "loudness", target_lufs=-23.0)
    assert abs(A.integrated_loudness(y, SR) - (-23.0)) < 0.5


def test_limiter_keeps_quiet_parts_and_is_smooth():
    x = drum_loop()
    y = A.limit_peaks(x * 4, SR, -1.0)
    assert A.peak_db(y) <= -1.0 + 1e-4
    # Far from any transient the bed keeps its gain.
    np.testing.assert_allclose(y[:, 15000:20000], x[:, 15000:20000] * 4, rtol=1e-5)
    # The gain changes over milliseconds, not in one step: no sample jumps more than the input's own.
    assert np.max(np.abs(np.diff(y, axis=1))) <= np.max(np.abs(np.diff(x * 4, axis=1))) * 1.01


def test_peak_normalize():
    y = A.normalize(tone(1.0, amp=0.1), SR, "peak", headroom_db=-1.0)
    assert abs(A.peak_db(y) - (-1.0)) < 1e-3
    y = A.normalize(tone(1.0, amp=3.0), SR, "peak", headroom_db=-3.0)
    assert abs(A.peak_db(y) - (-3.0)) < 1e-3


def test_rms_normalize():
    y = A.normalize(tone(1.0, amp=0.01, channels=2), SR, "rms", target_lufs=-20.0)
    assert abs(A.rms_db(y) - (-20.0)) < 0.1
    # A target the peaks cannot reach: limited, never clipped.
    y = A.normalize(drum_loop(), SR, "rms", target_lufs=-6.0)
    assert A.peak_db(y) <= -1.0 + 1e-4


def test_clip_and_none():
    x = tone(0.5, amp=2.0)
    y = A.normalize(x, SR, "clip")
    assert np.max(np.abs(y)) == pytest.approx(1.0) and np.array_equal(y[np.abs(x) < 1], x[np.abs(x) < 1])
    np.testing.assert_array_equal(A.normalize(x, SR, "none"), x)


@pytest.mark.parametrize("strategy", ["loudness", "peak", "rms", "clip", "none"])
def test_silence_unchanged(strategy):
    x = np.zeros((2, 1000), np.float32)
    y = A.normalize(x, SR, strategy)
    assert np.array_equal(y, x) and np.isfinite(y).all()


def test_bad_strategy():
    with pytest.raises(InputError, match="normalize"):
        A.normalize(tone(0.1), SR, "loudest")

"""Analysis memory bounded by decoded length (issue 12, item 11) and the librosa-free hot path
(issue 15): header checks before decoding, block-by-block measures equal to whole-array ones,
and the server's cap on what an HTTP client may ask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from _analysis_material import performance, render_wav
from muse_cli.music import features as ft

PROBE = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(done.stderr, file=sys.stderr)"
)


def peak_run(cwd: Path, *args: str) -> tuple[int, float, str]:
    """(exit code, peak RSS in MiB, stderr) of `muse ARGS` run as its own process."""
    done = subprocess.run([sys.executable, "-c", PROBE, sys.executable, "-m", "muse_cli", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=900)
    rc, kib = (int(v) for v in done.stdout.split()[-2:])
    return rc, kib / 1024, done.stderr


def write_blocks(path: Path, seconds: float, sr: int, tone: bool) -> Path:
    """A FLAC `seconds` long, written block by block: digital silence, or a quiet repeating tone."""
    pattern = (0.05 * np.sin(2 * np.pi * 441.0 * np.arange(sr) / sr)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        left = int(seconds * sr)
        while left > 0:
            block = pattern if tone else np.zeros(sr, np.float32)
            f.write(block[: min(left, sr)])
            left -= sr
    return path


def mono_of(wav: bytes) -> np.ndarray:
    import io

    from muse_cli.music.audio import resample, to_mono

    audio, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return resample(to_mono(audio.T), sr, ft.ANALYSIS_RATE)[0]


# ------------------------------------------------------------------------- limits before decoding


def test_a_long_file_is_refused_from_its_header_before_decoding(tmp_path):
    src = write_blocks(tmp_path / "long.flac", 2 * 3600, 22050, tone=False)
    assert src.stat().st_size < 5_000_000
    rc, peak, err = peak_run(tmp_path, "analyze", "long.flac")
    assert rc == 2, err
    assert "7200 s long" in err and "1800 s" in err and "--max-duration" in err
    decoded_mib = 2 * 3600 * 22050 * 4 / 2**20  # what decoding it whole would hold: 606 MiB
    assert peak < 300, f"peak RSS {peak:.0f} MiB: the {decoded_mib:.0f} MiB of samples were decoded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.flac"]


def test_analysis_memory_is_flat_in_the_input_length(tmp_path):
    """1 and 8 minutes of audio (transcription off) peak within a few MiB of each other."""
    peaks = {}
    for minutes in (1, 8):
        write_blocks(tmp_path / f"m{minutes}.flac", minutes * 60, 8000, tone=True)
        rc, peaks[minutes], err = peak_run(tmp_path, "analyze", f"m{minutes}.flac", "--no-transcribe", "-q")
        assert rc == 0, err
    # Whole-array analysis holds the 22050 Hz STFT: about 40 MiB more per minute of input.
    assert peaks[8] - peaks[1] < 60, peaks


# ------------------------------------------------------------------------ the HTTP server's cap


def test_a_client_may_not_ask_past_the_servers_maximum(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from muse_cli.pipelines.analysis import SERVER_MAX_DURATION_ENV, client_duration_problem
    from muse_cli.backends.local import LocalBackend
    from muse_cli.http.app import create_app

    token = "t" * 32
    client = TestClient(create_app(LocalBackend(), token=token, storage_dir=tmp_path), raise_server_exceptions=False)
    wav = render_wav(performance(beats=4), sample_rate=22050, stereo=False)
    auth = {"authorization": f"Bearer {token}"}
    r = client.post("/v1/analyze", files={"file": ("take.wav", wav, "audio/wav")},
                    data={"max_duration": "7300", "transcribe": "false"}, headers=auth)
    assert r.status_code == 422, r.text
    field = r.json()["error"]["fields"][0] if "error" in r.json() else r.json()["fields"][0]
    assert field["field"] == "max_duration" and "1800 s" in field["message"]
    monkeypatch.setenv(SERVER_MAX_DURATION_ENV, "60")
    assert client_duration_problem(61.0) and client_duration_problem(60.0) is None
    r = client.post("/v1/analyze", files={"file": ("take.wav", wav, "audio/wav")},
                    data={"max_duration": "120", "transcribe": "false"}, headers=auth)
    assert r.status_code == 422 and "60 s" in r.text
    r = client.post("/v1/analyze", files={"file": ("take.wav", wav, "audio/wav")},
                    data={"max_duration": "30", "transcribe": "false"}, headers=auth)
    assert r.status_code == 200, r.text


# ------------------------------------------------------------- the same numbers, block by block


def test_mel_and_chroma_filterbanks_equal_librosas():
    librosa = pytest.importorskip("librosa")
    for sr in (22050, 44100):
        assert np.array_equal(ft.mel_filters(sr), librosa.filters.mel(sr=sr, n_fft=ft.N_FFT))
        assert np.allclose(ft.chroma_filters(sr), librosa.filters.chroma(sr=sr, n_fft=ft.N_FFT, tuning=0.0),
                           rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("tempo,rubato", [(96.0, 0.0), (132.0, 0.12)])
def test_onset_envelope_beats_brightness_and_chroma_equal_librosas(tempo, rubato):
    librosa = pytest.importorskip("librosa")
    y = mono_of(render_wav(performance(tempo=tempo, beats=32, rubato=rubato, pedal=True)))
    ref = librosa.onset.onset_strength(y=y, sr=ft.ANALYSIS_RATE, hop_length=ft.BEAT_HOP)
    env = ft.onset_envelope(y)
    assert env.shape == ref.shape and np.allclose(env, ref, rtol=1e-5, atol=1e-5)
    bpm = ft.global_tempo(ref)
    for trim in (True, False):
        _, frames = librosa.beat.beat_track(onset_envelope=ref, sr=ft.ANALYSIS_RATE, hop_length=ft.BEAT_HOP,
                                            bpm=bpm, trim=trim)
        assert np.array_equal(ft.track_beats(ref, ft.ANALYSIS_RATE / ft.BEAT_HOP, bpm, trim=trim), frames)
    spectrum = np.abs(librosa.stft(y, n_fft=ft.N_FFT, hop_length=ft.STFT_HOP))
    centroid = librosa.feature.spectral_centroid(S=spectrum, sr=ft.ANALYSIS_RATE)[0]
    energy = spectrum.sum(axis=0)
    expected = float(np.median(centroid[energy >= energy.max() * 0.01]))
    assert abs(ft.brightness(y) - expected) < 1e-3 * expected
    chroma = librosa.feature.chroma_stft(y=y, sr=ft.ANALYSIS_RATE, n_fft=ft.N_FFT, hop_length=ft.STFT_HOP, tuning=0.0)
    assert np.allclose(ft.chroma_weights(y), chroma.sum(axis=1), rtol=1e-4)


def test_beat_tracker_equals_librosas_on_a_note_envelope():
    librosa = pytest.importorskip("librosa")
    from muse_cli.music.transcribe import Note

    notes = [Note(0.3 + 0.5 * i + 0.01 * np.sin(i), 0.3 + 0.5 * i + 0.3, 60 + i % 5, 50 + 7 * (i % 9)) for i in range(40)]
    env = ft.notes_envelope(notes, 21.0)
    bpm = ft.global_tempo(env)
    _, frames = librosa.beat.beat_track(onset_envelope=env, sr=ft.ANALYSIS_RATE, hop_length=ft.BEAT_HOP, bpm=bpm, trim=False)
    assert np.array_equal(ft.track_beats(env, ft.ANALYSIS_RATE / ft.BEAT_HOP, bpm, trim=False), frames)


def test_spectra_and_loudness_in_blocks_equal_the_whole_array():
    y = mono_of(render_wav(performance(beats=16)))
    whole = ft.Spectra()
    whole.add(y)
    whole.finish()
    cut = ft.Spectra()
    for start in range(0, len(y), 3001):
        cut.add(y[start : start + 3001])
    cut.finish()
    assert cut.mel_max == whole.mel_max and cut.brightness() == whole.brightness()
    assert np.allclose(cut.chroma, whole.chroma, rtol=1e-6)  # float32 matrix products, batched differently
    second = cut.onset_pass(cut.mel_max)
    for start in range(0, len(y), 777):
        second.add(y[start : start + 777])
    second.finish()
    assert np.allclose(second.onset_envelope(), ft.onset_envelope(y), rtol=1e-5, atol=1e-5)
    # The onset pass over the spilled mel spectra is the audio fed again, to the bit.
    again = ft.Spectra()
    for start in range(0, len(y), 3001):
        again.add(y[start : start + 3001])
    again.finish()
    refed = again.onset_pass(again.mel_max)
    for start in range(0, len(y), 3001):
        refed.add(y[start : start + 3001])
    refed.finish()
    assert np.array_equal(again.onsets().onset_envelope(), refed.onset_envelope())

    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((2, 44100 * 5)) * np.linspace(0.01, 1, 44100 * 5)
    stream = ft.LoudnessStream(44100)
    for start in range(0, stereo.shape[1], 10007):
        stream.add(stereo[:, start : start + 10007])
    power = ft.k_weighted_power(stereo, 44100)
    for name, (window, hop) in stream.windows.items():
        times, lufs = ft.windowed_loudness(power, 44100, window, hop)
        got_times, got = stream.curve(name)
        assert np.array_equal(got_times, times) and np.allclose(got, lufs, rtol=0, atol=1e-9)


def test_transcription_in_chunks_equals_the_whole_file():
    from muse_cli.music import transcribe as tr

    if not tr.available():
        pytest.skip(tr.unavailable_reason())
    y = mono_of(render_wav(performance(beats=24, pedal=True, legato=1.2)))
    post = tr.posteriors(y)
    whole = tr.notes_from_posteriors(post)
    stream = tr.PosteriorStream()
    for start in range(0, len(y), 5001):
        stream.add(y[start : start + 5001])
    stream.finish()
    try:
        again = stream.rows(0, stream.n_frames)
        assert np.array_equal(again.frame, post.frame) and np.array_equal(again.onset, post.onset)
        assert len(whole) > 20
        for chunk, lookahead in ((10**6, 860), (173, 30), (61, 4)):  # the last one must widen its windows
            assert tr.notes_from_stream(stream, chunk=chunk, lookahead=lookahead) == whole, (chunk, lookahead)
    finally:
        stream.close()


def test_no_librosa_or_numba_in_an_analysis_process(tmp_path):
    (tmp_path / "take.wav").write_bytes(render_wav(performance(beats=8)))
    code = ("import sys; from muse_cli.cli import run; rc = run(['analyze', 'take.wav', '-q', '--no-transcribe']); "
            "print(rc, 'librosa' in sys.modules, 'numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stderr

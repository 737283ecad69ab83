"""The `muse analyze` report: rendered performances with known tempo, dynamics and articulation."""

from __future__ import annotations

import io
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from _analysis_material import midi_bytes, performance, render_wav
from pydantic import ValidationError

from muse_cli.pipelines.analysis import analyze_source, plot
from muse_cli.contracts import AnalysisReport, AnalyzeRequest, AudioInput
from muse_cli.errors import InputError, RuntimeFailure
from muse_cli.music import transcribe as tr
from muse_cli.music.audio import mp3_supported

needs_model = pytest.mark.skipif(not tr.available(), reason=f"transcription unavailable: {tr.unavailable_reason()}")
DESCRIPTORS_ONLY = AnalyzeRequest(transcribe=False)
SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "analysis-schema.md"

PIECES = {  # 16 beats at 96 BPM: 10 s each
    "steady": dict(beats=16),
    "rubato": dict(beats=16, rubato=0.15),
    "crescendo": dict(beats=16, velocities=(25, 120)),
    "legato": dict(beats=16, legato=1.0),
    "staccato": dict(beats=16, legato=0.3),
    "pedal": dict(beats=16, pedal=True),
    "fast": dict(tempo=132, beats=24, seed=3),
}


@cache
def wav(piece: str) -> bytes:
    return render_wav(performance(**PIECES[piece]))


@cache
def report(piece: str, kind: str = "wav", transcribe: bool = True) -> AnalysisReport:
    data = wav(piece) if kind == "wav" else midi_bytes(performance(**PIECES[piece]))
    request = AnalyzeRequest() if transcribe else DESCRIPTORS_ONLY
    return analyze_source(data, request, name=f"{piece}.{kind}").report


# ------------------------------------------------------------------------------ measured values


@pytest.mark.parametrize("piece, bpm", [("steady", 96), ("fast", 132)])
def test_tempo_within_two_percent_from_audio_and_midi(piece, bpm):
    assert report(piece, transcribe=False).tempo_bpm.value == pytest.approx(bpm, rel=0.02)
    assert report(piece, "mid").tempo_bpm.value == pytest.approx(bpm, rel=0.02)


def test_rubato_reads_less_steady_than_a_steady_rendering():
    for kind in ("wav", "mid"):
        steady = report("steady", kind, transcribe=False).timing
        rubato = report("rubato", kind, transcribe=False).timing
        assert rubato.steadiness.value > 2 * steady.steadiness.value
        assert steady.steadiness.reading in ("very steady", "steady")
        assert np.ptp(rubato.tempo_curve.values) > np.ptp(steady.tempo_curve.values)


def test_crescendo_has_the_wider_dynamic_range_and_is_found():
    steady = report("steady", transcribe=False).loudness
    crescendo = report("crescendo", transcribe=False).loudness
    assert crescendo.dynamic_range.value > steady.dynamic_range.value + 6
    assert crescendo.crescendos.value >= 1 and steady.crescendos.value == 0
    assert crescendo.swells[0].kind == "crescendo" and crescendo.swells[0].size_db > 6
    assert crescendo.dynamic_range.unit == "dB" and crescendo.integrated.unit == "LUFS"


@needs_model
def test_legato_rendering_has_the_higher_legato_ratio():
    legato, staccato = report("legato").articulation, report("staccato").articulation
    assert legato.legato_ratio.value > staccato.legato_ratio.value + 0.2
    assert staccato.staccato_share.value > legato.staccato_share.value


def test_midi_articulation_is_exact():
    assert report("legato", "mid").articulation.legato_ratio.value == pytest.approx(1.0, abs=0.01)
    staccato = report("staccato", "mid").articulation
    assert staccato.legato_ratio.value == pytest.approx(0.3, abs=0.01)
    assert staccato.legato_ratio.reading == "staccato"


@needs_model
def test_pedal_rendering_sounds_more_overlapped():
    assert report("pedal").pedal.overlap_share.value > report("steady").pedal.overlap_share.value + 10


@needs_model
def test_audio_report_has_notes_key_and_transcription_method():
    r = report("steady")
    assert r.transcription == tr.METHOD
    assert r.key == "C major"
    assert r.notes.count.value == pytest.approx(24, abs=4)
    assert r.notes.lowest.value >= 48 and r.notes.highest.value <= 79
    assert r.notes.events is None  # only with notes=True


def test_midi_input_measures_notes_and_pedal_but_not_sound():
    r = report("pedal", "mid")
    assert r.source.kind == "midi" and r.transcription is None
    assert r.notes.count.value == 24 and r.key == "C major"
    assert r.pedal.pedal_down_share.value > 80
    assert r.loudness.integrated.value is None and r.timbre.brightness.value is None
    assert any("MIDI input" in w for w in r.warnings)
    assert report("steady", "mid").pedal.pedal_down_share.value == 0


def test_without_transcription_the_report_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv(tr.MODEL_ENV, str(tmp_path / "absent.onnx"))
    r = analyze_source(wav("steady"), AnalyzeRequest(), name="steady.wav").report
    assert r.transcription is None and r.notes.count.value is None
    assert r.articulation.legato_ratio.value is None
    assert any("no transcription" in w for w in r.warnings)
    assert r.key in ("C major", "A minor")  # from the chroma instead (relative keys share it)
    with pytest.raises(RuntimeFailure, match="transcription is unavailable"):
        analyze_source(wav("steady"), AnalyzeRequest(transcribe=True), name="steady.wav")


# ------------------------------------------------------------------------------ inputs & outputs


def _encoded(fmt: str, sr: int, channels: int) -> bytes:
    import soundfile as sf

    from muse_cli.music.synth import synthesize

    audio = synthesize(performance(beats=12), sample_rate=sr, stereo=channels == 2) * 2.0
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, sr, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt, sr, channels",
    [("WAV", 22050, 1), ("FLAC", 48000, 2), ("OGG", 32000, 2)]
    + ([("MP3", 44100, 2)] if mp3_supported() else []),
)
def test_formats_rates_and_channels(fmt, sr, channels):
    r = analyze_source(_encoded(fmt, sr, channels), DESCRIPTORS_ONLY, name=f"clip.{fmt.lower()}").report
    assert (r.source.sample_rate, r.source.channels) == (sr, channels)
    assert r.tempo_bpm.value == pytest.approx(96, rel=0.02)
    assert r.duration_s.value == pytest.approx(0.5 + 12 * 0.625, abs=0.5)


def test_path_and_audio_input_sources(tmp_path):
    path = tmp_path / "take.wav"
    path.write_bytes(wav("steady"))
    by_path = analyze_source(path, DESCRIPTORS_ONLY).report
    by_input = analyze_source(AudioInput(name="take.wav", data=wav("steady")), DESCRIPTORS_ONLY).report
    assert by_path.source.name == str(path) and by_input.source.name == "take.wav"
    assert by_path.tempo_bpm == by_input.tempo_bpm


def _wav_of(samples: np.ndarray, sr: int = 22050, float_wav: bool = False) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples.T, sr, format="WAV", subtype="FLOAT" if float_wav else "PCM_16")
    return buffer.getvalue()


BAD_INPUTS = {
    "zero-length": (b"", "empty"),
    "silent": (_wav_of(np.zeros((1, 22050), np.float32)), "silent"),
    "all-NaN": (_wav_of(np.full((1, 22050), np.nan, np.float32), float_wav=True), "NaN"),
    "corrupt header": (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40, "not a readable audio file"),
    "text named .wav": (b"this is not audio\n" * 20, "not a readable audio file"),
    "nine channels": (_wav_of(np.full((9, 2205), 0.1, np.float32)), "9 channels"),
    "garbage MIDI": (b"MThd\x00\x00\x00\x06garbage", "not a readable MIDI file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_input_error(case):
    data, message = BAD_INPUTS[case]
    with pytest.raises(InputError, match=message) as info:
        analyze_source(data, AnalyzeRequest(), name="input.wav" if "MIDI" not in case else "input.mid")
    assert "\n" not in str(info.value)


def test_missing_file_and_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        analyze_source(tmp_path / "absent.wav", AnalyzeRequest())
    with pytest.raises(InputError, match="is not a file"):
        analyze_source(tmp_path, AnalyzeRequest())


def test_over_max_duration_is_refused_for_audio_and_midi():
    request = AnalyzeRequest(max_duration=5)
    with pytest.raises(InputError, match=r"at most 5 s"):
        analyze_source(wav("steady"), request, name="long.wav")
    with pytest.raises(InputError, match=r"at most 5 s"):
        analyze_source(midi_bytes(performance(beats=16)), request, name="long.mid")


def test_request_validation():
    with pytest.raises(ValidationError, match="midi output needs the transcription"):
        AnalyzeRequest(midi=True, transcribe=False)
    with pytest.raises(ValidationError):
        AnalyzeRequest(max_duration=0)


@needs_model
def test_midi_notes_and_plot_outputs(tmp_path):
    from muse_cli.music.midi import load_midi

    analysis = analyze_source(wav("steady"), AnalyzeRequest(midi=True, notes=True, plot=True), name="s.wav")
    events = analysis.report.notes.events
    assert events is not None and len(events) == analysis.report.notes.count.value
    transcribed = load_midi(analysis.midi, "transcription.mid")
    assert len(transcribed.instruments[0].notes) == len(events)
    assert analysis.png.startswith(b"\x89PNG")
    written = plot(analysis, tmp_path / "s.png")
    assert written.read_bytes().startswith(b"\x89PNG")


def test_plot_of_midi_input_and_of_audio_without_notes(tmp_path):
    midi = analyze_source(midi_bytes(performance()), AnalyzeRequest(plot=True), name="p.mid")
    assert midi.png.startswith(b"\x89PNG")
    audio = analyze_source(wav("steady"), AnalyzeRequest(transcribe=False, plot=True), name="p.wav")
    assert plot(audio, tmp_path / "p.png").stat().st_size > 10_000


def test_midi_plot_has_no_empty_audio_panels():
    import struct

    from muse_cli.pipelines.analysis import plot_panels

    midi = analyze_source(midi_bytes(performance()), AnalyzeRequest(plot=True), name="p.mid")
    audio = analyze_source(wav("steady"), AnalyzeRequest(transcribe=False, plot=True), name="p.wav")
    assert plot_panels(midi) == ["tempo", "notes"]
    assert plot_panels(audio) == ["waveform", "loudness", "tempo", "notes"]
    height = lambda png: struct.unpack(">II", png[16:24])[1]  # noqa: E731  (PNG IHDR: width, height)
    assert height(midi.png) < 0.7 * height(audio.png)  # the panels are gone, not drawn empty


def test_tempo_axis_shows_a_steady_take_as_steady():
    from muse_cli.pipelines.analysis import tempo_limits

    lo, hi = tempo_limits([95.0, 96.5, 94.0, 97.0, 95.5])
    assert hi - lo >= 0.2 * 95.5 - 1e-9 and lo < 94 and hi > 97  # the wobble fills under a sixth of the axis
    assert (97 - 94) / (hi - lo) < 1 / 6
    lo, hi = tempo_limits([80.0, 90.0, 100.0, 110.0, 120.0])  # a real accelerando keeps the panel
    assert lo <= 80 and hi >= 120 and (120 - 80) / (hi - lo) > 0.8


def test_perceptual_scores_are_carried_for_audio_only():
    seen = []

    def perceptual(audio: np.ndarray, sr: int) -> dict:
        seen.append((audio.shape[0], sr))
        return {"dimensions": ["Timing_Stable_Unstable"], "mean": [0.4]}

    r = analyze_source(wav("steady"), DESCRIPTORS_ONLY, perceptual, name="s.wav").report
    assert r.perceptual == {"dimensions": ["Timing_Stable_Unstable"], "mean": [0.4]}
    assert seen == [(2, 44100)]
    r = analyze_source(midi_bytes(performance()), AnalyzeRequest(), perceptual, name="p.mid").report
    assert r.perceptual is None and any("perceptual" in w for w in r.warnings)


# ----------------------------------------------------------------------------------- the schema


REQUIRED_TOP = {
    "schema_version", "source", "duration_s", "tempo_bpm", "key", "key_confidence", "loudness", "timing",
    "articulation", "pedal", "timbre", "notes", "perceptual", "transcription", "warnings",
}


def _measures(node, path=""):
    if isinstance(node, dict) and {"value", "unit"} <= node.keys():
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _measures(value, f"{path}.{key}" if path else key)


def test_report_json_has_every_key_with_units():
    data = json.loads(json.dumps(report("crescendo", transcribe=False).model_dump(mode="json")))
    assert REQUIRED_TOP <= data.keys()
    assert data["schema_version"] == "1.1"
    measures = dict(_measures(data))
    assert len(measures) >= 20
    assert all(m["unit"] for m in measures.values())
    assert measures["duration_s"]["unit"] == "s" and measures["tempo_bpm"]["unit"] == "BPM"
    assert re.fullmatch(r"[A-G][b#]? (major|minor)", data["key"])


def test_schema_document_names_every_report_key():
    doc = SCHEMA_DOC.read_text()
    data = report("crescendo", transcribe=False).model_dump(mode="json")

    def keys(node, prefix=""):
        for key, value in node.items():
            yield f"{prefix}{key}"
            if isinstance(value, dict) and not {"value", "unit"} <= value.keys():
                yield from keys(value, f"{prefix}{key}.")

    missing = [k for k in keys(data) if f"`{k}`" not in doc]
    assert missing == []

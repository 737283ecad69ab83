"""`muse analyze` end to end on audio the test renders itself."""

from __future__ import annotations

import json
from pathlib import Path

import pretty_midi
import pytest

from muse_cli.contracts import RenderRequest
from muse_cli.music.render import render_to_bytes


@pytest.fixture
def performance(tmp_path):
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(0)
    for i, pitch in enumerate([60, 62, 64, 65, 67, 65, 64, 62] * 2):
        start = i * 0.6
        piano.notes.append(pretty_midi.Note(velocity=70 + i, pitch=pitch, start=start, end=start + 0.5))
    pm.instruments.append(piano)
    audio, _ = render_to_bytes(pm, RenderRequest(sample_rate=22050, stereo=False))
    path = tmp_path / "take.wav"
    path.write_bytes(audio)
    return path


def test_analyze_writes_report_and_prints_paths(run_cli, performance, tmp_path):
    code, out, err = run_cli("analyze", str(performance), "--midi")
    assert code == 0, err
    paths = out.split()
    assert paths[0].endswith("take.analysis.json") and paths[1].endswith("take.transcription.mid")
    report = json.loads((tmp_path / "take.analysis.json").read_text())
    assert report["schema_version"] and report["perceptual"] is None
    assert report["muse"]["command"] == "analyze" and report["muse"]["request"]["midi"] is True
    assert abs(report["tempo_bpm"]["value"] - 100) <= 2
    assert "perceptual" in err and "absent" in err  # the table says how to get the 19-D scores


def test_a_recording_and_its_midi_get_reports_named_apart(run_cli, performance, tmp_path):
    import shutil

    folder = tmp_path / "session"
    folder.mkdir()
    shutil.copy(performance, folder / "take.wav")
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0, end=1))
    pm.instruments.append(piano)
    pm.write(str(folder / "take.mid"))
    code, out, err = run_cli("analyze", str(folder), "--no-transcribe", "-q")
    assert code == 0, err
    assert sorted(Path(p).name for p in out.split()) == ["take-mid.analysis.json", "take-wav.analysis.json"]
    assert json.loads((folder / "take-mid.analysis.json").read_text())["source"]["kind"] == "midi"


def test_analyze_json_prints_the_report(run_cli, performance):
    code, out, _ = run_cli("analyze", str(performance), "--json", "--no-transcribe", "--out-dir", "reports")
    assert code == 0
    report = json.loads(out)
    assert {"duration_s", "tempo_bpm", "key", "loudness", "timing", "articulation", "notes", "perceptual"} <= set(report)
    assert report["outputs"][0].startswith("reports/")


def test_multi_file_call_keeps_going_and_exits_1(run_cli, performance, tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio")
    code, out, err = run_cli("analyze", str(tmp_path / "notes.wav"), str(performance), "--no-transcribe", "-q")
    assert code == 1
    assert out.strip().endswith("take.analysis.json")
    assert "notes.wav" in err and "1 of 2 files" in err


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing.wav", "no such file"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "has no audio"),
    (lambda d: (d / "zero.wav").write_bytes(b"") or d / "zero.wav", "zero.wav"),
])
def test_single_bad_input_exits_2(run_cli, tmp_path, make, needle):
    code, out, err = run_cli("analyze", str(make(tmp_path)))
    assert code == 2 and out == "" and needle in err


def test_explicit_missing_checkpoint_is_an_error(run_cli, performance):
    code, _, err = run_cli("analyze", str(performance), "--no-transcribe", "--checkpoint", "/nope/model.msgpack")
    assert code in (1, 2) and "checkpoint" in err


def test_missing_analysis_packages_are_listed_in_one_line_before_decoding(run_cli, performance, monkeypatch):
    """Without the [analysis] extra, audio analysis names every missing package at once (exit 1),
    instead of an 'unexpected ModuleNotFoundError'."""
    from muse_cli.ops import readiness

    real = readiness._missing
    monkeypatch.setattr(readiness, "_missing", lambda m: m in ("soxr", "matplotlib") or real(m))
    code, out, err = run_cli("analyze", str(performance), "--plot", "--backend", "local")
    assert code == 1 and out == ""
    assert "soxr, matplotlib not installed" in err and "pip install 'muse-cli[analysis]'" in err
    assert "unexpected" not in err
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(velocity=80, pitch=60 + i, start=i * 0.5, end=i * 0.5 + 0.4) for i in range(12)]
    pm.instruments.append(piano)
    midi = performance.with_suffix(".mid")
    pm.write(str(midi))
    code, out, err = run_cli("analyze", str(midi), "--backend", "local")  # MIDI needs neither
    assert code == 0, err

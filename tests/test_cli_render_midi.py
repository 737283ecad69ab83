"""`muse render` and `muse gen midi --engine midi-llm` end to end, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pretty_midi
import pytest
import soundfile as sf


def _midi(path: Path, notes: int = 4) -> Path:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    for i in range(notes):
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=60 + i, start=0.5 * i, end=0.5 * i + 0.4))
    pm.instruments.append(piano)
    pm.write(str(path))
    return path


def test_render_writes_audio_next_to_the_midi(run_cli, tmp_path):
    src = _midi(tmp_path / "tune.mid")
    code, out, err = run_cli("render", str(src), "--format", "flac", "--mono", "--sample-rate", "22050")
    assert code == 0, err
    (path,) = [Path(p) for p in out.split()]
    assert path == tmp_path / "tune.flac"
    audio, sr = sf.read(path)
    assert sr == 22050 and audio.ndim == 1 and 1.9 < len(audio) / sr < 2.3  # 1.9 s of notes + release
    meta = json.loads((tmp_path / "tune.render.json").read_text())
    assert meta["engine"] == "builtin" and meta["request"]["format"] == "flac"
    assert meta["outputs"] == ["tune.flac"]


def test_render_after_gen_midi_keeps_both_sidecars_and_the_stem(run_cli, tmp_path):
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--seed", "4", "-o", "piece.mid", "-q")
    assert code == 0, err
    before = (tmp_path / "piece.json").read_bytes()
    code, out, err = run_cli("render", "piece.mid", "-q")
    assert code == 0, err
    assert out.split() == ["piece.wav"]
    assert (tmp_path / "piece.json").read_bytes() == before
    assert json.loads((tmp_path / "piece.render.json").read_text())["command"] == "render"
    code, out, err = run_cli("render", "piece.mid", "-q", "--force")  # --force replaces the render, not the MIDI's record
    assert code == 0, err
    assert out.split() == ["piece.wav"]
    assert (tmp_path / "piece.json").read_bytes() == before


def test_render_output_name_sets_the_format_and_a_clash_writes_nothing(run_cli, tmp_path):
    src = _midi(tmp_path / "tune.mid")
    code, out, err = run_cli("render", str(src), "-o", "take.flac", "-q")
    assert code == 0, err
    assert out.split() == ["take.flac"] and sf.info(tmp_path / "take.flac").format == "FLAC"
    for args in (["-o", "other.flac", "--format", "wav"], ["-o", "other.mp4"]):
        code, out, err = run_cli("render", str(src), *args)
        assert code == 2 and out == "" and "-o/--output" in err
    assert not list(tmp_path.glob("other*"))
    code, _, err = run_cli("gen", "midi", "--engine", "etude", "-o", "piece.wav")
    assert code == 2 and "writes .mid" in err


@pytest.mark.parametrize(
    "content,needle",
    [(b"", "empty"), (b"MThd\x00\x00\x00\x06garbage", "tune.mid"), (None, "no notes"), ("missing", "tune.mid")],
)
def test_render_rejects_bad_midi_with_exit_2(run_cli, tmp_path, content, needle):
    path = tmp_path / "tune.mid"
    if content is None:
        pretty_midi.PrettyMIDI().write(str(path))  # valid file, no notes
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, out, err = run_cli("render", str(path))
    assert code == 2 and out == "" and needle in err
    assert not list(tmp_path.glob("*.wav"))


def test_render_bad_options_exit_2(run_cli, tmp_path):
    src = _midi(tmp_path / "tune.mid")
    assert run_cli("render", str(src), "--soundfont", "nope.sf2")[0] == 2
    assert run_cli("render", str(src), "--format", "mp4")[0] == 2
    assert run_cli("render", str(src), "--sample-rate", "100")[0] == 2


def test_gen_midi_with_midi_llm_on_a_tiny_model(run_cli, tmp_path):
    import torch
    from test_midi_llm import make_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = tmp_path / "tiny-midi-llm"
        make_tiny_model(model)
        code, out, err = run_cli("gen", "midi", "a calm piano waltz", "--engine", "midi-llm", "--backend", "local",
                                 "--model", str(model), "--max-tokens", "60", "--seed", "4", "--json")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    result = json.loads(out)
    assert result["engine"] == "midi-llm" and result["seed"] == 4
    assert result["metadata"]["noteCount"] > 0 and result["metadata"]["skipped_tokens"] == 0
    midi = pretty_midi.PrettyMIDI(result["outputs"][0])
    assert sum(len(i.notes) for i in midi.instruments) == result["metadata"]["noteCount"]
    assert Path(result["outputs"][0]).name == "a-calm-piano-waltz.mid"

"""load_midi rejects unusable input with one line; midi_metadata describes a hand-built MIDI."""

from __future__ import annotations

import io

import mido
import pretty_midi
import pytest

from muse_cli.errors import InputError
from muse_cli.music.midi import load_midi, midi_metadata, midi_to_bytes


def _c_major_midi(with_drums: bool = False) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI(initial_tempo=90.0)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0.0))
    piano = pretty_midi.Instrument(program=0)
    # A C major scale up and down with a long tonic triad: unmistakably C major.
    t = 0.0
    for pitch in [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60]:
        piano.notes.append(pretty_midi.Note(80, pitch, t, t + 0.5))
        t += 0.5
    for pitch in (48, 55, 64):
        piano.notes.append(pretty_midi.Note(70, pitch, t, t + 2.0))
    pm.instruments.append(piano)
    violin = pretty_midi.Instrument(program=40)
    violin.notes.append(pretty_midi.Note(60, 67, 0.0, 1.0))
    pm.instruments.append(violin)
    if with_drums:
        drums = pretty_midi.Instrument(program=0, is_drum=True)
        # Loud, long "pitches" that would pull the key estimate to F# if drums were counted.
        for i in range(8):
            drums.notes.append(pretty_midi.Note(100, 42 + (i % 2) * 12, i * 1.0, i * 1.0 + 0.9))
        pm.instruments.append(drums)
    return pm


def test_round_trip_and_metadata_values():
    data = midi_to_bytes(_c_major_midi())
    assert data.startswith(b"MThd")
    meta = midi_metadata(load_midi(data), tokens_generated=12, generation_s=0.5)
    assert meta.noteCount == 15 + 3 + 1
    assert meta.duration == pytest.approx(15 * 0.5 + 2.0, abs=1e-3)
    assert meta.tempo == pytest.approx(90.0, abs=1e-2)
    assert meta.key == "C major"
    assert 0 < meta.key_confidence <= 1
    assert meta.time_signature == "3/4"
    assert meta.instruments == ["Acoustic Grand Piano", "Violin"]
    assert meta.tokens_generated == 12 and meta.generation_s == 0.5 and meta.skipped_tokens is None


def test_drums_are_named_and_do_not_sway_the_key():
    meta = midi_metadata(load_midi(midi_to_bytes(_c_major_midi(with_drums=True))))
    assert meta.key == "C major"
    assert "Drums" in meta.instruments


def test_defaults_without_tempo_or_time_signature():
    # Built with mido: pretty_midi itself always writes a tempo and a 4/4 time signature.
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.Message("program_change", program=73, time=0))
    track.append(mido.Message("note_on", note=69, velocity=90, time=0))
    track.append(mido.Message("note_off", note=69, velocity=0, time=960))
    mid.tracks.append(track)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    meta = midi_metadata(load_midi(buffer.getvalue()))
    assert meta.tempo == pytest.approx(120.0, abs=1e-2)
    assert meta.duration == pytest.approx(1.0, abs=1e-3)  # two beats at the default 120 BPM
    assert meta.time_signature is None
    assert meta.instruments == ["Flute"]


def test_load_from_path(tmp_path):
    path = tmp_path / "piece.mid"
    path.write_bytes(midi_to_bytes(_c_major_midi()))
    assert len(load_midi(path).instruments) == 2
    assert len(load_midi(str(path)).instruments) == 2


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty"),
        (b"this is not a midi file at all", "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01", "not a readable MIDI file"),  # truncated header
        (None, "no notes"),
    ],
)
def test_load_rejects_unusable_files(tmp_path, content, expected):
    if content is None:
        content = midi_to_bytes(pretty_midi.PrettyMIDI())
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_midi(path)
    message = str(err.value)
    assert expected in message and "bad.mid" in message and "\n" not in message


def test_load_rejects_corrupt_bytes_after_a_valid_header():
    good = midi_to_bytes(_c_major_midi())
    with pytest.raises(InputError, match="upload.mid"):
        load_midi(good[: len(good) // 2], name="upload.mid")


def test_load_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="not found: .*nope.mid"):
        load_midi(tmp_path / "nope.mid")
    with pytest.raises(InputError, match="folder"):
        load_midi(tmp_path)

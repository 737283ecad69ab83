"""Small piano performances with known tempo, notes and dynamics, built as MIDI for the analysis tests."""

from __future__ import annotations

import io

import numpy as np
import pretty_midi

C_MAJOR_DEGREES = (0, 2, 4, 5, 7, 9, 11)


def performance(
    tempo: float = 96.0,
    beats: int = 24,
    legato: float = 0.9,
    velocities: tuple[int, int] = (80, 80),
    rubato: float = 0.0,
    chords: bool = True,
    pedal: bool = False,
    seed: int = 0,
) -> pretty_midi.PrettyMIDI:
    """A C-major melody, one note per beat, with a bass note on every other beat.

    legato: sounding length as a fraction of the beat; velocities: first and last velocity (a ramp
    between them makes a crescendo); rubato: depth of a slow sinusoidal tempo swing (0.15 = +-15 %).
    """
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0, name="piano")
    period = 60.0 / tempo
    t = 0.5
    for i in range(beats):
        swing = 1.0 + rubato * np.sin(2 * np.pi * i / 8)
        length = period * swing
        velocity = int(round(np.interp(i, [0, beats - 1], velocities)))
        degree = int(rng.integers(0, 10))
        pitch = 60 + 12 * (degree // 7) + C_MAJOR_DEGREES[degree % 7]
        piano.notes.append(pretty_midi.Note(velocity, pitch, t, t + legato * length))
        if chords and i % 2 == 0:
            bass = 48 + C_MAJOR_DEGREES[int(rng.choice([0, 3, 4]))]
            piano.notes.append(pretty_midi.Note(max(1, velocity - 10), bass, t, t + legato * 2 * length))
        t += length
    if pedal:
        for bar in range(0, beats, 4):
            start = 0.5 + bar * period
            piano.control_changes.append(pretty_midi.ControlChange(64, 100, start + 0.05))
            piano.control_changes.append(pretty_midi.ControlChange(64, 0, start + 4 * period - 0.02))
    pm.instruments.append(piano)
    return pm


def render_wav(pm: pretty_midi.PrettyMIDI, sample_rate: int = 44100, stereo: bool = True) -> bytes:
    from muse_cli.music.audio import encode_audio
    from muse_cli.music.synth import synthesize

    audio = synthesize(pm, sample_rate=sample_rate, stereo=stereo)
    audio = audio / max(1e-9, float(np.abs(audio).max())) * 0.8
    return encode_audio(audio, sample_rate, "wav")


def midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()

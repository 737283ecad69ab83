"""MIDI in and out: load user files safely, serialise, and describe a MIDI as MidiMetadata."""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import pretty_midi

from muse_cli.contracts import MidiMetadata
from muse_cli.errors import InputError
from muse_cli.music.theory import duration_weighted_pitch_classes, estimate_key

# What mido and pretty_midi raise on bytes that are not a well-formed MIDI file: truncated chunks
# (EOFError), a missing MThd header (OSError), bad running status or meta lengths (ValueError,
# KeyError, IndexError), and a file with no tracks at all (ValueError from max() of nothing).
_PARSE_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError, ZeroDivisionError)


def load_midi(source: bytes | str | os.PathLike, name: str | None = None) -> pretty_midi.PrettyMIDI:
    """Parse a MIDI file (path or raw bytes); any unusable input becomes one InputError naming it.

    `name` labels bytes in messages (e.g. the upload's file name); paths name themselves.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "MIDI data"
        data = bytes(source)
    else:
        label = name or os.fspath(source)
        try:
            with open(source, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise InputError(f"MIDI file not found: {label}") from None
        except IsADirectoryError:
            raise InputError(f"{label} is a folder, not a MIDI file") from None
        except OSError as exc:
            raise InputError(f"cannot read MIDI file {label}: {exc.strerror or exc}") from None
    if not data:
        raise InputError(f"{label} is empty: expected a Standard MIDI File (.mid)")
    if not data.startswith(b"MThd"):
        raise InputError(f"{label} is not a MIDI file (no MThd header)")
    try:
        with warnings.catch_warnings():
            # pretty_midi warns about meta events on non-zero tracks; those files still load fine.
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except _PARSE_ERRORS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{label} is not a readable MIDI file: {detail}") from None
    if not any(inst.notes for inst in pm.instruments):
        raise InputError(f"{label} contains no notes")
    return pm


def midi_to_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def midi_metadata(pm: pretty_midi.PrettyMIDI, *, key: str | None = None, **extra: Any) -> MidiMetadata:
    """Describe a MIDI: note count, length, first tempo, key, time signature, instruments.

    `key` is the key the piece was composed in, where the engine knows it; otherwise the key is
    estimated from the notes, with its confidence (a short piece can read as a related key).
    `extra` carries generation facts (tokens_generated, skipped_tokens, generation_s).
    """
    notes = [n for inst in pm.instruments for n in inst.notes]
    _, tempi = pm.get_tempo_changes()
    tempo = float(tempi[0]) if len(tempi) else 120.0
    pitched = [(n.pitch, n.end - n.start) for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    confidence = None
    if key is None and pitched:
        estimated, confidence = estimate_key(duration_weighted_pitch_classes(pitched))
        key = estimated.name
    ts = pm.time_signature_changes[0] if pm.time_signature_changes else None
    instruments = [
        "Drums" if inst.is_drum else pretty_midi.program_to_instrument_name(inst.program) for inst in pm.instruments
    ]
    return MidiMetadata(
        noteCount=len(notes),
        duration=round(float(pm.get_end_time()), 3),
        tempo=round(tempo, 3),
        key=key or "unknown",
        key_confidence=confidence,
        time_signature=f"{ts.numerator}/{ts.denominator}" if ts else None,
        instruments=list(dict.fromkeys(instruments)),
        **extra,
    )

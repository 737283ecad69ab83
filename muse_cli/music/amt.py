"""Anticipatory Music Transformer (AMT) arrival-time tokens <-> MIDI.

The vocabulary of MIDI-LLM's music tokens (model id = AMT token + 128256). A note is a triple

    (TIME_OFFSET + onset,  DUR_OFFSET + duration,  NOTE_OFFSET + 128 * instrument + pitch)

with onset and duration in 10 ms ticks, the onset absolute from the start of the sequence and
non-decreasing along it (arrival-time order); instrument 0..127 is the General MIDI program and
128 means drums (channel 10). Rest triples pad silences, separator triples join sequences, and a
second block of the same layout holds anticipated "controls", which decode plays as notes.

`decode` follows the reference implementation (jthickstun/anticipation `events_to_midi`) on
well-formed input and, unlike it, never raises on malformed input: anything that does not form a
valid triple is skipped one token at a time until the stream realigns, and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from muse_cli.errors import InputError

if TYPE_CHECKING:
    import pretty_midi

TIME_RESOLUTION = 100  # ticks per second: 10 ms
MAX_TIME_IN_SECONDS = 100
MAX_DURATION_IN_SECONDS = 10
MAX_TIME = TIME_RESOLUTION * MAX_TIME_IN_SECONDS  # 10000 onset ticks
MAX_DUR = TIME_RESOLUTION * MAX_DURATION_IN_SECONDS  # 1000 duration ticks
MAX_PITCH = 128
MAX_INSTR = 129  # 128 GM programs + drums
DRUMS = 128
MAX_NOTE = MAX_PITCH * MAX_INSTR  # 16512

TIME_OFFSET = 0
DUR_OFFSET = TIME_OFFSET + MAX_TIME  # 10000
NOTE_OFFSET = DUR_OFFSET + MAX_DUR  # 11000
REST = NOTE_OFFSET + MAX_NOTE  # 27512
CONTROL_OFFSET = REST + 1  # 27513
ATIME_OFFSET = CONTROL_OFFSET
ADUR_OFFSET = ATIME_OFFSET + MAX_TIME  # 37513
ANOTE_OFFSET = ADUR_OFFSET + MAX_DUR  # 38513
SPECIAL_OFFSET = ANOTE_OFFSET + MAX_NOTE  # 55025
SEPARATOR = SPECIAL_OFFSET
AUTOREGRESS = SPECIAL_OFFSET + 1  # 55026: the flag MIDI-LLM's prompt ends with
ANTICIPATE = SPECIAL_OFFSET + 2
VOCAB_SIZE = ANTICIPATE + 1  # 55028

DEFAULT_VELOCITY = 72  # the tokens carry no velocity; the reference writes every note at 72

# Triple kinds found by the scanner (anticipated controls are folded onto events first: see decode).
_INVALID, _EVENT, _REST, _SEPARATOR = 0, 1, 2, 4


@dataclass(frozen=True)
class DecodeStats:
    """What a decode found. `skipped` counts tokens that were not part of any valid triple;
    `controls` counts the notes (included in `notes`) played from anticipated control tokens."""

    notes: int
    skipped: int
    rests: int = 0
    controls: int = 0
    separators: int = 0


def _triple_kinds(a: np.ndarray) -> np.ndarray:
    """Kind of the triple starting at each index (the last two indices start no triple)."""
    n = len(a)
    kinds = np.zeros(n, dtype=np.int8)
    if n < 3:
        return kinds
    t, d, x = a[:-2], a[1:-1], a[2:]
    time_ok = (t >= TIME_OFFSET) & (t < DUR_OFFSET)
    dur_ok = (d >= DUR_OFFSET) & (d < NOTE_OFFSET)
    k = kinds[:-2]
    k[time_ok & dur_ok & (x >= NOTE_OFFSET) & (x < REST)] = _EVENT
    k[time_ok & dur_ok & (x == REST)] = _REST
    k[(t == SEPARATOR) & (d == SEPARATOR) & (x == SEPARATOR)] = _SEPARATOR
    return kinds


def _triple_starts(kinds: np.ndarray, n: int, first: int) -> np.ndarray:
    """Start index of every triple a left-to-right scan accepts; a bad token is skipped alone."""
    aligned = kinds[first:n - 2:3]
    if (n - first) % 3 == 0 and aligned.all():
        return np.arange(first, n, 3)  # the common case: a clean stream, no scan needed
    starts = []
    k = kinds.tolist()
    i, last = first, n - 2
    while i < last:
        if k[i]:
            starts.append(i)
            i += 3
        else:
            i += 1
    return np.asarray(starts, dtype=np.int64)


def _as_array(tokens: Iterable[int]) -> np.ndarray:
    if isinstance(tokens, np.ndarray):
        return tokens.astype(np.int64, copy=False).ravel()
    values = tokens if isinstance(tokens, (list, tuple)) else list(tokens)
    try:
        return np.asarray(values, dtype=np.int64).ravel()
    except (OverflowError, TypeError, ValueError):
        # Ids no int64 holds (or not integers at all) can only be garbage: mark them invalid.
        def clean(t: object) -> int:
            try:
                v = int(t)  # type: ignore[call-overload]
            except (TypeError, ValueError, OverflowError):
                return -1
            return v if -(2**62) < v < 2**62 else -1

        return np.asarray([clean(t) for t in values], dtype=np.int64)


def decode_with_stats(tokens: Iterable[int]) -> tuple["pretty_midi.PrettyMIDI", DecodeStats]:
    """AMT event tokens (0..55027) -> (PrettyMIDI, DecodeStats). Never raises on bad tokens.

    Anticipated controls (27513..55024) are played as notes, as the reference does: its
    `events_to_compound` first moves every token at or above CONTROL_OFFSET, separators aside, down
    by CONTROL_OFFSET "for synthesis" (anticipation/convert.py lines 297-299, called by
    `events_to_midi`, line 338), so a control triple becomes the note it anticipates, on the same
    timeline. MIDI-LLM's vLLM sampling allows them (slSeanWU/MIDI-LLM midi_llm/utils.py line 53,
    `ALLOWED_TOKEN_IDS` = AMT 0..55025, passed at generate_vllm.py line 68) and it writes the MIDI
    with that `events_to_midi` (utils.py line 227, `save_generation`). `controls` counts how many of
    the `notes` held a control token.

    Rules beyond the reference: misaligned, truncated or out-of-slot tokens are skipped and
    counted; rest triples are dropped; a separator triple starts a new sequence placed after the
    end of the previous one (as the reference does); one leading AUTOREGRESS/ANTICIPATE flag is
    accepted silently; notes of zero duration last one tick.
    """
    import pretty_midi

    raw = _as_array(tokens)
    n = len(raw)
    first = 1 if n and raw[0] in (AUTOREGRESS, ANTICIPATE) else 0
    is_control = (raw >= CONTROL_OFFSET) & (raw < SPECIAL_OFFSET)
    a = np.where(is_control, raw - CONTROL_OFFSET, raw)
    kinds = _triple_kinds(a)
    starts = _triple_starts(kinds, n, first)
    kind = kinds[starts]
    skipped = n - first - 3 * len(starts)

    is_event = kind == _EVENT
    is_sep = kind == _SEPARATOR
    ev = starts[is_event]
    onset = a[ev] - TIME_OFFSET
    dur = a[ev + 1] - DUR_OFFSET
    code = a[ev + 2] - NOTE_OFFSET

    if is_sep.any():
        # Each separator starts a new sequence at the end of the previous one's last note.
        segment = np.cumsum(is_sep)[is_event]
        n_seg = int(segment.max(initial=0)) + 1
        seg_end = np.zeros(n_seg, dtype=np.int64)
        np.maximum.at(seg_end, segment, onset + dur)
        offsets = np.concatenate(([0], np.cumsum(seg_end)[:-1]))
        onset = onset + offsets[segment]

    pm = pretty_midi.PrettyMIDI()
    if len(ev):
        instr = code // MAX_PITCH
        pitch = code % MAX_PITCH
        start = onset / TIME_RESOLUTION
        end = (onset + np.maximum(dur, 1)) / TIME_RESOLUTION
        order = np.argsort(onset, kind="stable")
        instr, pitch, start, end = instr[order], pitch[order], start[order], end[order]
        codes, first_idx = np.unique(instr, return_index=True)
        for c in codes[np.argsort(first_idx, kind="stable")].tolist():  # tracks in order of entry
            sel = instr == c
            inst = pretty_midi.Instrument(program=0 if c == DRUMS else c, is_drum=c == DRUMS,
                                          name="Drums" if c == DRUMS else pretty_midi.program_to_instrument_name(c))
            Note = pretty_midi.Note
            inst.notes = [Note(DEFAULT_VELOCITY, p, s, e)
                          for p, s, e in zip(pitch[sel].tolist(), start[sel].tolist(), end[sel].tolist())]
            pm.instruments.append(inst)

    stats = DecodeStats(
        notes=int(len(ev)),
        skipped=int(skipped),
        rests=int((kind == _REST).sum()),
        controls=int((is_control[ev] | is_control[ev + 1] | is_control[ev + 2]).sum()),
        separators=int(is_sep.sum()),
    )
    return pm, stats


def decode(tokens: Iterable[int]) -> "pretty_midi.PrettyMIDI":
    """AMT event tokens -> PrettyMIDI (see `decode_with_stats` for the rules)."""
    return decode_with_stats(tokens)[0]


def encode(midi: "pretty_midi.PrettyMIDI | str | os.PathLike[str]", *, truncate: bool = False) -> list[int]:
    """PrettyMIDI (or a MIDI file path) -> AMT event tokens in arrival-time order.

    Onsets and durations are rounded to 10 ms; durations are clipped to 9.99 s (the vocabulary's
    longest). Onsets must be under 100 s: a longer piece raises InputError unless `truncate`,
    which drops the notes starting later. Velocities, tempo and controllers are not encoded.
    """
    import pretty_midi

    if not isinstance(midi, pretty_midi.PrettyMIDI):
        path = os.fspath(midi)
        try:
            midi = pretty_midi.PrettyMIDI(path)
        except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
            raise InputError(f"cannot read MIDI file {path!r}: {exc}") from exc

    rows = []
    for inst in midi.instruments:
        code = DRUMS if inst.is_drum else int(inst.program)
        for note in inst.notes:
            onset = round(TIME_RESOLUTION * note.start)
            dur = min(max(round(TIME_RESOLUTION * (note.end - note.start)), 0), MAX_DUR - 1)
            rows.append((onset, code, int(note.pitch), dur))
    if not rows:
        return []
    arr = np.asarray(rows, dtype=np.int64)
    late = arr[:, 0] >= MAX_TIME
    if late.any():
        if not truncate:
            raise InputError(
                f"MIDI has notes starting at {arr[late, 0].max() / TIME_RESOLUTION:.2f} s: the AMT vocabulary "
                f"encodes onsets up to {(MAX_TIME - 1) / TIME_RESOLUTION:.2f} s (use truncate=True to drop the rest)"
            )
        arr = arr[~late]
    arr = arr[np.lexsort((arr[:, 2], arr[:, 1], arr[:, 0]))]  # by onset, then instrument, then pitch
    out = np.empty((len(arr), 3), dtype=np.int64)
    out[:, 0] = TIME_OFFSET + arr[:, 0]
    out[:, 1] = DUR_OFFSET + arr[:, 3]
    out[:, 2] = NOTE_OFFSET + MAX_PITCH * arr[:, 1] + arr[:, 2]
    return out.ravel().tolist()

"""Keys, scales and key finding: the small amount of theory every engine shares."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np

from muse_cli.errors import InputError

Mode = Literal["major", "minor"]

# Spelling used when printing a key: the conventional key-signature names.
_MAJOR_NAMES = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
_MINOR_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"]
_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)
HARMONIC_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 11)

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

_KEY_RE = re.compile(
    r"^\s*([A-Ga-g])\s*(#|b|♯|♭|sharp|flat|-sharp|-flat)?\s*"
    r"(m|min|minor|maj|major|M)?\s*$"
)


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11, C = 0
    mode: Mode

    @property
    def name(self) -> str:
        names = _MAJOR_NAMES if self.mode == "major" else _MINOR_NAMES
        return f"{names[self.tonic]} {self.mode}"

    @property
    def short(self) -> str:
        names = _MAJOR_NAMES if self.mode == "major" else _MINOR_NAMES
        return names[self.tonic] + ("m" if self.mode == "minor" else "")

    @property
    def steps(self) -> tuple[int, ...]:
        return MAJOR_STEPS if self.mode == "major" else NATURAL_MINOR_STEPS

    def pitch_classes(self, harmonic: bool = False) -> frozenset[int]:
        steps = HARMONIC_MINOR_STEPS if (harmonic and self.mode == "minor") else self.steps
        return frozenset((self.tonic + s) % 12 for s in steps)

    def degree_pc(self, degree: int) -> int:
        """Pitch class of a scale degree (0-based, wraps past the octave)."""
        return (self.tonic + self.steps[degree % 7]) % 12

    @property
    def relative(self) -> "Key":
        if self.mode == "major":
            return Key((self.tonic + 9) % 12, "minor")
        return Key((self.tonic + 3) % 12, "major")

    def __str__(self) -> str:
        return self.name


ALL_KEYS: tuple[Key, ...] = tuple(Key(pc, m) for m in ("major", "minor") for pc in range(12))


def parse_key(text: str) -> Key:
    """Parse 'C', 'F#m', 'Bb major', 'c minor', 'Eb', 'G# min' into a Key.

    A lowercase single letter alone ('a') means major, like an uppercase one: minor must be said.
    """
    m = _KEY_RE.match(text or "")
    if not m:
        raise InputError(
            f"unknown key {text!r}: use a note name with optional #/b and m/minor, e.g. C, F#m, Bb major"
        )
    letter, accidental, quality = m.groups()
    pc = _LETTER_PC[letter.upper()]
    if accidental:
        pc += 1 if accidental in ("#", "♯", "sharp", "-sharp") else -1
    mode: Mode = "minor" if quality in ("m", "min", "minor") else "major"
    return Key(pc % 12, mode)


def key_profile_scores(pitch_class_weights: Iterable[float]) -> np.ndarray:
    """Pearson correlation of a 12-bin pitch-class histogram with all 24 key profiles (ALL_KEYS order)."""
    w = np.asarray(list(pitch_class_weights), dtype=float)
    if w.shape != (12,):
        raise ValueError("pitch-class weights must have 12 bins")
    scores = np.zeros(24)
    if not np.any(w) or np.allclose(w, w[0]):
        return scores
    for i, key in enumerate(ALL_KEYS):
        profile = _KK_MAJOR if key.mode == "major" else _KK_MINOR
        scores[i] = np.corrcoef(w, np.roll(profile, key.tonic))[0, 1]
    return scores


def estimate_key(pitch_class_weights: Iterable[float]) -> tuple[Key, float]:
    """Krumhansl-Schmuckler key finding. Returns (key, confidence in 0..1).

    Confidence is the gap between the best and the runner-up correlation, scaled so that a clear
    tonal centre reads near 1 and an ambiguous one (relative keys tied) near 0.
    """
    scores = key_profile_scores(pitch_class_weights)
    order = np.argsort(scores)[::-1]
    best, second = scores[order[0]], scores[order[1]]
    if best <= 0:
        return Key(0, "major"), 0.0
    confidence = float(np.clip((best - second) / 0.2, 0.0, 1.0)) * float(np.clip(best, 0, 1))
    return ALL_KEYS[int(order[0])], round(confidence, 3)


def duration_weighted_pitch_classes(notes: Iterable[tuple[int, float]]) -> np.ndarray:
    """12-bin histogram from (pitch, duration) pairs."""
    hist = np.zeros(12)
    for pitch, duration in notes:
        hist[int(pitch) % 12] += max(float(duration), 0.0)
    return hist


NOTE_NAMES_SHARP = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


NOTE_NAMES_FLAT = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]
_LETTERS = "CDEFGAB"


def spelling(key: Key) -> dict[int, str]:
    """Pitch class -> name in `key`: its scale on consecutive letters (Bb major: Bb C D Eb F G A),
    the other five with the key's side of the circle of fifths (flats for flat keys)."""
    tonic = key.name.split()[0]
    letter = _LETTERS.index(tonic[0])
    names: dict[int, str] = {}
    for degree, step in enumerate(key.steps):
        pc = (key.tonic + step) % 12
        base = _LETTER_PC[_LETTERS[(letter + degree) % 7]]
        shift = (pc - base + 6) % 12 - 6  # -2..+2 semitones from the natural letter
        names[pc] = _LETTERS[(letter + degree) % 7] + ("#" * shift if shift > 0 else "b" * -shift)
    flat_side = "b" in tonic or (tonic == "F" if key.mode == "major" else tonic in ("D", "G", "C", "F"))
    chromatic = NOTE_NAMES_FLAT if flat_side else NOTE_NAMES_SHARP
    return {pc: names.get(pc, chromatic[pc]) for pc in range(12)}


def note_name(pitch: int, key: Key | None = None) -> str:
    """MIDI pitch to scientific name: 60 -> 'C4'; spelled in `key` when given (63 in Bb major: 'Eb4').

    The octave follows the letter, as in notation: B#3 and C4 are the same key on the piano.
    """
    name = spelling(key)[pitch % 12] if key is not None else NOTE_NAMES_SHARP[pitch % 12]
    natural = pitch - (name.count("#") - name.count("b"))
    return f"{name}{natural // 12 - 1}"


def key_signature_accidentals(key: Key) -> int:
    """Sharps or flats in the key's signature (C major / A minor: 0, F# major: 6, Db major: 5)."""
    major_tonic = key.tonic if key.mode == "major" else key.relative.tonic
    fifths = (major_tonic * 7) % 12  # steps around the circle of fifths from C
    return min(fifths, 12 - fifths)

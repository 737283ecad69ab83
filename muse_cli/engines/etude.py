"""The etude composer: deterministic piano exercises and short pieces, no model and no network.

It is the offline engine for `muse gen midi` and the fallback for MIDI-LLM. A piece is built in
layers: resolve the options (request, then prompt hints, then per-difficulty defaults), plan the
harmony phrase by phrase, lay out rhythm cells per bar, choose melody pitches (chord tones on
strong beats, scale/arpeggio/neighbour figures between them), write the left-hand pattern, then
shape velocities and assemble a PrettyMIDI. All time is counted in integer units of 1/12 quarter
note, so sixteenths (3), triplet eighths (4) and 6/8 beats (18) add up to exact bar lengths.
docs/etude.md describes the music each difficulty produces.
"""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_left
from dataclasses import dataclass, replace

import numpy as np
import pretty_midi

from muse_cli.contracts import MidiRequest, MidiResult, MidiSample
from muse_cli.engines.base import derive_seed, resolve_seed
from muse_cli.music.instruments import parse_instrument
from muse_cli.music.midi import midi_metadata, midi_to_bytes
from muse_cli.music.theory import (
    ALL_KEYS,
    HARMONIC_MINOR_STEPS,
    Key,
    key_signature_accidentals,
    parse_key,
)
from muse_cli.progress import ProgressFn, null_progress

UNITS_PER_QUARTER = 12
TICKS_PER_QUARTER = 480  # a multiple of 12, so every unit is a whole number of ticks

# --------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Meter:
    numerator: int
    denominator: int

    @classmethod
    def parse(cls, text: str) -> "Meter":
        num, den = text.split("/")
        return cls(int(num), int(den))

    @property
    def compound(self) -> bool:
        return self.denominator == 8 and self.numerator % 3 == 0

    @property
    def bar_units(self) -> int:
        return self.numerator * 4 * UNITS_PER_QUARTER // self.denominator

    @property
    def beat_units(self) -> int:
        return 3 * UNITS_PER_QUARTER // 2 if self.compound else 4 * UNITS_PER_QUARTER // self.denominator

    @property
    def beats(self) -> int:
        return self.bar_units // self.beat_units

    def is_strong(self, onset_in_bar: int) -> bool:
        """Downbeat, plus the middle of the bar in 4/4 (beat 3) and 6/8 (the second dotted quarter)."""
        if onset_in_bar == 0:
            return True
        has_middle = self.compound or self.beats == 4
        return has_middle and onset_in_bar == self.bar_units // 2

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True)
class Level:
    """What a difficulty means in numbers: ranges, rhythms, tempo, what the harmony may use."""

    name: str
    default_tempo: float
    max_accidentals: int
    default_hands: int
    rh_range: tuple[int, int]  # melody pool bounds (five-finger position for beginners instead)
    bass_range: tuple[int, int]  # left-hand chord roots
    base_velocity: int
    spread: float  # how far the melody likes to move to the next chord tone (semitones)
    leap_prob: float  # chance of a deliberate leap of a fifth to an octave
    chromatic_prob: float  # chance of a chromatic passing note inside a scale figure
    altered_harmony: bool  # raised leading tone in minor, V7, secondary dominants


LEVELS = {
    "beginner": Level("beginner", 72, 1, 1, (57, 69), (43, 54), 64, 2.0, 0.0, 0.0, False),
    "intermediate": Level("intermediate", 96, 3, 2, (60, 81), (36, 47), 70, 3.5, 0.04, 0.0, True),
    "advanced": Level("advanced", 120, 6, 2, (60, 88), (31, 42), 76, 5.0, 0.15, 0.3, True),
}
LH_CEILING = 59  # the left hand stays below middle C, the right hand starts at or above it


@dataclass(frozen=True)
class PromptHints:
    """Options read from free text; each is None when the text does not say."""

    key: Key | None = None
    mode: str | None = None  # "major"/"minor" from mood words, used only to pick a key
    time_signature: str | None = None
    tempo: float | None = None
    tempo_factor: float = 1.0
    difficulty: str | None = None
    bars: int | None = None
    hands: int | None = None


@dataclass(frozen=True)
class EtudeOptions:
    key: Key
    level: Level
    tempo: float
    meter: Meter
    bars: int
    program: int
    hands: int


_ACCIDENTAL = r"(?:#|♯|♭|b(?![a-z])|[\s-]?sharp\b|[\s-]?flat\b)"
_KEY_HINT = re.compile(
    r"(?<![\w#])(?P<letter>[A-Ga-g])(?P<acc>" + _ACCIDENTAL + r")?"
    r"(?:\s*(?P<quality>(?i:major|minor|maj|min)\b|m\b))?(?![\w#♯♭])"
)
_METER_WORDS = {"waltz": "3/4", "minuet": "3/4", "march": "2/4", "polka": "2/4", "jig": "6/8", "barcarolle": "6/8"}
_SLOW_WORDS = {"slow", "slowly", "calm", "gentle", "peaceful", "relaxed", "relaxing", "lullaby", "tender",
               "quiet", "dreamy", "soft", "adagio", "largo", "lento", "meditative"}
_FAST_WORDS = {"fast", "lively", "energetic", "upbeat", "quick", "brisk", "allegro", "presto", "vivace",
               "exciting", "playful", "driving"}
_MINOR_WORDS = {"sad", "melancholy", "melancholic", "dark", "somber", "sombre", "gloomy", "mournful",
                "tragic", "mysterious", "lament"}
_MAJOR_WORDS = {"happy", "cheerful", "joyful", "bright", "sunny", "triumphant"}
_DIFFICULTY_WORDS = {
    "beginner": "beginner", "beginners": "beginner", "easy": "beginner", "simple": "beginner",
    "elementary": "beginner", "intermediate": "intermediate", "advanced": "advanced",
    "difficult": "advanced", "hard": "advanced", "challenging": "advanced", "virtuosic": "advanced",
    "virtuoso": "advanced", "expert": "advanced",
}


def parse_prompt_hints(prompt: str | None) -> PromptHints:
    """Read key, meter, tempo, difficulty, length and hands from a description, where it says them."""
    if not prompt:
        return PromptHints()
    text = " ".join(prompt.split())
    lower = text.lower()
    words = set(re.findall(r"[a-z]+", lower))
    hints: dict = {}

    for m in _KEY_HINT.finditer(text):
        before = text[: m.start()].lower().rstrip()
        after_in = before.endswith((" in", "key of")) or before in ("in",)
        # A bare capital letter is too often a word ("A march"): it needs a mode word or "in".
        if (m["letter"].isupper() and (m["quality"] or after_in)) or (m["quality"] and after_in):
            hints["key"] = parse_key(m.group(0).replace("-", " ").replace(" sharp", "#").replace(" flat", "b"))
            break

    meter = re.search(r"\b(2/4|3/4|4/4|6/8)\b", text)
    if meter:
        hints["time_signature"] = meter.group(1)
    else:
        for word, ts in _METER_WORDS.items():
            if word in words or word + "es" in words or word + "s" in words:
                hints["time_signature"] = ts
                break

    bpm = re.search(r"(\d+(?:\.\d+)?)\s*bpm\b", lower)
    if bpm and 20 <= float(bpm.group(1)) <= 300:
        hints["tempo"] = float(bpm.group(1))
    if words & _SLOW_WORDS and not words & _FAST_WORDS:
        hints["tempo_factor"] = 0.75
    elif words & _FAST_WORDS and not words & _SLOW_WORDS:
        hints["tempo_factor"] = 1.3

    if words & _MINOR_WORDS and not words & _MAJOR_WORDS:
        hints["mode"] = "minor"
    elif words & _MAJOR_WORDS and not words & _MINOR_WORDS:
        hints["mode"] = "major"

    for word in re.findall(r"[a-z]+", lower):
        if word in _DIFFICULTY_WORDS:
            hints["difficulty"] = _DIFFICULTY_WORDS[word]
            break

    bars = re.search(r"\b(\d+)[\s-]*(?:bars?|measures?)\b", lower)
    if bars and 1 <= int(bars.group(1)) <= 256:
        hints["bars"] = int(bars.group(1))

    if re.search(r"\b(?:one|single|1)[\s-]hand(?:ed)?\b|\bright[\s-]hand only\b", lower):
        hints["hands"] = 1
    elif re.search(r"\b(?:both|two|2)[\s-]hand(?:s|ed)?\b", lower):
        hints["hands"] = 2
    return PromptHints(**hints)


def choose_key(rng: np.random.Generator, level: Level, mode: str | None = None) -> Key:
    """A key whose signature suits the level; majors a little more often than minors."""
    keys = [k for k in ALL_KEYS if key_signature_accidentals(k) <= level.max_accidentals and (mode in (None, k.mode))]
    weights = np.array([1.5 if k.mode == "major" else 1.0 for k in keys])
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]


def resolve_options(request: MidiRequest, rng: np.random.Generator) -> EtudeOptions:
    """Structured options win; prompt (and style) hints fill the gaps; the level's defaults the rest."""
    hints = parse_prompt_hints(" ".join(t for t in (request.prompt, request.style) if t) or None)
    level = LEVELS[request.difficulty or hints.difficulty or "beginner"]
    key = parse_key(request.key) if request.key else hints.key or choose_key(rng, level, hints.mode)
    meter = Meter.parse(request.time_signature or hints.time_signature or "4/4")
    if request.tempo is not None:
        tempo = float(request.tempo)
    elif hints.tempo is not None:
        tempo = hints.tempo
    else:
        tempo = float(np.clip(round(level.default_tempo * hints.tempo_factor), 20, 300))
    instrument = parse_instrument(request.instrument)
    # Melody instruments (violin, flute, ...) get one line unless both hands are asked for.
    keyboard = instrument.program < 24 or instrument.program == 46 or 24 <= instrument.program < 32
    default_hands = level.default_hands if keyboard else 1
    hands = request.hands or hints.hands or default_hands
    bars = request.bars or hints.bars or 8
    return EtudeOptions(key, level, tempo, meter, bars, instrument.program, hands)


# --------------------------------------------------------------------------------- harmony


@dataclass(frozen=True)
class Chord:
    degree: int  # 0-based scale degree of the root: 0 = I, 3 = IV, 4 = V
    seventh: bool = False
    applied: bool = False  # V/V: a major chord on the supertonic (secondary dominant)

    @property
    def label(self) -> str:
        if self.applied:
            return "V/V"
        roman = ["I", "ii", "iii", "IV", "V", "vi", "vii"][self.degree]
        return roman + ("7" if self.seventh else "")


I, II, IV, V, VI = Chord(0), Chord(1), Chord(3), Chord(4), Chord(5)
V_OF_V = Chord(1, applied=True)


def phrase_lengths(bars: int) -> list[int]:
    """4-bar phrases (two make an 8-bar period); a remainder lengthens the last phrase."""
    if bars <= 4:
        return [bars]
    lengths = [4] * (bars // 4)
    lengths[-1] += bars % 4
    return lengths


def _weighted(rng: np.random.Generator, options: list, weights: list[float]):
    w = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=w / w.sum()))]


def _phrase_chords(rng: np.random.Generator, n: int, authentic: bool, level: Level) -> list[Chord]:
    """Tonic opening, a walk through tonic/subdominant chords, a predominant, then the cadence."""
    dominant = Chord(4, seventh=level.altered_harmony and authentic and rng.random() < 0.7)
    if n == 1:
        return [I] if authentic else [dominant]
    if n == 2:
        return [dominant, I] if authentic else [I, dominant]
    ending = [dominant, I] if authentic else [dominant]
    middle_len = n - 1 - len(ending)
    if level.altered_harmony:
        predominants, pd_weights = [IV, II, V_OF_V], [0.5, 0.35, 0.15 if level.chromatic_prob == 0 else 0.25]
        walk = [VI, IV, I, II]
    else:
        predominants, pd_weights, walk = [IV], [1.0], [IV, I]  # V only at cadences: a clear key
    middle: list[Chord] = []
    previous = I
    for i in range(middle_len):
        if i == middle_len - 1:
            chord = _weighted(rng, predominants, pd_weights)
        else:
            choices = [c for c in walk if c != previous]
            chord = choices[int(rng.integers(len(choices)))]
        middle.append(chord)
        previous = chord
    return [I] + middle + ending


def plan_harmony(rng: np.random.Generator, bars: int, level: Level) -> list[Chord]:
    """One chord per bar. Even-numbered phrases end on V (half cadence), odd ones and the last on
    V-I; a phrase that answers the one before restates its first two bars (a parallel period)."""
    plan: list[Chord] = []
    lengths = phrase_lengths(bars)
    for k, n in enumerate(lengths):
        final = k == len(lengths) - 1
        authentic = final or k % 2 == 1
        chords = _phrase_chords(rng, n, authentic, level)
        if _restates(lengths, k):
            chords[:2] = plan[-lengths[k - 1] :][:2]
        plan += chords
    return plan


def _restates(lengths: list[int], k: int) -> bool:
    return k % 2 == 1 and lengths[k] >= 4 and lengths[k - 1] >= 4


def chord_pitch_classes(key: Key, chord: Chord, altered: bool) -> list[int]:
    """Root, third, fifth (and seventh) as pitch classes; minor-key dominants get the leading tone."""
    if chord.applied:
        root = key.degree_pc(1)
        return [(root + i) % 12 for i in ((0, 4, 7, 10) if chord.seventh else (0, 4, 7))]
    steps = HARMONIC_MINOR_STEPS if (altered and key.mode == "minor" and chord.degree in (4, 6)) else key.steps
    count = 4 if chord.seventh else 3
    return [(key.tonic + steps[(chord.degree + 2 * i) % 7]) % 12 for i in range(count)]


def scale_pitch_classes(key: Key, chord: Chord, altered: bool) -> set[int]:
    """The scale the melody uses over a chord: the key's, with the chord's accidental if it has one."""
    pcs = set(key.pitch_classes())
    if altered and chord.applied:
        fourth = key.degree_pc(3)
        pcs.discard(fourth)
        pcs.add((fourth + 1) % 12)
    elif altered and key.mode == "minor" and chord.degree in (4, 6):
        pcs = set(key.pitch_classes(harmonic=True))
    return pcs


# ---------------------------------------------------------------------------------- rhythm

# Rhythm cells: durations (units) that fill a whole number of beats. Simple meters have 12-unit
# beats, 6/8 has 18-unit (dotted quarter) beats.
_CELLS = {
    ("beginner", False): [([12], 5), ([24], 3), ([36], 1), ([48], 1)],
    ("beginner", True): [([18], 5), ([12, 6], 3), ([36], 2)],
    ("intermediate", False): [([12], 3), ([6, 6], 4), ([24], 1), ([18, 6], 2), ([6, 6, 6, 6], 2)],
    ("intermediate", True): [([6, 6, 6], 4), ([12, 6], 3), ([18], 2), ([9, 3, 6], 1)],
    ("advanced", False): [([3, 3, 3, 3], 3), ([6, 3, 3], 2), ([3, 3, 6], 2), ([9, 3], 2), ([4, 4, 4], 2),
                          ([6, 6], 2), ([12], 1), ([18, 6], 1)],
    ("advanced", True): [([3, 3, 6, 6], 2), ([6, 3, 3, 6], 2), ([3, 3, 3, 3, 3, 3], 2), ([9, 3, 6], 2),
                         ([6, 6, 6], 2), ([12, 6], 1), ([4, 4, 4, 6], 1)],
}


@dataclass(frozen=True)
class Cell:
    onset: int  # units from the start of the bar
    durations: tuple[int, ...]


def bar_rhythm(rng: np.random.Generator, meter: Meter, level: Level, role: str) -> list[Cell]:
    """Cells that fill one bar exactly. Phrase ends breathe on a long note; the last bar is one note."""
    bar, beat = meter.bar_units, meter.beat_units
    if role == "final" or (role == "half" and level.name == "beginner"):
        return [Cell(0, (bar,))]
    cells: list[Cell] = []
    onset = 0
    end = bar - beat if role == "half" else bar  # a half cadence holds its last beat(s)
    while onset < end:
        fitting = [(d, w) for d, w in _CELLS[(level.name, meter.compound)] if onset + sum(d) <= end]
        # Long notes start where they can be felt: not across the middle of a 4/4 bar.
        fitting = [(d, w) for d, w in fitting if sum(d) <= beat or onset % sum(d) == 0 or meter.beats == 3]
        durations, _ = _weighted(rng, fitting, [w for _, w in fitting])
        cells.append(Cell(onset, tuple(durations)))
        onset += sum(durations)
    if role == "half":
        cells.append(Cell(end, (bar - end,)))
    return cells


# ---------------------------------------------------------------------------------- melody


@dataclass(frozen=True)
class Event:
    start: int  # units from the start of the piece
    duration: int
    pitches: tuple[int, ...]


def melody_range(key: Key, level: Level) -> tuple[int, int]:
    """Lowest and highest melody pitch. Beginners get the five-finger tonic position (degrees 1-5):
    other positions leave out the tonic triad's third or the tonic itself, and the key gets vague."""
    if level.name != "beginner":
        return level.rh_range
    tonic = level.rh_range[0] + (key.tonic - level.rh_range[0]) % 12
    scale = _scale_pitches(set(key.pitch_classes()), tonic, tonic + 12)
    return scale[0], scale[4]


def _scale_pitches(pcs: set[int], lo: int, hi: int) -> list[int]:
    return [p for p in range(lo, hi + 1) if p % 12 in pcs]


def _tonal_emphasis(key: Key, pitches: np.ndarray) -> np.ndarray:
    """Favour the tonic and its third, lean less on the supertonic: short diatonic tunes otherwise
    sound (and analyse) like a neighbouring key or their parallel major/minor."""
    pcs = pitches.astype(int) % 12
    # In minor the third is all that tells the key from its parallel major: lean on it harder.
    weights = {key.tonic: 2.5, key.degree_pc(2): 3.5 if key.mode == "minor" else 2.5, key.degree_pc(1): 0.6}
    return np.array([weights.get(int(pc), 1.0) for pc in pcs])


def _pick_near(rng: np.random.Generator, candidates: list[int], prev: int, level: Level, centre: float,
               key: Key, allow_leap: bool = True, emphasis: float = 1.0) -> int:
    c = np.asarray(candidates, dtype=float)
    distance = np.abs(c - prev)
    weights = np.exp(-distance / level.spread) * np.exp(-np.abs(c - centre) / 12.0)
    weights *= _tonal_emphasis(key, c) ** emphasis
    weights[distance == 0] *= 0.1  # a repeated note now and then, not all the time
    if allow_leap and level.leap_prob and rng.random() < level.leap_prob:
        leap = (distance >= 7) & (distance <= 14)
        if leap.any():
            weights = leap.astype(float)
    return int(c[int(rng.choice(len(c), p=weights / weights.sum()))])


def _step(pool: list[int], pitch: int, direction: int) -> int:
    """The scale neighbour of a pitch, turning back at the edge of the range."""
    i = min(bisect_left(pool, pitch), len(pool) - 1)
    if pool[i] != pitch and direction < 0:
        return pool[i - 1] if i > 0 else pool[i]
    if pool[i] != pitch and direction > 0:
        return pool[i]
    j = i + direction
    if not 0 <= j < len(pool):
        j = i - direction
    return pool[j]


def _figure(rng: np.random.Generator, first: int, count: int, pool: list[int], tones: list[int],
            level: Level, centre: float, chromatic: bool) -> list[int]:
    """The notes after a cell's first: a scale run, a broken chord or neighbour notes."""
    direction = (1 if first < centre else -1) if abs(first - centre) > 5 else int(rng.choice([-1, 1]))
    kind = _weighted(rng, ["scale", "arpeggio", "neighbour"], [0.55, 0.25 if level.name != "beginner" else 0, 0.2])
    notes = [first]
    pending: int | None = None
    other = _step(pool, first, int(rng.choice([-1, 1])))
    for j in range(1, count):
        current = notes[-1]
        if pending is not None:
            notes.append(pending)
            pending = None
        elif kind == "scale":
            nxt = _step(pool, current, direction)
            if (nxt - current) * direction < 0:
                direction = -direction
            if chromatic and j < count - 1 and abs(nxt - current) == 2 and rng.random() < level.chromatic_prob:
                notes.append(current + direction)  # chromatic passing note, resolved on the next note
                pending = nxt
            else:
                notes.append(nxt)
        elif kind == "arpeggio":
            nxt = _step(tones, current, direction)
            if (nxt - current) * direction < 0:
                direction = -direction
            notes.append(nxt)
        else:
            notes.append(other if j % 2 else first)
    return notes


def compose_melody(rng: np.random.Generator, opts: EtudeOptions, plan: list[Chord]) -> list[Event]:
    """Right-hand line: chord tones on strong beats, figures between, 2-1 or 7-1 into the final tonic."""
    level, meter, key = opts.level, opts.meter, opts.key
    lo, hi = melody_range(key, level)
    centre = (lo + hi) / 2 if level.name == "beginner" else lo + 0.4 * (hi - lo)
    lengths = phrase_lengths(len(plan))
    phrase_start = np.cumsum([0] + lengths)
    events: list[Event] = []
    tonic_pool = [p for p in range(lo, hi + 1) if p % 12 == key.tonic]
    prev = min(tonic_pool, key=lambda p: abs(p - centre))
    for bar, chord in enumerate(plan):
        k = int(np.searchsorted(phrase_start, bar, side="right") - 1)
        start = bar * meter.bar_units
        if _restates(lengths, k) and bar - phrase_start[k] < 2:
            offset = (phrase_start[k] - phrase_start[k - 1]) * meter.bar_units
            source = range(start - offset, start - offset + meter.bar_units)
            events += [replace(e, start=e.start + offset) for e in events if e.start in source]
            prev = events[-1].pitches[0]
            continue
        last_of_phrase = bar == phrase_start[k + 1] - 1
        role = "final" if bar == len(plan) - 1 else "half" if last_of_phrase else "normal"
        altered = level.altered_harmony
        pool = _scale_pitches(scale_pitch_classes(key, chord, altered), lo, hi)
        chord_pcs = set(chord_pitch_classes(key, chord, altered)[:3])
        tones = [p for p in pool if p % 12 in chord_pcs] or pool
        if role == "final":
            tones = [p for p in pool if p % 12 == key.tonic]
        approaching_final = bar == len(plan) - 2
        cells = bar_rhythm(rng, meter, level, role)
        for c, cell in enumerate(cells):
            long_note = cell.durations[0] >= meter.beat_units
            if role == "final":
                first = min(tones, key=lambda p: (abs(p - prev), p))
            elif meter.is_strong(cell.onset) or long_note or rng.random() < (0.3 if level.name == "beginner" else 0.6):
                # Long notes are what the ear (and a key finder) remembers: they lean harder on the tonic triad.
                first = _pick_near(rng, tones, prev, level, centre, key, allow_leap=role == "normal",
                                   emphasis=2.0 if sum(cell.durations) > meter.beat_units else 0.7)
            else:
                first = _step(pool, prev, int(rng.choice([-1, 1])))
            last_cell = c == len(cells) - 1
            pitches = _figure(rng, first, len(cell.durations), pool, tones, level, centre,
                              chromatic=not (approaching_final and last_cell))
            if approaching_final and last_cell:
                pitches[-1] = _leading_pitch(pool, key, pitches[-2] if len(pitches) > 1 else prev, lo, hi)
            onset = start + cell.onset
            for pitch, duration in zip(pitches, cell.durations):
                events.append(Event(onset, duration, (pitch,)))
                onset += duration
            prev = pitches[-1]
    return events


def _leading_pitch(pool: list[int], key: Key, prev: int, lo: int, hi: int) -> int:
    """The scale step next to a tonic (supertonic above or leading tone below), nearest to prev."""
    candidates = []
    for tonic in (p for p in range(lo, hi + 1) if p % 12 == key.tonic):
        i = pool.index(tonic) if tonic in pool else None
        if i is None:
            continue
        candidates += [pool[j] for j in (i - 1, i + 1) if 0 <= j < len(pool)]
    return min(candidates, key=lambda p: (abs(p - prev), p)) if candidates else prev


# ---------------------------------------------------------------------------- accompaniment

# Left-hand patterns: (duration, symbol) per bar. R root, 3/5 third/fifth above it, 8 the octave,
# R5 root and fifth together, RO octave, T close triad on the root, C the chord in the octave below
# middle C, RC root plus C, R3 root and third, A<n> the n-th chord tone going up from the root (broken chords).
_ARP8 = [(6, f"A{i}") for i in (0, 1, 2, 3, 4, 3, 2, 1)]
_LH_PATTERNS = {
    ("beginner", "2/4"): [[(24, "R")], [(24, "R3")]],
    ("beginner", "3/4"): [[(36, "R")], [(36, "R3")]],
    ("beginner", "4/4"): [[(48, "R")], [(48, "R3")], [(24, "R"), (24, "R3")]],
    ("beginner", "6/8"): [[(36, "R")], [(36, "R3")]],
    ("intermediate", "2/4"): [[(6, "R"), (6, "5"), (6, "3"), (6, "5")], [(12, "R"), (12, "5")], [(24, "T")]],
    ("intermediate", "3/4"): [[(12, "R"), (12, "C"), (12, "C")], [(6, s) for s in "R53535"],
                              [(12, "R"), (12, "5"), (12, "8")]],
    ("intermediate", "4/4"): [[(6, s) for s in "R535R535"], [(12, "R"), (12, "5"), (12, "8"), (12, "5")],
                              [(24, "T"), (24, "T")]],
    ("intermediate", "6/8"): [[(6, s) for s in "R58R58"], [(6, s) for s in "R53535"], [(18, "R5"), (18, "R5")]],
    ("advanced", "2/4"): [[(12, "RO"), (12, "C")], [(3, f"A{i}") for i in (0, 1, 2, 3, 4, 3, 2, 1)], [(24, "RC")]],
    ("advanced", "3/4"): [[(12, "RO"), (12, "C"), (12, "C")], [(6, f"A{i}") for i in (0, 1, 2, 3, 2, 1)], [(36, "RC")]],
    ("advanced", "4/4"): [[(12, "RO"), (12, "C"), (12, "5"), (12, "C")], _ARP8, [(24, "RC"), (18, "RC"), (6, "C")]],
    ("advanced", "6/8"): [[(12, "RO"), (6, "C"), (12, "5"), (6, "C")], [(6, f"A{i}") for i in (0, 1, 2, 3, 2, 1)],
                          [(18, "RC"), (18, "RC")]],
}
_FINAL_LH = {"beginner": "R", "intermediate": "T", "advanced": "RC"}


def voice_chord(symbol: str, root: int, pcs: list[int], ceiling: int = LH_CEILING) -> tuple[int, ...]:
    """Pitches for one pattern symbol, given the chord's bass root and its pitch classes."""
    third = root + (pcs[1] - pcs[0]) % 12
    fifth = root + (pcs[2] - pcs[0]) % 12
    upper = tuple(sorted(48 + (pc - 48) % 12 for pc in pcs))  # closed voicing, C3..B3
    if symbol.startswith("A"):
        rising = sorted({p for pc in pcs for p in range(root + (pc - root) % 12, ceiling + 1, 12)})
        return (rising[min(int(symbol[1:]), len(rising) - 1)],)
    voiced = {
        "R": (root,), "3": (third,), "5": (fifth,), "8": (root + 12,), "R3": (root, third), "R5": (root, fifth),
        "RO": (root, root + 12), "T": (root, third, fifth), "C": upper, "RC": (root,) + upper,
    }[symbol]
    return tuple(sorted({p for p in voiced if p <= ceiling})) or (root,)


def compose_accompaniment(rng: np.random.Generator, opts: EtudeOptions, plan: list[Chord]) -> list[Event]:
    """Left hand: one pattern per phrase (held bass, Alberti, waltz, stride, broken chords...)."""
    level, meter, key = opts.level, opts.meter, opts.key
    patterns = _LH_PATTERNS[(level.name, str(meter))]
    lo, _ = level.bass_range
    ceiling = min(LH_CEILING, melody_range(key, level)[0] - 1)  # the hands never cross or share a key
    events: list[Event] = []
    bar_index = 0
    for n in phrase_lengths(len(plan)):
        pattern = patterns[int(rng.integers(len(patterns)))]
        for bar in range(bar_index, bar_index + n):
            chord = plan[bar]
            pcs = chord_pitch_classes(key, chord, level.altered_harmony)
            root = lo + (pcs[0] - lo) % 12
            onset = bar * meter.bar_units
            bar_pattern = [(meter.bar_units, _FINAL_LH[level.name])] if bar == len(plan) - 1 else pattern
            for duration, symbol in bar_pattern:
                events.append(Event(onset, duration, voice_chord(symbol, root, pcs, ceiling)))
                onset += duration
        bar_index += n
    return events


# -------------------------------------------------------------------------------- assembly


def velocity(rng: np.random.Generator, opts: EtudeOptions, start: int, left_hand: bool) -> int:
    """Phrase arch (grow to the middle, relax to the cadence), accented downbeats, softer left hand."""
    meter = opts.meter
    bar = start // meter.bar_units
    first_bar, length = 0, opts.bars
    for length in phrase_lengths(opts.bars):
        if bar < first_bar + length:
            break
        first_bar += length
    position = (start - first_bar * meter.bar_units) / (length * meter.bar_units)
    value = opts.level.base_velocity + 12 * math.sin(math.pi * position)
    in_bar = start % meter.bar_units
    value += 6 if in_bar == 0 else 3 if meter.is_strong(in_bar) else 0
    value -= 12 if left_hand else 0
    value += int(rng.integers(-2, 3))
    return max(30, min(112, round(value)))


def assemble(
    rng: np.random.Generator, opts: EtudeOptions, hands: list[tuple[str, list[Event]]]
) -> pretty_midi.PrettyMIDI:
    """Notes, tempo, time and key signature, one instrument per hand (same GM program)."""
    pm = pretty_midi.PrettyMIDI(resolution=TICKS_PER_QUARTER, initial_tempo=opts.tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(opts.meter.numerator, opts.meter.denominator, 0.0))
    key_number = opts.key.tonic + (12 if opts.key.mode == "minor" else 0)
    pm.key_signature_changes.append(pretty_midi.KeySignature(key_number, 0.0))
    seconds_per_unit = 60.0 / opts.tempo / UNITS_PER_QUARTER
    for name, events in hands:
        instrument = pretty_midi.Instrument(program=opts.program, name=name)
        for event in events:
            vel = velocity(rng, opts, event.start, left_hand=name == "Left hand")
            start = event.start * seconds_per_unit
            end = (event.start + event.duration) * seconds_per_unit
            for pitch in event.pitches:
                instrument.notes.append(pretty_midi.Note(vel, pitch, start, end))
        pm.instruments.append(instrument)
    return pm


def compose(seed: int, request: MidiRequest) -> tuple[pretty_midi.PrettyMIDI, EtudeOptions]:
    """One piece from one seed: the same seed and request always give the same notes."""
    rng = np.random.Generator(np.random.PCG64(seed))
    opts = resolve_options(request, rng)
    plan = plan_harmony(rng, opts.bars, opts.level)
    hands = [("Right hand", compose_melody(rng, opts, plan))]
    if opts.hands == 2:
        hands.append(("Left hand", compose_accompaniment(rng, opts, plan)))
    return assemble(rng, opts, hands), opts


class EtudeEngine:
    """Offline composer of piano etudes; `model` is accepted for the common engine shape and ignored."""

    name = "etude"
    model_id = "etude-1"
    device = "cpu"

    def __init__(self, model: str | None = None):
        self.model = model

    def load(self) -> None:
        return None  # nothing to load: the composer is rules and a random generator

    def generate(self, request: MidiRequest, progress: ProgressFn = null_progress) -> MidiResult:
        seed = resolve_seed(request.seed)
        began = time.perf_counter()
        samples = []
        for i in range(request.count):
            sample_seed = derive_seed(seed, i)
            t0 = time.perf_counter()
            pm, opts = compose(sample_seed, request)
            data = midi_to_bytes(pm)
            meta = midi_metadata(pm, key=opts.key.name, generation_s=round(time.perf_counter() - t0, 4))
            samples.append(MidiSample(midi=data, seed=sample_seed, metadata=meta))
            progress(i + 1, request.count)
        return MidiResult(
            engine=self.name,
            model=self.model_id,
            seed=seed,
            device=self.device,
            samples=samples,
            timings={"generate_s": round(time.perf_counter() - began, 4)},
        )

"""Scores for practice feedback: read a MIDI or MusicXML score, and align a performance to it.

A score becomes a list of ScoreNote (written onset and duration in seconds at the marked tempo,
pitch, spelled name, bar and beat). Bars come from the score's time signatures and pickup: a
MusicXML score numbers its own measures (a pickup is bar 0); a MIDI score counts bars from its
time-signature events, and a file whose first note falls inside the first bar rather than on its
downbeat is read as starting with a pickup, numbered bar 0.

Alignment (`align`) has two stages, as in parangonar's AutomaticNoteMatcher (a DTW over piano
rolls, then note matching in windows around the warping path; parangonar/match/matchers.py,
`pitch_and_onset_wise_times` and `get_score_to_perf_map`):

1. a coarse time warp from a DTW over onset-weighted chroma frames of score and performance,
   which absorbs tempo changes, missed and extra notes (`_dtw_path`: the same recursion and
   path as `librosa.sequence.dtw` with its default steps, in numpy, so an analysis does not
   import librosa and numba for it: 0.75 s of the 5 s budget);
2. note matching: each score note takes the nearest unused performed note of the same pitch
   around its warped time; the warp is then re-estimated from the matched notes themselves (a
   local linear fit over the nearest matched onsets, robust to outliers) and matching repeats
   with a tighter window. Unmatched score and performed notes that lie together in time are a
   wrong pitch; the rest are missed or extra.

Onset deviation is a performed onset minus where the local fit expects it: the tempo the player
chose is absorbed by the fit (it appears as the tempo curve), what remains is note placement.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from muse_cli.errors import InputError, RuntimeFailure

MIDI_SCORE_SUFFIXES = (".mid", ".midi", ".smf")
MUSICXML_SUFFIXES = (".musicxml", ".xml", ".mxl")
SCORE_SUFFIXES = MIDI_SCORE_SUFFIXES + MUSICXML_SUFFIXES
MAX_SCORE_BYTES = 20 * 1024 * 1024
MAX_SCORE_NOTES = 50_000
DEFAULT_TEMPO = 120.0  # quarter notes per minute when a score marks none (MusicXML and MIDI agree)

DTW_MAX_FRAMES = 3000  # per side: the DTW's cost matrix stays under 3000 x 3000 (~72 MB)
DTW_RATE = 10.0  # frames per second for scores up to DTW_MAX_FRAMES / DTW_RATE seconds long
FIRST_WINDOW_S = 0.30  # matching window around the DTW warp
SECOND_WINDOW_S = 0.20  # matching window around the refined, note-level warp
WRONG_WINDOW_S = 0.12  # an unmatched played note this close in time to an unmatched score note ...
WRONG_MAX_SEMITONES = 4  # ... and within a major third of it was played in its place
FIT_NEIGHBOURS = 24  # matched onsets in each local tempo fit ...
FIT_MIN_NEIGHBOURS = 8  # ... fewer where those would reach further than
FIT_RADIUS_S = 3.0  # this many score seconds from the fitted point

_SHARP_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_SHARPEST_NAMES = ("C", "C#", "D", "D#", "E", "E#", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class ScoreNote:
    onset: float  # seconds at the marked tempo
    offset: float
    pitch: int
    velocity: int | None  # None: the score writes no velocity
    bar: int
    beat: float  # 1-based beat in the bar (in the time signature's beat unit)
    name: str  # spelled pitch, e.g. "F#4"
    quarter: float  # onset in quarter notes from the start


@dataclass(frozen=True)
class Bar:
    number: int
    start: float  # seconds at the marked tempo
    end: float
    beats: int  # time signature numerator
    beat_unit: int  # time signature denominator


@dataclass(frozen=True)
class Score:
    name: str
    kind: str  # "midi" or "musicxml"
    notes: tuple[ScoreNote, ...]
    bars: tuple[Bar, ...]
    tempo: float | None  # marked tempo, quarter notes per minute (the first marking); None: unmarked
    key_fifths: int  # key signature: sharps > 0, flats < 0
    velocities: bool  # whether the score writes varying velocities (dynamics to compare against)

    @property
    def duration(self) -> float:
        return max(n.offset for n in self.notes)

    def bar_at(self, t: float) -> Bar:
        starts = [b.start for b in self.bars]
        i = max(0, int(np.searchsorted(starts, t + 1e-6, side="right")) - 1)
        return self.bars[i]

    def seconds_per_quarter(self) -> float:
        return 60.0 / (self.tempo or DEFAULT_TEMPO)


def spell(pitch: int, key_fifths: int = 0) -> str:
    """A pitch name that fits the key signature: flats in flat keys, sharps in sharp keys."""
    names = _FLAT_NAMES if key_fifths < 0 else _SHARPEST_NAMES if key_fifths >= 5 else _SHARP_NAMES
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


# -------------------------------------------------------------------------------------- reading


def is_musicxml(data: bytes, name: str) -> bool:
    return name.lower().endswith(MUSICXML_SUFFIXES) or data.startswith(b"PK") or b"<score-partwise" in data[:4096]


def read_score(data: bytes, name: str) -> Score:
    """A MIDI (.mid) or MusicXML (.musicxml, .xml, .mxl) score; anything unusable is one InputError."""
    if not data:
        raise InputError(f"score {name}: is empty")
    if len(data) > MAX_SCORE_BYTES:
        raise InputError(f"score {name}: is {len(data) / 1e6:.0f} MB; at most {MAX_SCORE_BYTES // 2**20} MB is read")
    if data.startswith(b"MThd"):
        score = _read_midi_score(data, name)
    elif is_musicxml(data, name):
        score = _read_musicxml(data, name)
    else:
        raise InputError(f"score {name}: is neither MIDI nor MusicXML ({', '.join(SCORE_SUFFIXES)})")
    if not score.notes:
        raise InputError(f"score {name}: has no notes")
    score = _merge_unisons(score)
    if len(score.notes) > MAX_SCORE_NOTES:
        raise InputError(f"score {name}: has {len(score.notes)} notes; at most {MAX_SCORE_NOTES} are aligned")
    return score


def _merge_unisons(score: Score) -> Score:
    """One note per key and onset: voices that double a note (a unison) are one key press on a piano."""
    kept: dict[tuple[float, int], ScoreNote] = {}
    for n in score.notes:
        key = (round(n.onset, 4), n.pitch)
        if key not in kept or n.offset > kept[key].offset:
            kept[key] = n
    if len(kept) == len(score.notes):
        return score
    return replace(score, notes=tuple(sorted(kept.values(), key=lambda n: (n.onset, n.pitch))))


def _read_midi_score(data: bytes, name: str) -> Score:
    from muse_cli.music.midi import load_midi

    pm = load_midi(data, f"score {name}")
    notes = sorted((n for inst in pm.instruments if not inst.is_drum for n in inst.notes),
                   key=lambda n: (n.start, n.pitch))
    if not notes:
        raise InputError(f"score {name}: has only drum notes")
    end = max(float(n.end) for n in notes)
    fifths = 0
    if pm.key_signature_changes:
        k = pm.key_signature_changes[0].key_number  # 0-11 major, 12-23 minor
        tonic, minor = k % 12, k >= 12
        fifths = ((tonic + (3 if minor else 0)) * 7) % 12  # fifths of the relative major
        fifths = fifths - 12 if fifths > 6 else fifths
    tempo = None
    times, tempi = pm.get_tempo_changes()
    if len(tempi) and not (len(tempi) == 1 and abs(tempi[0] - DEFAULT_TEMPO) < 1e-6 and not _has_tempo_event(data)):
        tempo = float(tempi[0])
    bars = _midi_bars(pm, float(notes[0].start), end)
    beat_times = np.asarray(pm.get_beats(), dtype=float)
    quarters = _quarter_positions(pm)
    velocities = [int(n.velocity) for n in notes]
    varied = len(set(velocities)) > 1
    score_notes = []
    for n in notes:
        onset = float(n.start)
        bar = _bar_of(bars, onset)
        score_notes.append(ScoreNote(
            onset=onset, offset=float(n.end), pitch=int(n.pitch), velocity=int(n.velocity) if varied else None,
            bar=bar.number, beat=_beat_in_bar(bar, onset, beat_times), name=spell(int(n.pitch), fifths),
            quarter=float(quarters(onset)),
        ))
    return Score(name, "midi", tuple(score_notes), bars, tempo, fifths, varied)


def _has_tempo_event(data: bytes) -> bool:
    return b"\xff\x51\x03" in data  # a Set Tempo meta event


def _quarter_positions(pm):
    """seconds -> quarter notes, through the file's tempo map."""
    ticks_per_quarter = pm.resolution

    def convert(t: float) -> float:
        return pm.time_to_tick(t) / ticks_per_quarter

    return convert


def _midi_bars(pm, first_onset: float, end: float) -> tuple[Bar, ...]:
    """Bars from the time signatures; a first note inside (not on) the first bar makes it a pickup."""
    downbeats = [float(t) for t in pm.get_downbeats()]
    if not downbeats or downbeats[0] > 0:
        downbeats = [0.0, *downbeats]
    sigs = pm.time_signature_changes or []

    def signature(t: float) -> tuple[int, int]:
        current = (4, 4)
        for ts in sigs:
            if ts.time <= t + 1e-6:
                current = (ts.numerator, ts.denominator)
        return current

    # Extend past the last downbeat pretty_midi reports so every note falls inside a bar.
    while downbeats[-1] <= end:
        num, den = signature(downbeats[-1])
        spq = 60.0 / _tempo_at(pm, downbeats[-1])
        downbeats.append(downbeats[-1] + num * 4.0 / den * spq)
    pickup = 1e-3 < first_onset < downbeats[1] - 1e-3
    first = 0 if pickup else 1
    bars = []
    for i, (start, stop) in enumerate(zip(downbeats[:-1], downbeats[1:])):
        if start > end:
            break
        num, den = signature(start)
        bars.append(Bar(first + i, start, stop, num, den))
    return tuple(bars)


def _tempo_at(pm, t: float) -> float:
    times, tempi = pm.get_tempo_changes()
    i = max(0, int(np.searchsorted(times, t + 1e-9, side="right")) - 1)
    return float(tempi[i]) if len(tempi) else DEFAULT_TEMPO


def _bar_of(bars: Sequence[Bar], t: float) -> Bar:
    starts = [b.start for b in bars]
    return bars[max(0, int(np.searchsorted(starts, t + 1e-6, side="right")) - 1)]


def _beat_in_bar(bar: Bar, t: float, beat_times: np.ndarray) -> float:
    length = (bar.end - bar.start) / bar.beats
    return round(1.0 + (t - bar.start) / length, 3) if length > 0 else 1.0


def _musicxml_text(data: bytes, name: str) -> str:
    if data.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()
                root = None
                if "META-INF/container.xml" in names:
                    import re

                    found = re.search(rb'full-path="([^"]+)"', zf.read("META-INF/container.xml"))
                    root = found.group(1).decode() if found else None
                if root is None:
                    root = next((n for n in names if n.endswith((".xml", ".musicxml")) and not n.startswith("META-INF")), None)
                if root is None:
                    raise InputError(f"score {name}: the .mxl archive holds no MusicXML file")
                info = zf.getinfo(root)
                if info.file_size > 8 * MAX_SCORE_BYTES:
                    raise InputError(f"score {name}: its MusicXML unpacks to more than {8 * MAX_SCORE_BYTES // 2**20} MB")
                data = zf.read(root)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise InputError(f"score {name}: is not a readable .mxl archive ({exc})") from None
    return data.decode("utf-8-sig", errors="replace")


def _read_musicxml(data: bytes, name: str) -> Score:
    text = _musicxml_text(data, name)
    try:
        import music21
    except ImportError:
        raise RuntimeFailure("MusicXML scores need music21", hint="pip install 'muse-cli[score]'") from None
    try:
        parsed = music21.converter.parseData(text, format="musicxml")
    except Exception as exc:  # music21 raises many types on malformed files; all mean the same to the user
        raise InputError(f"score {name}: is not readable MusicXML ({str(exc).splitlines()[0][:120] or type(exc).__name__})") from None
    return score_from_music21(parsed, name)


def score_from_music21(stream, name: str, kind: str = "musicxml") -> Score:
    """A Score from a parsed music21 stream (a MusicXML file, or a corpus piece in the benchmark)."""
    from music21 import key as m21key
    from music21 import meter, tempo

    flat = stream.stripTies().flatten()
    marks = list(flat.getElementsByClass(tempo.MetronomeMark))
    first_mark = marks[0].getQuarterBPM() if marks else None
    boundaries = [(float(s), float(e), m.getQuarterBPM() or DEFAULT_TEMPO) for s, e, m in flat.metronomeMarkBoundaries()]

    def seconds(q: float) -> float:
        total = 0.0
        for start, end, bpm in boundaries:
            if q <= start:
                break
            total += (min(q, end) - start) * 60.0 / bpm
        if boundaries and q > boundaries[-1][1]:
            total += (q - boundaries[-1][1]) * 60.0 / boundaries[-1][2]
        return total

    keys = list(flat.getElementsByClass((m21key.KeySignature, m21key.Key)))
    fifths = int(keys[0].sharps) if keys else 0
    notes: list[ScoreNote] = []
    velocities: list[int | None] = []
    for element in flat.notes:
        q = float(element.offset)
        length = float(element.quarterLength)
        if length <= 0:  # grace notes have no written duration: they are ornaments, not aligned
            continue
        bar = int(element.measureNumber) if element.measureNumber is not None else 1
        beat = float(element.beat) if element.beat is not None else 1.0
        velocity = element.volume.velocity if element.volume is not None else None
        for p in getattr(element, "pitches", ()):
            notes.append(ScoreNote(onset=seconds(q), offset=seconds(q + length), pitch=int(p.midi), velocity=None,
                                   bar=bar, beat=round(beat, 3), name=p.nameWithOctave.replace("-", "b"), quarter=q))
            velocities.append(velocity)
    varied = len({v for v in velocities if v is not None}) > 1
    if varied:
        notes = [replace(n, velocity=v) for n, v in zip(notes, velocities)]
    notes.sort(key=lambda n: (n.onset, n.pitch))
    bars = _music21_bars(stream, seconds)
    return _merge_unisons(Score(name, kind, tuple(notes), bars, first_mark, fifths, varied))


def _music21_bars(stream, seconds) -> tuple[Bar, ...]:
    from music21 import stream as m21stream

    parts = list(stream.parts) or [stream]
    bars: list[Bar] = []
    for m in parts[0].getElementsByClass(m21stream.Measure):
        ts = m.timeSignature or m.getContextByClass("TimeSignature")
        num, den = (ts.numerator, ts.denominator) if ts is not None else (4, 4)
        start = float(m.getOffsetInHierarchy(stream))
        bars.append(Bar(int(m.number), seconds(start), seconds(start + float(m.duration.quarterLength)), num, den))
    return tuple(bars) or (Bar(1, 0.0, math.inf, 4, 4),)


# ------------------------------------------------------------------------------------ alignment


@dataclass(frozen=True)
class PlayedNote:
    onset: float
    offset: float
    pitch: int
    velocity: int


@dataclass
class Alignment:
    """Which performed note played which score note, and the fitted score-to-performance map."""

    score_status: list[str]  # per score note: "played", "wrong", "missed"
    score_match: list[int | None]  # per score note: index of the performed note (played or wrong)
    played_status: list[str]  # per performed note: "correct", "wrong", "extra" (or an artifact kind: find_artifacts)
    deviation: list[float | None]  # per score note: performed onset - expected onset, seconds
    map_score: np.ndarray = field(repr=False)  # knots of the fitted map: score seconds ...
    map_perf: np.ndarray = field(repr=False)  # ... -> performance seconds
    slope: np.ndarray = field(repr=False)  # d(perf)/d(score) at each knot: > 1 is slower than written


def align(score: Score, played: Sequence[PlayedNote], *, warp: tuple[np.ndarray, np.ndarray] | None = None,
          ignore: Sequence[int] = (), wrong_semitones: int = WRONG_MAX_SEMITONES) -> Alignment:
    """Align performed notes to score notes (see the module docstring). Needs at least one note each.

    `warp`: a score -> performance map (knots) to start from instead of the DTW's (a previous
    alignment's map). `ignore`: performed notes known to be no key press (transcription
    artifacts): they match no score note and are left "extra" for the caller to mark.
    """
    s_on = np.array([n.onset for n in score.notes])
    s_pitch = np.array([n.pitch for n in score.notes])
    p_on = np.array([n.onset for n in played])
    p_pitch = np.array([n.pitch for n in played])
    if p_on.size == 0:
        return _all_missed(score)
    warp_s, warp_p = warp if warp is not None else _dtw_warp(s_on, s_pitch, p_on, p_pitch)
    if len(ignore):
        p_pitch = p_pitch.copy()
        p_pitch[list(ignore)] = -1000  # matches no written pitch, nor any within a slip of one
    expected = np.interp(s_on, warp_s, warp_p)
    match = _match_same_pitch(expected, s_pitch, p_on, p_pitch, FIRST_WINDOW_S)
    knots, fitted, slope = _fit_map(s_on, p_on, match, warp_s, warp_p)
    for _ in range(2):
        expected = np.interp(s_on, knots, fitted)
        match = _match_same_pitch(expected, s_pitch, p_on, p_pitch, SECOND_WINDOW_S)
        knots, fitted, slope = _fit_map(s_on, p_on, match, knots, fitted)
    # The final matches come from the final map, so every status and deviation agrees with it.
    expected = np.interp(s_on, knots, fitted)
    match = _match_same_pitch(expected, s_pitch, p_on, p_pitch, SECOND_WINDOW_S)
    wrong = _match_wrong(expected, s_pitch, p_on, p_pitch, match, wrong_semitones)
    score_status, score_match, deviation = [], [], []
    played_status = ["extra"] * len(played)
    for i in range(len(score.notes)):
        j = match[i] if match[i] >= 0 else wrong.get(i)
        if j is None:
            score_status.append("missed")
            score_match.append(None)
            deviation.append(None)
            continue
        score_status.append("played" if match[i] >= 0 else "wrong")
        played_status[j] = "correct" if match[i] >= 0 else "wrong"
        score_match.append(int(j))
        deviation.append(float(p_on[j] - expected[i]))
    return Alignment(score_status, score_match, played_status, deviation, knots, fitted, slope)


# ------------------------------------------------------------------ transcribed takes (audio)
#
# A transcription is not a key-press record: basic-pitch misses some notes the player struck (a
# repeated key whose onset the decoder took for a re-trigger, a note whose frame activation stays
# low) and adds notes nobody struck (a loud note's partials heard as notes, an octave-below ghost,
# a second onset inside one note). The score says which key is expected where, so after a first
# alignment the model's own posteriors are read again at those places (score-informed
# transcription), and transcribed notes that only a matched note's sound can explain are set aside.

PARTIALS_ABOVE = (12, 19, 24, 28, 31, 36)  # semitones from a fundamental up to its strong partials 2-8
PARTIALS_BELOW = (12, 19, 24)  # a note this far below a sounding one shares its partials 2, 3, 4
RESCUE_ONSET = 0.5  # onset posterior peak (the decoder's onset threshold) that confirms a score note the decoder dropped ...
RESCUE_ONSET_SHARED = 0.6  # ... and where a note a partial away starts with it (its sound may be all there is)
RESCUE_WINDOW_S = 0.07  # how far from where the alignment expects it the peak may lie
NOISE_QUANTILE = 0.95  # a rescued onset stands above this share of the take's spurious onset peaks ...
NOISE_MIN = 0.3  # ... (local maxima of at least this) ...
NOISE_AWAY_S = 0.3  # ... this far from any written or transcribed onset of their key ...
NOISE_MIN_PEAKS = 20  # ... when there are this many to measure
SOUNDING_LEVEL, SOUNDING_FRAMES = 0.3, 6  # a key sounds when its frame activation held this level so long
SLIP_SEMITONES = 2  # a wrong key looked for in the posteriors: at most a whole tone off ...
SLIP_ONSET = 0.5  # ... with an onset peak the decoder would take (its onset threshold) ...
SLIP_EXPECTED_S = 0.3  # ... on a key the score does not play this close in time
RESCUE_CLAIMED_S = 0.035  # a peak this close to a transcribed note of the key is that note's
HARMONIC_SOUNDING_LEAD_S = 0.06  # a partial may surface this much before its note's transcribed onset
HARMONIC_ATTACK_S = 0.05  # a partial's onset comes with its source's attack, within this
STRONG_ONSET = 0.7  # an onset posterior peak this high is a key struck (the decoder's Decoding.strong_onset)
SAME_KEY_BEFORE_S = 0.30  # a second onset of a key this long before one of its notes ...
SAME_KEY_AFTER_S = 0.10  # ... or while it sounds (and this long after) is read as part of that note
ARTIFACT_KINDS = ("overtone", "undertone", "retrigger")


@dataclass(frozen=True)
class Evidence:
    """The transcription model's posteriors a take was decoded from: [frames, keys] arrays."""

    onset: np.ndarray
    frame: np.ndarray
    fps: float
    lowest_pitch: int  # MIDI number of key 0

    def onset_at(self, t: float, pitch: int, radius: int = 1) -> float:
        """The onset posterior's largest value within `radius` frames of time t on a key."""
        key = pitch - self.lowest_pitch
        if not 0 <= key < self.onset.shape[1]:
            return 0.0
        f = int(round(t * self.fps))
        lo, hi = max(f - radius, 0), min(f + radius + 1, len(self.onset))
        return float(self.onset[lo:hi, key].max()) if hi > lo else 0.0


def align_transcribed(score: Score, played: Sequence[PlayedNote], evidence: Evidence | None = None,
                      ) -> tuple[list[PlayedNote], Alignment, dict[str, int]]:
    """Align a transcribed take. Returns the performed notes (with any rescued ones), the
    alignment, and counts {"rescued": n, "overtone": n, "undertone": n, "retrigger": n}.

    1. align as for MIDI;
    2. with the posteriors, add the missed score notes they confirm (`rescue_missed`), align again;
    3. find transcription artifacts (`find_artifacts`) among the extra and wrong-pitch notes: an
       artifact is no key press, so it may not stand for a wrong pitch either; where one did,
       the wrong pitches are paired again without the artifacts.
    """
    notes = list(played)
    al = align(score, notes, wrong_semitones=SLIP_SEMITONES)
    counts = {"rescued": 0}
    if evidence is not None and notes:
        notes, rescued = rescue_missed(score, notes, al, evidence)
        if rescued:
            al = align(score, notes, warp=(al.map_score, al.map_perf), wrong_semitones=SLIP_SEMITONES)
            counts["rescued"] = rescued
    kinds = find_artifacts(notes, al, evidence)
    if any(al.played_status[j] == "wrong" for j in kinds):
        al = align(score, notes, warp=(al.map_score, al.map_perf), ignore=sorted(kinds), wrong_semitones=SLIP_SEMITONES)
        kinds = find_artifacts(notes, al, evidence)
    for kind in ARTIFACT_KINDS:
        counts[kind] = 0
    for j, kind in kinds.items():
        al.played_status[j] = kind
        counts[kind] += 1
    return notes, al, counts


def rescue_missed(score: Score, played: Sequence[PlayedNote], al: Alignment, ev: Evidence) -> tuple[list[PlayedNote], int]:
    """Score notes the alignment calls missed (or wrong), looked for again in the posteriors.

    The decoder turns an onset peak into a note only when the key's frame activation holds above
    its threshold and, on a key already sounding, only for a very strong onset (else a re-trigger
    of one note would read as two). Both rules guard against notes nobody played; where the score
    expects the key, an onset peak near the expected time (RESCUE_WINDOW_S) is evidence enough that
    the key was struck, a legato repeated note or a soft note in a dense chord, when it reaches
    the decoder's onset threshold (RESCUE_ONSET) and stands above the take's own noise floor
    (`_noise_floor`: how strong this recording's spurious onset peaks are, on silent and on
    sounding keys). A key a partial away from a note that starts with it (an octave, a
    twelfth ...) can take its onset evidence from that note's sound, so there the peak must be
    stronger (RESCUE_ONSET_SHARED). A transcribed unmatched note a key or two away that starts
    there with a stronger onset is the player's slip, whose sound leaks onto the written key: no
    rescue then. A score note the alignment paired with a wrong pitch is rescued too when its own
    key shows such a peak: then the "wrong" note was something else (an extra note, an artifact).

    Where the written key of a missed note shows no such peak, a neighbouring key (at most
    SLIP_SEMITONES away) that the score does not play there, with a peak that passes the same
    tests (SLIP_ONSET), is read as a wrong pitch played for it.

    A rescued note cuts a transcribed note of its key that was still sounding (the decoder had
    merged the two strikes into one note). Returns the notes, sorted, and how many were added.
    """
    s_on = np.array([n.onset for n in score.notes])
    s_pitch = np.array([n.pitch for n in score.notes])
    expected = np.interp(s_on, al.map_score, al.map_perf)
    notes = list(played)
    p_on = np.array([p.onset for p in notes])
    p_pitch = np.array([p.pitch for p in notes])
    window = max(1, int(round(RESCUE_WINDOW_S * ev.fps)))
    floor = _noise_floor(ev, notes, expected, s_pitch)
    unmatched = np.array([j for j, state in enumerate(al.played_status) if state in ("extra", "wrong")], dtype=int)
    u_on, u_pitch = p_on[unmatched], p_pitch[unmatched]
    u_strength = np.array([ev.onset_at(p_on[j], int(p_pitch[j])) for j in unmatched])
    added = []
    for i, note in enumerate(score.notes):
        if al.score_status[i] == "played":
            continue
        f = int(round(expected[i] * ev.fps))
        found = _unclaimed_peak(ev, note.pitch, f, window, RESCUE_ONSET, p_on, p_pitch, floor)
        pitch = note.pitch
        if found is not None:
            leak = ((np.abs(u_pitch - note.pitch) <= SLIP_SEMITONES) & (np.abs(u_on - found / ev.fps) <= RESCUE_WINDOW_S)
                    & (u_strength > ev.onset[found, note.pitch - ev.lowest_pitch]))
            if leak.any():
                continue
        elif al.score_status[i] == "missed":
            best = 0.0
            for slip in range(-SLIP_SEMITONES, SLIP_SEMITONES + 1):
                other = note.pitch + slip
                if slip == 0 or np.any((s_pitch == other) & (np.abs(expected - expected[i]) < SLIP_EXPECTED_S)):
                    continue  # no slip, or a key the score plays here itself
                c = _unclaimed_peak(ev, other, f, window, SLIP_ONSET, p_on, p_pitch, floor)
                if c is not None and ev.onset[c, other - ev.lowest_pitch] > best:
                    found, pitch, best = c, other, float(ev.onset[c, other - ev.lowest_pitch])
        if found is None:
            continue
        key = pitch - ev.lowest_pitch
        length = (note.offset - note.onset) * float(np.interp(note.onset, al.map_score, al.slope))
        end = _activation_end(ev.frame[:, key], found, ev.fps, max(length, 0.06))
        level = ev.frame[found : max(found + 1, int(round(end * ev.fps))), key].astype(np.float32).mean()
        added.append(PlayedNote(round(found / ev.fps, 4), round(end, 4), pitch, int(np.clip(round(127 * float(level)), 1, 127))))
    if not added:
        return notes, 0
    for new in added:  # a rescued strike ends the transcribed note of its key that was sounding
        for j in np.flatnonzero((p_pitch == new.pitch) & (p_on < new.onset)):
            if notes[j].offset > new.onset:
                notes[j] = replace(notes[j], offset=new.onset)
    notes.extend(added)
    notes.sort(key=lambda p: (p.onset, p.pitch))
    return notes, len(added)


def _noise_floor(ev: Evidence, notes: Sequence[PlayedNote], expected: np.ndarray, s_pitch: np.ndarray) -> tuple[float, float]:
    """How strong the onset peaks are that this recording makes where no key was struck, on a
    silent key and on a sounding one: the NOISE_QUANTILE of the onset posterior's local maxima
    (above NOISE_MIN) away from every written and every transcribed onset of their key.

    The model's spurious onsets (a partial, a chord's attack spread over other keys, a blip
    inside a held note) differ in strength from one instrument and room to another; a rescue
    must stand above what this take produces by itself, not only above a fixed threshold.
    """
    onset = ev.onset
    frames, keys = onset.shape
    padded = np.vstack([np.zeros((1, keys), onset.dtype), onset, np.zeros((1, keys), onset.dtype)])
    t, k = np.nonzero((onset > padded[:-2]) & (onset >= padded[2:]) & (onset >= NOISE_MIN))
    if not len(t):
        return 0.0, 0.0
    away = np.ones(len(t), bool)
    seconds = t / ev.fps
    written: dict[int, list[float]] = {}
    for pitch, when in zip(s_pitch, expected):
        written.setdefault(int(pitch) - ev.lowest_pitch, []).append(float(when))
    for p in notes:
        written.setdefault(p.pitch - ev.lowest_pitch, []).append(p.onset)
    for key, times in written.items():
        rows = np.flatnonzero(k == key)
        if not len(rows):
            continue
        times = np.sort(np.array(times))
        i = np.searchsorted(times, seconds[rows])
        gap = np.minimum(np.abs(seconds[rows] - times[np.clip(i - 1, 0, len(times) - 1)]),
                         np.abs(seconds[rows] - times[np.clip(i, 0, len(times) - 1)]))
        away[rows[gap < NOISE_AWAY_S]] = False
    sounding = _sounding(ev, t, k)
    values = onset[t, k].astype(np.float32)
    out = []
    for part in (away & ~sounding, away & sounding):
        out.append(float(np.quantile(values[part], NOISE_QUANTILE)) if part.sum() >= NOISE_MIN_PEAKS else 0.0)
    return out[0], out[1]


def _sounding(ev: Evidence, t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Whether each key was sounding just before frame t, as the decoder's restrike rule sees it
    (transcribe.Decoding: frame activation at its frame threshold from 6 to 3 frames back)."""
    t = np.asarray(t)
    back = np.stack([ev.frame[np.clip(t - lag, 0, len(ev.frame) - 1), k] for lag in range(3, SOUNDING_FRAMES + 1)])
    return (back.min(axis=0) >= SOUNDING_LEVEL) & (t >= SOUNDING_FRAMES)


def _unclaimed_peak(ev: Evidence, pitch: int, f: int, window: int, threshold: float, p_on: np.ndarray,
                    p_pitch: np.ndarray, floor: tuple[float, float] = (0.0, 0.0)) -> int | None:
    """The frame of the onset peak on a key nearest frame f (within `window`) that reaches
    threshold and the take's noise floor (for a silent or a sounding key), is no transcribed
    note's onset, and is not a partial's (see rescue_missed); None when there is none."""
    frames, keys = ev.onset.shape
    key = pitch - ev.lowest_pitch
    lo, hi = max(f - window, 1), min(f + window + 1, frames - 1)
    if not 0 <= key < keys or hi <= lo:
        return None
    column = ev.onset[:, key]
    seg = column[lo:hi]
    peaks = lo + np.flatnonzero((seg >= column[lo - 1 : hi - 1]) & (seg >= column[lo + 1 : hi + 1]) & (seg >= threshold))
    if len(peaks) and max(floor) > threshold:
        sounding = _sounding(ev, peaks, np.full(len(peaks), key))
        peaks = peaks[column[peaks] >= np.where(sounding, floor[1], floor[0])]
    interval = pitch - p_pitch
    partner = np.isin(interval, PARTIALS_ABOVE) | np.isin(-interval, PARTIALS_BELOW)
    for c in sorted(peaks, key=lambda c: abs(c - f)):
        t = c / ev.fps
        if np.any((p_pitch == pitch) & (np.abs(p_on - t) <= RESCUE_CLAIMED_S)):
            continue  # the decoder made this peak a note: the alignment already judged it
        if column[c] < RESCUE_ONSET_SHARED and np.any(partner & (np.abs(p_on - t) <= HARMONIC_SOUNDING_LEAD_S)):
            continue  # a note a partial away starts here: its sound may be all this peak is
        return int(c)
    return None


def _activation_end(frame: np.ndarray, start: int, fps: float, written: float, threshold: float = 0.3,
                    patience: int = 11) -> float:
    """Where a rescued note ends: the key's frame activation staying below threshold (as the
    decoder ends notes), or where the written length (at the local tempo) ends if it never rose."""
    above = np.asarray(frame[start + 1 :], dtype=np.float32) >= threshold
    if not above[:patience].any():
        return start / fps + written
    below = np.convolve(~above, np.ones(patience), mode="valid") >= patience
    first = int(np.argmax(below)) if below.any() else len(above)
    return (start + 1 + first) / fps


def find_artifacts(played: Sequence[PlayedNote], al: Alignment, ev: Evidence | None = None) -> dict[int, str]:
    """For transcribed audio: the extra (and wrong-pitch) notes that a matched note's own sound
    explains, as {performed index: kind}: transcription artifacts, not key presses.

    - "overtone": a partial above a note sounding at its onset (an octave, a twelfth, two octaves ...);
    - "undertone": an octave, a twelfth or two octaves below a sounding note: every partial of the
      upper note is also a partial of the lower one, so the model may hear the lower key;
    - "retrigger": the same key, starting up to SAME_KEY_BEFORE_S before that note (an early bump
      of its onset) or while it sounds (a second onset inside one note).

    The artifact must be weaker than the note that explains it, in transcribed velocity (the frame
    activation) and, where the posteriors are at hand, in onset evidence: a partial or a ghost is
    fainter than its source, while a real stray key struck with the hand's usual force is not.
    A partial is heard from its source's attack: one whose onset comes later than HARMONIC_ATTACK_S
    after the source's, with a strong onset of its own (STRONG_ONSET), is a key struck then.
    An extra note is explained by a right or wrong note; a wrong-pitch note only by a right one.
    """
    onsets = np.array([p.onset for p in played])
    order = np.argsort(onsets, kind="stable")
    sorted_on = onsets[order]
    status = al.played_status
    longest = max((p.offset - p.onset for p, s in zip(played, status) if s in ("correct", "wrong")), default=0.0)
    strength: dict[int, float] = {}

    def onset_strength(j: int) -> float:
        if j not in strength:
            strength[j] = 0.0 if ev is None else ev.onset_at(played[j].onset, played[j].pitch)
        return strength[j]

    found: dict[int, str] = {}
    for j, state in enumerate(status):
        if state not in ("extra", "wrong"):
            continue
        sources = ("correct", "wrong") if state == "extra" else ("correct",)
        p = played[j]
        lo = np.searchsorted(sorted_on, p.onset - longest - 1e-9)
        hi = np.searchsorted(sorted_on, p.onset + SAME_KEY_BEFORE_S, side="right")
        for m in order[lo:hi]:
            if m == j or status[m] not in sources:
                continue
            q = played[m]
            if p.velocity >= q.velocity:
                continue
            sounding = q.onset - HARMONIC_SOUNDING_LEAD_S <= p.onset <= q.offset
            if q.pitch == p.pitch and q.onset - SAME_KEY_BEFORE_S <= p.onset <= q.offset + SAME_KEY_AFTER_S:
                kind = "retrigger"
            elif sounding and p.pitch - q.pitch in PARTIALS_ABOVE:
                kind = "overtone"
            elif sounding and q.pitch - p.pitch in PARTIALS_BELOW:
                kind = "undertone"
            else:
                continue
            if ev is not None:
                own = onset_strength(j)
                if own >= onset_strength(int(m)):
                    continue
                late = kind != "retrigger" and p.onset - q.onset > HARMONIC_ATTACK_S
                if state == "wrong" and (late or own >= STRONG_ONSET):
                    continue  # the score expects a key here: only a faint onset at the attack is a partial
                if late and own >= STRONG_ONSET:
                    continue
            found[j] = kind
            break
    return found


def _all_missed(score: Score) -> Alignment:
    n = len(score.notes)
    t = np.array([0.0, max(score.duration, 1.0)])
    return Alignment(["missed"] * n, [None] * n, [], [None] * n, t, t.copy(), np.ones(2))


def _chroma_frames(onsets: np.ndarray, pitches: np.ndarray, start: float, frames: int, rate: float) -> np.ndarray:
    """[13, frames]: onset-weighted pitch classes per frame (spread over 3 frames), plus a small
    constant row so silent frames have a direction and cosine distances stay defined."""
    x = np.zeros((13, frames))
    idx = np.clip(np.round((onsets - start) * rate).astype(int), 0, frames - 1)
    for spread, weight in ((-1, 0.5), (0, 1.0), (1, 0.5)):
        np.add.at(x, (pitches % 12, np.clip(idx + spread, 0, frames - 1)), weight)
    x[12] = 0.05
    return x / np.linalg.norm(x, axis=0, keepdims=True)


def _dtw_path(cost: np.ndarray) -> np.ndarray:
    """The minimum-cost warping path through cost [n, m] from (0, 0) to (n-1, m-1), as
    librosa.sequence.dtw(C=cost, backtrack=True) with its default steps (diagonal, down, right;
    all weights 1) finds it, first pair first; ties go to the diagonal, then down, as there.

    Row by row: with A[j] = cost[i, j] + min(acc[i-1, j-1], acc[i-1, j]), the accumulated cost
    acc[i, j] = min(A[j], cost[i, j] + acc[i, j-1]) unrolls to S[j] + min over k <= j of
    (A[k] - S[k]), S the running sum of the row's cost: one cumulative minimum per row.
    """
    n, m = cost.shape
    acc = np.empty((n, m))
    acc[0] = np.cumsum(cost[0])
    step = np.empty(m)
    for i in range(1, n):
        run = np.cumsum(cost[i])
        step[0] = acc[i - 1, 0] + cost[i, 0]
        step[1:] = cost[i, 1:] + np.minimum(acc[i - 1, :-1], acc[i - 1, 1:])
        acc[i] = run + np.minimum.accumulate(step - run)
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diagonal, down, right = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if diagonal <= down and diagonal <= right:
                i, j = i - 1, j - 1
            elif down <= right:
                i -= 1
            else:
                j -= 1
        path.append((i, j))
    return np.array(path[::-1])


def _dtw_warp(s_on, s_pitch, p_on, p_pitch) -> tuple[np.ndarray, np.ndarray]:
    """Monotone map (score seconds -> performance seconds) from a DTW over chroma frames."""
    s0, p0 = float(s_on.min()), float(p_on.min())
    s_len, p_len = float(s_on.max()) - s0, float(p_on.max()) - p0
    rate = min(DTW_RATE, (DTW_MAX_FRAMES - 1) / max(s_len, p_len, 1e-3))
    ns, npf = int(round(s_len * rate)) + 1, int(round(p_len * rate)) + 1
    if ns < 2 or npf < 2:
        return np.array([s0, s0 + 1.0]), np.array([p0, p0 + 1.0])
    xs = _chroma_frames(s_on, s_pitch, s0, ns, rate)
    xp = _chroma_frames(p_on, p_pitch, p0, npf, rate)
    cost = 1.0 - xs.T @ xp
    path = _dtw_path(cost)
    # Average the performance frames that each score frame maps to: a monotone, one-valued map.
    sums = np.bincount(path[:, 0], weights=path[:, 1], minlength=ns)
    counts = np.bincount(path[:, 0], minlength=ns)
    frames_p = sums / np.maximum(counts, 1)
    return s0 + np.arange(ns) / rate, p0 + np.maximum.accumulate(frames_p) / rate


def _match_same_pitch(expected, s_pitch, p_on, p_pitch, window: float) -> np.ndarray:
    """match[i] = index of the performed note of score note i's pitch nearest its expected onset
    (within window), each performed note used once, closest pairs first; -1 where none."""
    pairs = []
    order = np.argsort(p_on)
    sorted_on = p_on[order]
    for i, (t, pitch) in enumerate(zip(expected, s_pitch)):
        lo, hi = np.searchsorted(sorted_on, [t - window, t + window])
        for j in order[lo:hi]:
            if p_pitch[j] == pitch:
                pairs.append((abs(p_on[j] - t), i, int(j)))
    pairs.sort()
    match = np.full(len(s_pitch), -1)
    used = np.zeros(len(p_on), dtype=bool)
    for _, i, j in pairs:
        if match[i] < 0 and not used[j]:
            match[i], used[j] = j, True
    return match


def _match_wrong(expected, s_pitch, p_on, p_pitch, match, semitones: int = WRONG_MAX_SEMITONES) -> dict[int, int]:
    """Pair unmatched score notes with unmatched performed notes close in time and pitch: wrong
    pitches (a slip to a nearby key). Nearest in time first; among equally near, the nearer pitch.
    A note further off is read as a missed note and an extra one."""
    used = np.zeros(len(p_on), dtype=bool)
    used[match[match >= 0]] = True
    free_p = np.flatnonzero(~used)
    pairs = []
    for i in np.flatnonzero(match < 0):
        near = free_p[(np.abs(p_on[free_p] - expected[i]) < WRONG_WINDOW_S)
                      & (np.abs(p_pitch[free_p] - s_pitch[i]) <= semitones)]
        for j in near:
            pairs.append((abs(p_on[j] - expected[i]) + 0.002 * abs(int(p_pitch[j]) - int(s_pitch[i])), int(i), int(j)))
    pairs.sort()
    wrong: dict[int, int] = {}
    taken: set[int] = set()
    for _, i, j in pairs:
        if i not in wrong and j not in taken:
            wrong[i] = j
            taken.add(j)
    return wrong


def _fit_map(s_on, p_on, match, prev_s, prev_p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth score->performance map from matched onsets: at each distinct score onset, a
    weighted linear fit over the FIT_NEIGHBOURS nearest matched onsets (tricube weights), refit
    once without pairs far off the first fit. Too few matches: the previous map stands."""
    ok = match >= 0
    if ok.sum() < 4:
        slope = np.gradient(prev_p, prev_s) if len(prev_s) > 1 else np.ones(len(prev_s))
        return prev_s, prev_p, slope
    x, y = s_on[ok], p_on[match[ok]]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    keep = np.ones(len(x), dtype=bool)
    knots = np.unique(s_on)
    for _ in range(2):
        fitted, slope = _local_linear(x[keep], y[keep], knots)
        residual = y - np.interp(x, knots, fitted)
        spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))
        keep = np.abs(residual) <= max(4 * spread, 0.06)
        if keep.sum() < 4:
            keep[:] = True
    fitted, slope = _local_linear(x[keep], y[keep], knots)
    fitted = np.maximum.accumulate(fitted)
    return knots, fitted, slope


def _local_linear(x: np.ndarray, y: np.ndarray, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and slope at each knot of a tricube-weighted linear fit over its nearest matched
    onsets (x sorted), all knots at once. The knot's own onset (its chord) is left out while
    enough others remain: a note's deviation is measured against where its neighbours place it,
    so the fit does not absorb the deviation it is there to measure."""
    k = min(FIT_NEIGHBOURS, len(x))
    pos = np.searchsorted(x, knots)
    idx = pos[:, None] + np.arange(-k, k)[None, :]
    valid = (idx >= 0) & (idx < len(x))
    idx = np.clip(idx, 0, len(x) - 1)
    d = np.where(valid, np.abs(x[idx] - knots[:, None]), np.inf)
    own = d < 1e-6
    others = np.sum(np.isfinite(d) & ~own, axis=1)
    d = np.where(own & (others >= FIT_MIN_NEIGHBOURS)[:, None], np.inf, d)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    d = np.take_along_axis(d, order, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    inside = np.sum(d <= FIT_RADIUS_S, axis=1)
    use = np.maximum(inside, min(FIT_MIN_NEIGHBOURS, k))
    used = (np.arange(k)[None, :] < use[:, None]) & np.isfinite(d)
    radius = np.max(np.where(used, d, 0.0), axis=1, keepdims=True) * 1.0001 + 1e-6
    w = np.where(used, (1 - (np.minimum(d, radius) / radius) ** 3) ** 3 + 1e-3, 0.0)
    xs, ys = x[idx] - knots[:, None], y[idx]
    total = w.sum(axis=1)
    xm, ym = (w * xs).sum(axis=1) / total, (w * ys).sum(axis=1) / total
    var = (w * (xs - xm[:, None]) ** 2).sum(axis=1) / total
    cov = (w * (xs - xm[:, None]) * (ys - ym[:, None])).sum(axis=1) / total
    slope = np.clip(np.where(var > 1e-9, cov / np.maximum(var, 1e-12), 1.0), 0.25, 4.0)
    return ym - slope * xm, slope

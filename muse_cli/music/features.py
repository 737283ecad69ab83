"""Measured performance descriptors: tempo and timing, loudness, articulation, pedal, timbre, notes.

Functions take mono float audio at ANALYSIS_RATE and/or a list of notes (anything with `onset`,
`offset`, `pitch`, `velocity`), and return plain numbers; muse_cli.analysis turns them into the
report with units and readings. Every definition is written out in docs/analysis-schema.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

ANALYSIS_RATE = 22050
BEAT_HOP = 256  # onset envelope hop: 11.6 ms, fine enough for beat intervals of a few percent
STFT_HOP = 512
N_FFT = 2048
CURVE_HOP_S = 0.25
MOMENTARY_WINDOW_S = 0.4  # EBU momentary loudness
SHORT_TERM_WINDOW_S = 3.0  # EBU Tech 3341 short-term loudness
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -20.0  # EBU Tech 3342 (loudness range) gate
SWELL_MIN_DB = 3.0
SWELL_MIN_S = 2.0
CHORD_TOLERANCE_S = 0.05  # onsets closer than this belong to one chord
MAX_IOI_S = 2.0  # a longer gap is a rest or phrase end, not a note-to-note connection
STACCATO_RATIO = 0.5
OVERLAP_RATIO = 1.25


class NoteLike(Protocol):
    onset: float
    offset: float
    pitch: int
    velocity: int


# --------------------------------------------------------------------------------------- tempo


def onset_envelope(y: np.ndarray, sr: int = ANALYSIS_RATE) -> np.ndarray:
    """Spectral-flux onset strength of mono audio, one value per BEAT_HOP samples."""
    import librosa

    return librosa.onset.onset_strength(y=y, sr=sr, hop_length=BEAT_HOP)


def notes_envelope(notes: Sequence[NoteLike], duration: float, sr: int = ANALYSIS_RATE) -> np.ndarray:
    """An onset envelope made from notes: impulses at onsets, smoothed over ~35 ms.

    Lets MIDI input use the same beat tracker as audio. Velocity weighs in only by half, so soft
    passages still carry beats.
    """
    n = int(math.ceil(duration * sr / BEAT_HOP)) + 1
    env = np.zeros(n)
    for note in notes:
        i = int(round(note.onset * sr / BEAT_HOP))
        if 0 <= i < n:
            env[i] += 0.5 + 0.5 * note.velocity / 127
    kernel = np.hanning(7)
    return np.convolve(env, kernel / kernel.sum(), mode="same")


def global_tempo(envelope: np.ndarray, sr: int = ANALYSIS_RATE, prior_bpm: float = 120.0) -> float | None:
    """Dominant beat rate (BPM) from the autocorrelation of the whole onset envelope.

    Weighted by a log-normal prior one octave wide around `prior_bpm`, as librosa's tempo estimate
    is; one FFT instead of its windowed tempogram, which costs a third of all the descriptors.
    """
    fps = sr / BEAT_HOP
    env = envelope - envelope.mean()
    size = 1 << int(2 * len(env) - 1).bit_length()
    spectrum = np.fft.rfft(env, size)
    autocorr = np.fft.irfft(spectrum * np.conj(spectrum), size)
    lags = np.arange(max(1, int(fps * 60 / 300)), min(len(env), int(fps * 60 / 30)) + 1)
    if lags.size == 0:
        return None
    bpm = 60 * fps / lags
    prior = np.exp(-0.5 * np.log2(bpm / prior_bpm) ** 2)
    best = int(np.argmax(autocorr[lags] * prior))
    return float(bpm[best]) if autocorr[lags[best]] > 0 else None


def beat_times(envelope: np.ndarray, sr: int = ANALYSIS_RATE, trim: bool = True) -> np.ndarray:
    """Beat positions in seconds (librosa's dynamic-programming tracker on the onset envelope).

    `trim` drops weak beats at the edges: right for audio with lead-in noise, wrong for notes.
    """
    import librosa

    if envelope.size < 4 or not np.any(envelope > 0):
        return np.zeros(0)
    bpm = global_tempo(envelope, sr)
    if bpm is None:
        return np.zeros(0)
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=BEAT_HOP, bpm=bpm, trim=trim)
    return librosa.frames_to_time(frames, sr=sr, hop_length=BEAT_HOP)


def tempo_from_beats(beats: np.ndarray) -> float | None:
    """Mean tempo in BPM: slope of beat time against beat number (sub-frame precise over many beats)."""
    if len(beats) < 4:
        return None
    slope = np.polyfit(np.arange(len(beats)), beats, 1)[0]
    return float(60.0 / slope) if slope > 0 else None


def tempo_curve(beats: np.ndarray, smooth: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Local tempo (BPM) at the middle of each beat interval, median-smoothed over `smooth` intervals."""
    from scipy.ndimage import median_filter

    if len(beats) < 3:
        return np.zeros(0), np.zeros(0)
    intervals = np.diff(beats)
    bpm = 60.0 / median_filter(intervals, size=min(smooth, len(intervals)), mode="nearest")
    return (beats[:-1] + beats[1:]) / 2, bpm


def timing_variation(beats: np.ndarray) -> float | None:
    """Coefficient of variation of beat intervals, in percent (0 = metronomic)."""
    if len(beats) < 4:
        return None
    intervals = np.diff(beats)
    return float(100.0 * intervals.std() / intervals.mean())


# ------------------------------------------------------------------------------------ loudness


def _biquad(kind: str, fc: float, q: float, gain_db: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook high-shelf or high-pass coefficients (b, a), a[0] = 1."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * fc / sr
    alpha = math.sin(w0) / (2 * q)
    cos = math.cos(w0)
    if kind == "high_shelf":
        root = 2 * math.sqrt(a_gain) * alpha
        b = [a_gain * ((a_gain + 1) + (a_gain - 1) * cos + root),
             -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cos),
             a_gain * ((a_gain + 1) + (a_gain - 1) * cos - root)]
        a = [(a_gain + 1) - (a_gain - 1) * cos + root,
             2 * ((a_gain - 1) - (a_gain + 1) * cos),
             (a_gain + 1) - (a_gain - 1) * cos - root]
    else:  # high_pass
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array(b) / a[0], np.array(a) / a[0]


def k_weighted_power(audio: np.ndarray, sr: int) -> np.ndarray:
    """BS.1770 K-weighted power summed over channels (weight 1 each), per sample.

    The two K-weighting stages (a +4 dB shelf above ~1.5 kHz, a high-pass near 38 Hz) are designed
    for the file's own rate, so no resampling is needed.
    """
    from scipy.signal import sosfilt

    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    stages = (("high_shelf", 1500.0, 1 / math.sqrt(2), 4.0), ("high_pass", 38.0, 0.5, 0.0))
    sos = np.array([np.concatenate(_biquad(kind, fc, q, gain, sr)) for kind, fc, q, gain in stages])
    x = sosfilt(sos, x, axis=1)
    return np.einsum("ij,ij->j", x, x)


def windowed_loudness(power: np.ndarray, sr: int, window_s: float, hop_s: float = CURVE_HOP_S):
    """(times_s, LUFS) of sliding-window loudness; times are window centres; silence is -inf."""
    window = max(1, min(len(power), int(round(window_s * sr))))
    hop = max(1, int(round(hop_s * sr)))
    csum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, max(1, len(power) - window + 1), hop)
    mean = (csum[starts + window] - csum[starts]) / window
    with np.errstate(divide="ignore"):
        lufs = -0.691 + 10 * np.log10(mean)
    return (starts + window / 2) / sr, lufs


def integrated(momentary: np.ndarray) -> float | None:
    """BS.1770 integrated loudness (LUFS) from 400 ms blocks at 75 % overlap (100 ms hop).

    The absolute gate drops blocks under -70 LUFS, the relative gate blocks 10 LU under the mean
    of the rest; None when nothing passes (silence).
    """
    kept = momentary[momentary > ABSOLUTE_GATE_LUFS]
    if kept.size == 0:
        return None
    mean = 10 * np.log10(np.mean(10 ** (kept / 10)))
    kept = kept[kept > mean - 10]
    return float(10 * np.log10(np.mean(10 ** (kept / 10))))


def gated(lufs: np.ndarray) -> np.ndarray:
    """Blocks above the absolute gate and the relative gate (20 LU under their power mean)."""
    kept = lufs[lufs > ABSOLUTE_GATE_LUFS]
    if kept.size == 0:
        return kept
    mean = 10 * np.log10(np.mean(10 ** (kept / 10)))
    return kept[kept > mean + RELATIVE_GATE_LU]


def dynamic_range(short_term: np.ndarray) -> float | None:
    """95th minus 5th percentile of gated short-term loudness, in dB."""
    kept = gated(short_term)
    if kept.size < 2:
        return None
    return float(np.percentile(kept, 95) - np.percentile(kept, 5))


@dataclass(frozen=True)
class SwellSpan:
    kind: str  # "crescendo" | "diminuendo"
    start_s: float
    end_s: float
    size_db: float


def _turning_points(values: np.ndarray, threshold: float) -> list[int]:
    """Indices of peaks and troughs that stand at least `threshold` above/below their neighbours."""
    points = [0]
    lo = hi = 0
    direction = 0
    for i in range(1, len(values)):
        if values[i] > values[hi]:
            hi = i
        if values[i] < values[lo]:
            lo = i
        if direction >= 0 and values[hi] - values[i] >= threshold:
            if hi != points[-1]:
                points.append(hi)
            direction, lo = -1, i
        elif direction <= 0 and values[i] - values[lo] >= threshold:
            if lo != points[-1]:
                points.append(lo)
            direction, hi = 1, i
    last = hi if direction > 0 else lo if direction < 0 else len(values) - 1
    if last != points[-1]:
        points.append(last)
    return points


def active_span(times: np.ndarray, lufs: np.ndarray, window_s: float) -> tuple[float, float] | None:
    """(start, end) seconds from the first to the last block that passes the gates."""
    kept = gated(lufs)
    if kept.size == 0:
        return None
    idx = np.nonzero(lufs >= kept.min())[0]
    return float(times[idx[0]] - window_s / 2), float(times[idx[-1]] + window_s / 2)


def inside(times: np.ndarray, window_s: float, span: tuple[float, float] | None) -> np.ndarray:
    """Mask of windows (centred at `times`) lying wholly within `span`: no lead-in or fade-out edges."""
    if span is None:
        return np.zeros(len(times), dtype=bool)
    return (times - window_s / 2 >= span[0] - 0.05) & (times + window_s / 2 <= span[1] + 0.05)


def swells(times: np.ndarray, lufs: np.ndarray, min_db: float = SWELL_MIN_DB, min_s: float = SWELL_MIN_S):
    """Crescendos and diminuendos: rises/falls of >= min_db over >= min_s between turning points
    of the (short-term) loudness curve, which the caller limits to the performance's active span.
    """
    if len(lufs) < 2:
        return []
    v = np.where(np.isfinite(lufs), lufs, ABSOLUTE_GATE_LUFS)
    result = []
    points = _turning_points(v, min_db)
    for a, b in itertools.pairwise(points):
        size = float(v[b] - v[a])
        if abs(size) >= min_db and times[b] - times[a] >= min_s:
            kind = "crescendo" if size > 0 else "diminuendo"
            result.append(SwellSpan(kind, float(times[a]), float(times[b]), round(abs(size), 2)))
    return result


# ---------------------------------------------------------------------------------- spectrum


def brightness(y: np.ndarray, sr: int = ANALYSIS_RATE) -> float | None:
    """Median spectral centroid (Hz) over frames within 40 dB of the loudest frame."""
    import librosa

    spectrum = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=STFT_HOP))
    if not spectrum.any():
        return None
    centroid = librosa.feature.spectral_centroid(S=spectrum, sr=sr)[0]
    energy = spectrum.sum(axis=0)
    loud = energy >= energy.max() * 10 ** (-40 / 20)
    return float(np.median(centroid[loud]))


def chroma_weights(y: np.ndarray, sr: int = ANALYSIS_RATE) -> np.ndarray:
    """12-bin pitch-class energy of audio, for key finding when there are no notes."""
    import librosa

    # tuning=0: librosa's tuning estimate is slow, and its numba gufunc crashes with numba 0.68 +
    # numpy 2.4; a piano a few cents off concert pitch still lands in the right chroma bins.
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=N_FFT, hop_length=STFT_HOP, tuning=0.0)
    return chroma.sum(axis=1)


# ------------------------------------------------------------------------------------- notes


def _next_onsets(notes: Sequence[NoteLike]) -> np.ndarray:
    """For each note, the onset of the next chord (onsets within CHORD_TOLERANCE_S are one chord)."""
    onsets = np.array([n.onset for n in notes])
    chords = np.sort(onsets)
    starts = chords[np.concatenate([[True], np.diff(chords) > CHORD_TOLERANCE_S])]
    index = np.searchsorted(starts, onsets + CHORD_TOLERANCE_S, side="right")
    padded = np.concatenate([starts, [np.inf]])
    return padded[index]


def legato_ratios(notes: Sequence[NoteLike], offsets: np.ndarray | None = None) -> np.ndarray:
    """Duration over the time to the next chord, per note followed within MAX_IOI_S.

    `offsets` replaces the notes' own ends (e.g. pedal-extended ones).
    """
    if len(notes) < 2:
        return np.zeros(0)
    onsets = np.array([n.onset for n in notes])
    ends = np.array([n.offset for n in notes]) if offsets is None else np.asarray(offsets)
    durations = ends - onsets
    ioi = _next_onsets(notes) - onsets
    keep = ioi <= MAX_IOI_S
    return durations[keep] / ioi[keep]


def sounding_count(notes: Sequence[NoteLike], rate: float = 100.0) -> np.ndarray:
    """Number of notes sounding in each 1/rate s step from 0 to the last offset."""
    end = max(n.offset for n in notes)
    counts = np.zeros(int(math.ceil(end * rate)) + 2)
    for n in notes:
        counts[int(round(n.onset * rate))] += 1
        counts[int(round(max(n.offset, n.onset) * rate))] -= 1
    return np.cumsum(counts)[:-1]


def polyphony(notes: Sequence[NoteLike]) -> tuple[float, int]:
    """(mean number of notes sounding while any sounds, maximum)."""
    counts = sounding_count(notes)
    active = counts[counts > 0]
    if active.size == 0:
        return 0.0, 0
    return float(active.mean()), int(counts.max())


def note_density(notes: Sequence[NoteLike]) -> float:
    """Notes per second between the first onset and the last offset."""
    span = max(n.offset for n in notes) - min(n.onset for n in notes)
    return len(notes) / span if span > 0 else 0.0


def pedal_down_share(intervals: Sequence[tuple[float, float]], duration: float) -> float:
    """Share of the piece (0..1) with the sustain pedal down, from (down, up) times."""
    if duration <= 0:
        return 0.0
    return min(1.0, sum(max(0.0, up - down) for down, up in intervals) / duration)


def pitch_class_weights(notes: Sequence[NoteLike]) -> np.ndarray:
    from muse_cli.music.theory import duration_weighted_pitch_classes

    return duration_weighted_pitch_classes((n.pitch, n.offset - n.onset) for n in notes)


def pedal_intervals(events: Sequence[tuple[float, int]], end: float) -> list[tuple[float, float]]:
    """(down, up) seconds from sustain-pedal (CC64) events (time, value); down means value >= 64."""
    intervals, down = [], None
    for time, value in sorted(events):
        if value >= 64 and down is None:
            down = time
        elif value < 64 and down is not None:
            intervals.append((down, time))
            down = None
    if down is not None:
        intervals.append((down, max(down, end)))
    return intervals


def pedal_extended_offsets(notes: Sequence[NoteLike], intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    """Where each note stops sounding: its key release, or the pedal lift if the pedal holds it."""
    offsets = np.array([n.offset for n in notes], dtype=float)
    for down, up in intervals:
        held = (offsets >= down) & (offsets < up)
        offsets[held] = up
    return offsets

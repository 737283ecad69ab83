"""Measured performance descriptors: tempo and timing, loudness, articulation, pedal, timbre, notes.

Functions take mono float audio at ANALYSIS_RATE and/or a list of notes (anything with `onset`,
`offset`, `pitch`, `velocity`), and return plain numbers; muse_cli.pipelines.analysis turns them into the
report with units and readings. Every definition is written out in docs/analysis-schema.md.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import typing
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
    """Spectral-flux onset strength of mono audio, one value per BEAT_HOP samples.

    librosa.onset.onset_strength's definition (mean over 128 mel bands of the rise in dB, frames
    centred, top_db 80), computed by `Spectra` without librosa: see that class.
    """
    y = np.asarray(y, dtype=np.float32)
    first = Spectra(sr)
    first.add(y)
    first.finish()
    return first.onsets().onset_envelope()


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
    if envelope.size < 4 or not np.any(envelope > 0):
        return np.zeros(0)
    bpm = global_tempo(envelope, sr)
    if bpm is None:
        return np.zeros(0)
    frames = track_beats(envelope, sr / BEAT_HOP, bpm, trim=trim)
    return frames * BEAT_HOP / sr


def track_beats(envelope: np.ndarray, frame_rate: float, bpm: float, tightness: float = 100.0, trim: bool = True) -> np.ndarray:
    """Beat frames: Ellis's dynamic programme (2007) as librosa.beat.beat_track runs it (0.11, beat.py
    `__beat_tracker` and helpers), in numpy so that no numba kernel is compiled at run time.

    The onset envelope is scaled by its standard deviation and smoothed by a Gaussian one beat
    wide; each frame's best predecessor lies between half a beat and two beats back, penalised by
    `tightness` times the squared log-ratio to one beat. Predecessors are at least half a beat
    back, so half a beat of frames is decided at once. The beat path is read back from the last
    local maximum of the cumulative score above half its median; with `trim`, frames whose
    smoothed score is under half the beats' RMS are dropped at both ends.
    """
    env = np.asarray(envelope, dtype=np.float64)
    n = len(env)
    if n == 0 or not env.any():
        return np.zeros(0, dtype=int)
    period = float(np.round(frame_rate * 60.0 / bpm))
    norm = env / (env.std(ddof=1) + np.finfo(env.dtype).tiny)
    # librosa's convolution leaves out the first frame (its loop stops one index short).
    norm[0] = 0.0
    window = np.exp(-0.5 * (np.arange(-period, period + 1) * 32.0 / period) ** 2)
    score = np.convolve(norm, window, mode="same")
    if len(window) > n:  # np.convolve "same" centres on the longer input
        score = np.convolve(norm, window, mode="full")[len(window) // 2 : len(window) // 2 + n]
    near, far = int(np.round(period / 2)), int(2 * period)
    lags = np.arange(near, far + 1)  # nearest predecessor first: ties go to it, as in librosa
    penalty = -tightness * (np.log(lags) - np.log(period)) ** 2
    cumscore = np.empty(n)
    backlink = np.full(n, -1, dtype=np.int64)
    step = max(1, near)
    for first in range(0, n, step):
        rows = np.arange(first, min(n, first + step))
        loc = rows[:, None] - lags[None, :]
        valid = loc >= 0
        cand = np.where(valid, cumscore[np.maximum(loc, 0)] + penalty[None, :], -np.inf)
        best = np.argmax(cand, axis=1)
        found = valid[np.arange(len(rows)), best]
        cumscore[rows] = score[rows] + np.where(found, cand[np.arange(len(rows)), best], 0.0)
        backlink[rows] = np.where(found, loc[np.arange(len(rows)), best], -1)
    threshold = 0.01 * score.max()
    started = np.flatnonzero(score >= threshold)
    backlink[: started[0] if started.size else n] = -1  # no beat before the first clear onset
    peaks = np.zeros(n, dtype=bool)
    peaks[1:-1] = (cumscore[1:-1] > cumscore[:-2]) & (cumscore[1:-1] >= cumscore[2:])
    if n > 1:
        peaks[-1] = cumscore[-1] > cumscore[-2]
    tail = n - 1
    if peaks.any():
        median = float(np.median(cumscore[peaks]))
        ok = np.flatnonzero(peaks & (cumscore >= 0.5 * median))
        tail = int(ok[-1]) if ok.size else n - 1
    beats = np.zeros(n, dtype=bool)
    while tail >= 0:
        beats[tail] = True
        tail = int(backlink[tail])
    smooth = np.convolve(score[beats], np.hanning(5))[2 : n + 2]
    cut = 0.5 * float(np.sqrt(np.mean(smooth**2))) if trim else 0.0
    low = score <= cut
    head = int(np.argmin(low)) if not low.all() else n
    beats[:head] = False
    back = int(np.argmin(low[::-1])) if not low.all() else n
    beats[n - back :] = False
    return np.flatnonzero(beats)


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


class LoudnessStream:
    """`k_weighted_power` then `windowed_loudness` for the momentary and short-term windows, fed
    block by block: the filters carry their state across blocks and the running sum of power is
    kept only at the window edges, so the result equals the whole-array functions' and memory
    holds a few numbers per 100 ms."""

    def __init__(self, sr: int):
        self.sr = sr
        stages = (("high_shelf", 1500.0, 1 / math.sqrt(2), 4.0), ("high_pass", 38.0, 0.5, 0.0))
        self.sos = np.array([np.concatenate(_biquad(kind, fc, q, gain, sr)) for kind, fc, q, gain in stages])
        self.state: np.ndarray | None = None
        self.samples = 0
        self.carry = 0.0  # running sum of power up to `samples`
        self.windows = {"momentary": (MOMENTARY_WINDOW_S, 0.1), "short_term": (SHORT_TERM_WINDOW_S, CURVE_HOP_S)}
        self.marks: dict[int, float] = {0: 0.0}  # sample index -> running sum before it

    def add(self, audio: np.ndarray) -> None:
        from scipy.signal import sosfilt

        x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
        if self.state is None:
            self.state = np.zeros((self.sos.shape[0], x.shape[0], 2))
        x, self.state = sosfilt(self.sos, x, axis=1, zi=self.state)
        power = np.einsum("ij,ij->j", x, x)
        csum = np.cumsum(np.concatenate([[self.carry], power]))  # csum[i]: sum before sample samples + i
        lo, hi = self.samples, self.samples + len(power)
        for window_s, hop_s in self.windows.values():
            window, hop = max(1, int(round(window_s * self.sr))), max(1, int(round(hop_s * self.sr)))
            for offset in (0, window):
                first = -(-(lo + 1 - offset) // hop) * hop + offset  # marks in (lo, hi]
                for at in range(max(first, offset), hi + 1, hop):
                    self.marks[at] = float(csum[at - lo])
        self.marks[hi] = float(csum[-1])
        self.carry, self.samples = float(csum[-1]), hi

    def curve(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(times_s, LUFS) as `windowed_loudness(k_weighted_power(audio), sr, window, hop)`."""
        window_s, hop_s = self.windows[name]
        n = self.samples
        window = max(1, min(n, int(round(window_s * self.sr))))
        hop = max(1, int(round(hop_s * self.sr)))
        starts = np.arange(0, max(1, n - window + 1), hop)
        if window == n:  # a clip shorter than the window: one window, the whole clip
            mean = np.array([(self.marks[n] - self.marks[0]) / window])
        else:
            mean = (np.array([self.marks[int(a) + window] for a in starts]) - np.array([self.marks[int(a)] for a in starts])) / window
        with np.errstate(divide="ignore"):
            lufs = -0.691 + 10 * np.log10(mean)
        return (starts + window / 2) / self.sr, lufs


class Outline:
    """Min and max of a waveform fed in blocks, per 256 samples; `envelope` draws it in k points."""

    STEP = 256

    def __init__(self):
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.rest = np.zeros(0, np.float32)

    def add(self, y: np.ndarray) -> None:
        y = np.concatenate([self.rest, y])
        whole = len(y) - len(y) % self.STEP
        if whole:
            rows = y[:whole].reshape(-1, self.STEP)
            self.lo.append(rows.min(axis=1))
            self.hi.append(rows.max(axis=1))
        self.rest = y[whole:]

    def envelope(self, points: int) -> np.ndarray:
        lo = np.concatenate(self.lo + ([self.rest.min(keepdims=True)] if self.rest.size else []))
        hi = np.concatenate(self.hi + ([self.rest.max(keepdims=True)] if self.rest.size else []))
        if len(lo) <= points:
            return np.vstack([lo, hi])
        groups = np.array_split(np.arange(len(lo)), points)
        return np.vstack([[lo[g].min() for g in groups], [hi[g].max() for g in groups]])


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
    spectra = Spectra(sr)
    spectra.add(np.asarray(y, dtype=np.float32))
    spectra.finish()
    return spectra.brightness()


def chroma_weights(y: np.ndarray, sr: int = ANALYSIS_RATE) -> np.ndarray:
    """12-bin pitch-class energy of audio, for key finding when there are no notes."""
    spectra = Spectra(sr)
    spectra.add(np.asarray(y, dtype=np.float32))
    spectra.finish()
    return spectra.chroma.astype(np.float32)


# ---------------------------------------------------------------------- spectra, in blocks


def mel_filters(sr: int, n_fft: int = N_FFT, n_mels: int = 128) -> np.ndarray:
    """Slaney-style mel filterbank [n_mels, 1 + n_fft // 2] (float32), as librosa.filters.mel's
    default: triangles on Slaney's mel scale (linear to 1 kHz, logarithmic above) from 0 Hz to
    Nyquist, each scaled to unit area (2 / bandwidth)."""
    def to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        step, knee, log_step = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
        return np.where(hz >= knee, knee / step + np.log(np.maximum(hz, 1e-300) / knee) / log_step, hz / step)

    def to_hz(mel):
        step, knee, log_step = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
        return np.where(mel >= knee / step, knee * np.exp(log_step * (mel - knee / step)), step * mel)

    edges = to_hz(np.linspace(to_mel(0.0), to_mel(sr / 2.0), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    width = np.diff(edges)
    offset = edges[:, None] - bins[None, :]
    rising = -offset[:-2] / width[:-1, None]
    falling = offset[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


def chroma_filters(sr: int, n_fft: int = N_FFT) -> np.ndarray:
    """12-bin chroma filterbank [12, 1 + n_fft // 2] (float32), as librosa.filters.chroma's default
    (Ellis's chromagram): per FFT bin a Gaussian bump around its pitch class (width two bin
    spacings, at least a semitone), columns scaled to unit L2 norm, weighted by a Gaussian over
    octaves centred on octave 5, two octaves wide; rows start at C; tuning 0 (A = 440 Hz)."""
    n_chroma = 12
    freqs = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    octs = np.log2(freqs / (440.0 / 16))
    pos = n_chroma * octs
    pos = np.concatenate([[pos[0] - 1.5 * n_chroma], pos])  # 0 Hz: 1.5 octaves under bin 1
    width = np.concatenate([np.maximum(np.diff(pos), 1.0), [1.0]])
    dist = pos[None, :] - np.arange(n_chroma, dtype=np.float64)[:, None]
    half = float(np.round(n_chroma / 2))
    dist = np.remainder(dist + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * dist / width[None, :]) ** 2)
    norm = np.sqrt(np.sum(weights**2, axis=0, keepdims=True))
    weights = weights / np.where(norm < np.finfo(weights.dtype).tiny, 1.0, norm)
    weights *= np.exp(-0.5 * ((pos / n_chroma - 5.0) / 2.0) ** 2)[None, :]
    weights = np.roll(weights, -3, axis=0)
    return np.ascontiguousarray(weights[:, : 1 + n_fft // 2], dtype=np.float32)


class Spectra:
    """Short-time spectra of mono audio fed in blocks, reduced at once to what the report needs.

    Frames are librosa's (n_fft 2048, hop BEAT_HOP, Hann window, centred with zero padding), so a
    frame's spectrum does not depend on where the blocks were cut. From each frame it keeps: the
    mel power's maximum (for the onset envelope's 80 dB floor), and on every second frame (hop
    STFT_HOP) the spectral centroid, the energy and the normalised chroma, summed. The onset
    envelope needs the whole file's maximum first (librosa's ref=max), so it is a second pass over
    the mel spectra, which the first pass spills to an unnamed temporary file (`onsets`): the audio
    is not decoded, resampled and transformed a second time.
    Memory: one block plus a few numbers per frame; disk: 512 bytes per frame (22 kB per second).
    """

    def __init__(self, sr: int = ANALYSIS_RATE):
        self.sr = sr
        self.window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as scipy.signal.get_window("hann")
        self.mel = mel_filters(sr)
        self.chroma_fb = chroma_filters(sr)
        self.freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
        self.buffer = np.zeros(N_FFT // 2, np.float32)  # centred: the first frame sees zeros before 0
        self.frame = 0  # index of the next frame, hop BEAT_HOP
        self.samples = 0
        self.mel_max = 0.0
        self.centroids: list[np.ndarray] = []
        self.energies: list[np.ndarray] = []
        self.chroma = np.zeros(12)
        self.any_sound = False
        self._flux: list[np.ndarray] | None = None
        self._floor = 0.0
        self._last_db: np.ndarray | None = None
        self._spill: typing.BinaryIO | None = None  # the mel spectra, frame by frame, for `onsets`

    def onset_pass(self, mel_max: float) -> "Spectra":
        """A fresh instance that computes the onset envelope, given the first pass's mel maximum."""
        other = Spectra(self.sr)
        other._flux = []
        other._floor = 10 * math.log10(max(1e-10, mel_max)) - 80.0
        return other

    def onsets(self) -> "Spectra":
        """After `finish`: the onset pass over the mel spectra this pass spilled, without the audio.

        The same frames in the same order as `onset_pass` fed the audio again, so the envelope is
        the same to the bit.
        """
        other = self.onset_pass(self.mel_max)
        if self._spill is not None:
            self._spill.seek(0)
            width = self.mel.shape[0]
            while chunk := self._spill.read(2048 * width * 4):
                # [bands, frames] in C order, as the matrix product made it: numpy sums a
                # strided axis in another order, and the envelope must match to the bit.
                other._add_flux(np.ascontiguousarray(np.frombuffer(chunk, np.float32).reshape(-1, width).T))
            self._spill.close()
            self._spill = None
        other.frame = self.frame
        return other

    def add(self, y: np.ndarray) -> None:
        self.samples += len(y)
        self.buffer = np.concatenate([self.buffer, np.asarray(y, np.float32)])
        self._frames(final=False)

    def finish(self) -> None:
        self.buffer = np.concatenate([self.buffer, np.zeros(N_FFT // 2, np.float32)])
        self._frames(final=True)

    def _frames(self, final: bool) -> None:
        total = 1 + self.samples // BEAT_HOP if final else None
        # Frame f covers buffer[(f - frame) * hop : ... + N_FFT] relative to the buffer start.
        count = (len(self.buffer) - N_FFT) // BEAT_HOP + 1 if len(self.buffer) >= N_FFT else 0
        if total is not None:
            count = min(count, total - self.frame)
        if count <= 0:
            return
        for first in range(0, count, 2048):
            n = min(2048, count - first)
            starts = (first + np.arange(n)) * BEAT_HOP
            frames = self.buffer[starts[:, None] + np.arange(N_FFT)[None, :]]
            spectrum = np.fft.rfft(self.window[None, :] * frames, axis=1).astype(np.complex64).T  # [bins, n]
            self._reduce(spectrum, self.frame + first)
        self.frame += count
        self.buffer = self.buffer[count * BEAT_HOP :]

    def _reduce(self, spectrum: np.ndarray, first_frame: int) -> None:
        magnitude = np.abs(spectrum)
        power = magnitude**2
        mel = self.mel @ power
        if self._flux is not None:
            self._add_flux(mel)
            return
        if self._spill is None:
            self._spill = tempfile.TemporaryFile()
        self._spill.write(np.ascontiguousarray(mel.T, np.float32).tobytes())
        self.mel_max = max(self.mel_max, float(mel.max(initial=0.0)))
        even = slice((first_frame % 2), None, 2)  # hop STFT_HOP frames are the even BEAT_HOP frames
        mag, pw = magnitude[:, even], power[:, even]
        if mag.shape[1] == 0:
            return
        total = mag.sum(axis=0)
        self.any_sound = self.any_sound or bool(mag.any())
        share = mag / np.where(total < np.finfo(np.float32).tiny, 1.0, total)[None, :]
        self.centroids.append(np.sum(self.freqs[:, None] * share, axis=0))
        self.energies.append(total)
        raw = self.chroma_fb @ pw
        peak = np.max(np.abs(raw), axis=0)
        self.chroma += np.sum(raw / np.where(peak < np.finfo(np.float32).tiny, 1.0, peak)[None, :], axis=1)

    def _add_flux(self, mel: np.ndarray) -> None:
        """The mean rise in dB over the mel bands, frame to frame (librosa's spectral flux)."""
        assert self._flux is not None
        db = 10.0 * np.log10(np.maximum(1e-10, mel))
        db = np.maximum(db, self._floor)
        if self._last_db is not None:
            db = np.concatenate([self._last_db, db], axis=1)
        if db.shape[1] > 1:
            self._flux.append(np.mean(np.maximum(0.0, db[:, 1:] - db[:, :-1]), axis=0))
        self._last_db = db[:, -1:]

    def onset_envelope(self) -> np.ndarray:
        """The onset envelope, after `finish`, of an instance made by `onset_pass` or `onsets`."""
        if self._flux is None:
            raise RuntimeError("onset_envelope needs the instance from onset_pass(mel_max)")
        flux = np.concatenate(self._flux) if self._flux else np.zeros(0, np.float32)
        lead = 1 + N_FFT // (2 * BEAT_HOP)  # librosa's lag + centring compensation
        env = np.concatenate([np.zeros(lead, flux.dtype), flux])
        return env[: self.frame]

    def brightness(self) -> float | None:
        if not self.any_sound:
            return None
        centroid, energy = np.concatenate(self.centroids), np.concatenate(self.energies)
        loud = energy >= energy.max() * 10 ** (-40 / 20)
        return float(np.median(centroid[loud]))


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

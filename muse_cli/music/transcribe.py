"""Polyphonic note transcription with Spotify's basic-pitch (ICASSP 2022) model, run by onnxruntime.

The model file ships inside the `basic-pitch` wheel (installed with `--no-deps`: we need only its
`nmp.onnx`, not its TensorFlow dependency). Everything around the network is done here with numpy:

- input: mono float32 audio at 22050 Hz, cut into windows of 43844 samples (2 s less one hop);
- output per window: 172 frames at 22050/256 Hz of `note` (frame), `onset` and `contour`
  posteriorgrams over the 88 piano keys (contour: 3 bins per semitone, unused here);
- the outer 15 frames of every window see a truncated context, so they are dropped and windows
  advance by exactly the 142 kept frames (36352 samples): the kept frames tile one uniform grid, so
  frame k is at time k * 256 / 22050 s with no drift correction.

Notes are made from onset peaks followed along the frame posteriorgram until it stays below a
threshold, the model's documented decoding (without its "melodia" pass, which adds onset-less
notes that on piano are mostly sustain tails), with rules for piano described at `Decoding`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from muse_cli.errors import RuntimeFailure
from muse_cli.progress import ProgressFn, null_progress

METHOD = "basic-pitch ICASSP 2022 (onnxruntime)"
MODEL_ENV = "MUSE_BASIC_PITCH_MODEL"
"""Environment variable naming an nmp.onnx file, used instead of the one in the basic-pitch wheel."""

SAMPLE_RATE = 22050
HOP = 256
FPS = SAMPLE_RATE / HOP
WINDOW = 2 * SAMPLE_RATE - HOP  # 43844 samples: the model's fixed input length
WINDOW_FRAMES = 172
EDGE_FRAMES = 15  # frames dropped at each window edge
KEPT_FRAMES = WINDOW_FRAMES - 2 * EDGE_FRAMES
LOWEST_PITCH = 21  # A0, bin 0
BATCH = 16  # windows per onnxruntime call: bounded memory on long files

_INPUT = "serving_default_input_2:0"
_OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2")  # note (frame), onset


@dataclass(frozen=True)
class Note:
    onset: float  # seconds
    offset: float  # seconds
    pitch: int  # MIDI number
    velocity: int  # 1..127


@dataclass(frozen=True)
class Posteriors:
    frame: np.ndarray  # [frames, 88] probability that the key sounds
    onset: np.ndarray  # [frames, 88] probability that the key starts


# ------------------------------------------------------------------------------------- model


def model_path() -> Path | None:
    """The nmp.onnx to use: $MUSE_BASIC_PITCH_MODEL, else the installed basic-pitch package's, else
    the one `muse models pull transcription` put in muse's cache."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return Path(override) if Path(override).is_file() else None
    import importlib.util

    # find_spec on the top-level package does not execute it (its __init__ probes for TensorFlow).
    spec = importlib.util.find_spec("basic_pitch")
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(root) / "saved_models" / "icassp_2022" / "nmp.onnx"
        if candidate.is_file():
            return candidate
    from muse_cli.ops.cache import cached_transcription_model

    return cached_transcription_model()


def unavailable_reason() -> str | None:
    """Why transcription cannot run here, or None when it can."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed (pip install 'muse-cli[analysis]')"
    if model_path() is None:
        return "the transcription model is not downloaded (muse models pull transcription)"
    return None


def available() -> bool:
    return unavailable_reason() is None


@functools.lru_cache(maxsize=2)
def _session(path: str, threads: int = 0):
    """An onnxruntime session; `threads` for its operators (0: onnxruntime's default, one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the converted graph triggers harmless shape warnings
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable models
        raise RuntimeFailure(
            f"cannot load the transcription model {path}: {exc}".split("\n")[0],
            hint="fetch a verified copy: muse models pull transcription --force",
        ) from None


# ------------------------------------------------------------------------------------- frames


def _windows(audio: np.ndarray, first: int = 0, count: int | None = None) -> np.ndarray:
    """Model windows [count, WINDOW] number first.. of 22050 Hz mono audio (all by default)."""
    step = KEPT_FRAMES * HOP
    total = window_count(len(audio))
    count = total - first if count is None else min(count, total - first)
    out = np.zeros((count, WINDOW), np.float32)
    for row, i in enumerate(range(first, first + count)):
        # Window i's first kept frame (after EDGE_FRAMES of context) sits at sample i * step.
        start = i * step - EDGE_FRAMES * HOP
        lo, hi = max(start, 0), min(start + WINDOW, len(audio))
        if hi > lo:
            out[row, lo - start : hi - start] = audio[lo:hi]
    return out


def window_count(n_samples: int) -> int:
    return max(1, int(np.ceil(n_samples / (KEPT_FRAMES * HOP))))


def posteriors(audio: np.ndarray, progress: ProgressFn = null_progress) -> Posteriors:
    """Run the model on mono 22050 Hz audio; one row per 256-sample hop."""
    path = model_path()
    if path is None:
        raise RuntimeFailure("transcription model not found", hint="muse models pull transcription")
    session = _session(str(path))
    total = window_count(len(audio))
    frames, onsets = [], []
    for first in range(0, total, BATCH):
        batch = _windows(audio, first, BATCH)[:, :, None]
        frame, onset = session.run(list(_OUTPUTS), {_INPUT: batch})
        frames.append(frame[:, EDGE_FRAMES:-EDGE_FRAMES].reshape(-1, 88))
        onsets.append(onset[:, EDGE_FRAMES:-EDGE_FRAMES].reshape(-1, 88))
        progress(min(first + BATCH, total), total)
    n_frames = int(np.ceil(len(audio) / HOP))
    return Posteriors(np.concatenate(frames)[:n_frames], np.concatenate(onsets)[:n_frames])


class PosteriorStream:
    """The model run on mono 22050 Hz audio fed block by block; posteriors go to an unnamed
    temporary file (the OS deletes it), so memory holds one batch of windows however long the
    audio. Windows are the same as `posteriors` cuts from the whole array, so are the frames.
    """

    ROW = 2 * 88  # float32 frame | onset per row

    def __init__(self, progress: ProgressFn = null_progress, expected_samples: int | None = None, threads: int = 0):
        """`threads`: the model's operator threads (0: one per core); fewer leave cores to work
        done alongside (`muse analyze` runs the model while it measures the spectra)."""
        import tempfile

        path = model_path()
        if path is None:
            raise RuntimeFailure("transcription model not found", hint="pip install --no-deps basic-pitch")
        self.session = _session(str(path), threads)
        self.progress, self.expected = progress, expected_samples
        self.buffer = np.zeros(0, np.float32)
        self.origin = 0  # sample index of buffer[0]
        self.samples = 0
        self.window = 0  # next window to run
        self.spill = tempfile.TemporaryFile()
        self.frames = 0  # rows in the spill file
        self.n_frames = 0  # rows that belong to the audio (set by finish)

    def add(self, y: np.ndarray) -> None:
        self.buffer = np.concatenate([self.buffer, np.asarray(y, np.float32)])
        self.samples += len(y)
        step = KEPT_FRAMES * HOP
        ready = 0
        while (self.window + ready) * step - EDGE_FRAMES * HOP + WINDOW <= self.samples:
            ready += 1
        while ready >= BATCH:
            self._run(BATCH)
            ready -= BATCH

    def finish(self) -> "PosteriorStream":
        total = window_count(self.samples)
        while self.window < total:
            self._run(min(BATCH, total - self.window))
        self.n_frames = int(np.ceil(self.samples / HOP))
        self.buffer = np.zeros(0, np.float32)
        return self

    def _run(self, count: int) -> None:
        step = KEPT_FRAMES * HOP
        batch = np.zeros((count, WINDOW), np.float32)
        for row in range(count):
            start = (self.window + row) * step - EDGE_FRAMES * HOP
            lo, hi = max(start, 0), min(start + WINDOW, self.samples)
            if hi > lo:
                batch[row, lo - start : hi - start] = self.buffer[lo - self.origin : hi - self.origin]
        frame, onset = self.session.run(list(_OUTPUTS), {_INPUT: batch[:, :, None]})
        rows = np.concatenate([frame[:, EDGE_FRAMES:-EDGE_FRAMES].reshape(-1, 88),
                               onset[:, EDGE_FRAMES:-EDGE_FRAMES].reshape(-1, 88)], axis=1)
        self.spill.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
        self.frames += len(rows)
        self.window += count
        keep = max(0, self.window * step - EDGE_FRAMES * HOP)  # the next window's first sample
        if keep > self.origin:
            self.buffer = self.buffer[keep - self.origin :]
            self.origin = keep
        if self.expected:
            self.progress(min(self.samples, self.expected), self.expected)

    def rows(self, first: int, stop: int) -> Posteriors:
        stop = min(stop, self.n_frames)
        self.spill.seek(first * self.ROW * 4)
        data = np.frombuffer(self.spill.read((stop - first) * self.ROW * 4), dtype="<f4").reshape(-1, self.ROW)
        return Posteriors(data[:, :88], data[:, 88:])

    def all(self, dtype=np.float16, chunk: int = 8192) -> Posteriors:
        """Every row, read back block by block into arrays of `dtype` (float16 halves the memory;
        the posteriors are probabilities, 3 significant digits are plenty)."""
        frame = np.empty((self.n_frames, 88), dtype)
        onset = np.empty((self.n_frames, 88), dtype)
        for first in range(0, self.n_frames, chunk):
            part = self.rows(first, first + chunk)
            frame[first : first + len(part.frame)] = part.frame
            onset[first : first + len(part.onset)] = part.onset
        return Posteriors(frame, onset)

    def close(self) -> None:
        self.spill.close()


CHUNK_FRAMES = 2 * 60 * 86  # about two minutes of frames decoded at once
LOOKAHEAD_FRAMES = 10 * 86  # later frames a chunk sees, so that its notes end where they would


def notes_from_stream(stream: PosteriorStream, decoding: "Decoding | None" = None,
                      chunk: int = CHUNK_FRAMES, lookahead: int = LOOKAHEAD_FRAMES) -> list[Note]:
    """`notes_from_posteriors` over posteriors too long to hold, chunk by chunk, with the same notes.

    Each chunk's notes are decoded in a window reaching CONTEXT_FRAMES back (what an onset's
    tests look at before it: its prominence, the restrike look-back, notes struck with it) and
    `lookahead` frames on, where the later notes are decoded too for the frames
    they claim; a chunk whose note comes near the window's end is decoded again with twice the
    lookahead. The rise scale of the inferred onsets is taken over the whole file first.
    """
    decoding = decoding or Decoding()
    context = max(decoding.lookback, CONTEXT_FRAMES)
    n = stream.n_frames
    if n < 3:
        return []
    onset_max = rise_max = 0.0
    tail = np.zeros((0, 88))
    for first in range(0, n, chunk):
        post = stream.rows(first, first + chunk)
        frame = np.vstack([tail, post.frame.astype(np.float64)])
        rise = _rise(frame, at_start=first == 0)[len(tail) :]
        onset_max = max(onset_max, float(post.onset.max(initial=0.0)))
        rise_max = max(rise_max, float(rise.max(initial=0.0)))
        tail = frame[-2:]
    scale = onset_max / rise_max if rise_max > 0 else None
    notes: list[Note] = []
    for first in range(0, n, chunk):
        ahead = lookahead
        while True:
            origin, stop = max(0, first - context), min(n, first + chunk + ahead)
            post = stream.rows(origin, stop)
            found, near_end = _decode(post.frame.astype(np.float64), post.onset.astype(np.float64), scale,
                                      origin, first, first + chunk, decoding, final=stop >= n)
            if not near_end:
                break
            ahead *= 2
        notes.extend(found)
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return notes


# -------------------------------------------------------------------------------------- notes


def _rise(frame: np.ndarray, at_start: bool) -> np.ndarray:
    """How much each frame posterior rose over the last one and two frames (clipped at zero)."""
    rise1 = frame - np.vstack([np.zeros((1, 88)), frame[:-1]])
    rise2 = frame - np.vstack([np.zeros((2, 88)), frame[:-2]])
    rise = np.clip(np.minimum(rise1, rise2), 0, None)
    if at_start:
        rise[:2] = 0
    return rise


def _with_inferred_onsets(onset: np.ndarray, frame: np.ndarray, scale: float | None = None, at_start: bool = True) -> np.ndarray:
    """Add onset evidence where the frame posterior jumps up (repeated notes the onset head misses).

    The rise is scaled so its largest value over the whole file matches the largest onset
    posterior; `scale` is that ratio when only part of the file is at hand.
    """
    rise = _rise(frame, at_start)
    if scale is None and rise.max() > 0:
        scale = onset.max() / rise.max()
    if scale is not None:
        rise *= scale
    return np.maximum(onset, rise)


PARTIALS = (12, 19, 24, 28, 31, 36)  # semitones from a fundamental up to its partials 2-8
PROMINENCE_FRAMES = 12  # how far (each side) a peak's prominence is measured: 140 ms
CONTEXT_FRAMES = PROMINENCE_FRAMES + 3  # frames before an onset that its tests read (see notes_from_stream)


def _onset_peaks(onset: np.ndarray, threshold: float, prominence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames and keys where the onset posterior is a strict local maximum in time above threshold
    and, with `prominence`, stands that much above the dip to any higher peak within
    PROMINENCE_FRAMES (scipy.signal.peak_prominences with that window): one hump, one onset.

    Silence is assumed before the first and after the last frame, so a note struck at the very
    start of the recording still peaks.
    """
    edge = np.zeros((1, onset.shape[1]), onset.dtype)
    padded = np.vstack([edge, onset, edge])
    inner = padded[1:-1]
    peak = (inner > padded[:-2]) & (inner > padded[2:]) & (inner >= threshold)
    times, keys = np.nonzero(peak)
    if prominence > 0 and len(times):
        from scipy.signal import peak_prominences

        keep = np.ones(len(times), bool)
        order = np.lexsort((times, keys))
        times, keys = times[order], keys[order]
        for k in np.unique(keys):
            rows = np.flatnonzero(keys == k)
            prom = peak_prominences(padded[:, k], times[rows] + 1, wlen=2 * PROMINENCE_FRAMES + 1)[0]
            keep[rows] = prom >= prominence
        times, keys = times[keep], keys[keep]
        order = np.lexsort((keys, times))
        times, keys = times[order], keys[order]
    return times, keys


def _note_end(energy: np.ndarray, start: int, threshold: float, patience: int) -> int:
    """First frame after `start` from which `energy` stays below threshold for `patience` frames."""
    above = energy[start + 1 :] >= threshold
    if above.all():
        return len(energy)
    below_run = 0
    for i, on in enumerate(above):
        below_run = 0 if on else below_run + 1
        if below_run == patience:
            return start + 1 + i - patience + 1
    return start + 1 + len(above) - below_run


@dataclass(frozen=True)
class Decoding:
    """Thresholds of `notes_from_posteriors` (basic-pitch's names in its CLI in brackets).

    basic-pitch's decoding (spotify/basic-pitch, basic_pitch/note_creation.py,
    `output_to_notes_polyphonic`) makes a note of every onset-posterior peak above the onset
    threshold and follows it while the frame posterior stays above the frame threshold. On
    piano recordings that rule both adds and drops notes; the rules below were measured on
    rendered piano takes (benchmarks/bench_score_feedback.py, docs/practice.md):

    - prominence: the onset posterior of one strike often rises in a hump with a small bump on
      its flank; a peak that stands less than this above the dip to a higher neighbouring peak
      (within PROMINENCE_FRAMES) is part of that hump, not a second strike;
    - lookback, restrike_threshold, restrike_rise: a key whose frame posterior stayed above the
      frame threshold throughout `lookback` to 2 frames before an onset is still sounding; a new
      onset there is a re-strike only when strong (restrike_threshold) or when the key's frame
      activation jumps by restrike_rise (a struck string is excited anew; a re-trigger artifact
      of the model leaves the activation flat). A one-frame look-back read the frame posterior's
      early rise before a real onset as the key sounding, and lost that note;
    - strong_onset, weak_frame: a strong onset peak whose frame activation never reaches the
      frame threshold (high notes, which decay fast, and notes whose activation a struck
      neighbour claimed) still makes a note, followed on the key's own activation (then at
      weak_frame of the threshold), unless a note a partial below starts with it: then it is
      most likely that note's overtone.
    """

    onset_threshold: float = 0.5  # --onset-threshold
    frame_threshold: float = 0.3  # --frame-threshold
    min_note_s: float = 0.058  # --minimum-note-length (ms there)
    patience: int = 11
    restrike_threshold: float = 0.8
    prominence: float = 0.1
    lookback: int = 6
    restrike_rise: float = 0.15
    strong_onset: float = 0.7
    weak_frame: float = 0.5


def notes_from_posteriors(post: Posteriors, decoding: Decoding | None = None, **thresholds) -> list[Note]:
    """Decode posteriorgrams into notes (`Decoding` holds the thresholds; keyword arguments
    override single ones, e.g. onset_threshold=0.6).

    Onsets are handled latest first, and each claims its key (and the neighbouring keys, which
    hold its partial leakage) until it ends, so an earlier onset on the same key stops where the
    next one begins. `min_note_s` is shorter than basic-pitch's 128 ms default so staccato survives.
    """
    d = replace(decoding or Decoding(), **thresholds)
    frame = post.frame.astype(np.float64)
    if len(frame) < 3:
        return []
    notes, _ = _decode(frame, post.onset.astype(np.float64), None, 0, 0, len(frame), d, final=True)
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return notes


def _decode(frame, onset, scale, origin: int, keep_from: int, keep_to: int, d: Decoding, final: bool):
    """Notes whose onset frame lies in [keep_from, keep_to) (absolute), from the window of
    posteriors starting at frame `origin`; and whether a kept note came near the window's end
    (its end might change with more frames: widen the window and decode again)."""
    onset = _with_inferred_onsets(onset, frame, scale, at_start=origin == 0)
    energy = frame.copy()
    min_frames = max(1, int(round(d.min_note_s * FPS)))
    notes = []
    near_end = False
    times, keys = _onset_peaks(onset, d.onset_threshold, d.prominence)
    struck = np.zeros(onset.shape, bool)  # onset peaks widened by 2 frames: which keys start together
    for lag in range(-2, 3):
        struck[np.clip(times + lag, 0, len(onset) - 1), keys] = True
    for t, k in sorted(zip(times, keys), reverse=True):
        if t + origin < keep_from:
            break
        # A re-strike of a sounding key needs a strong onset or a jump of its activation (Decoding).
        sounding = frame[max(t - d.lookback, 0) : max(t - 2, 1), k].min() >= d.frame_threshold
        if sounding and onset[t, k] < d.restrike_threshold:
            jump = frame[t : t + 4, k].max() - frame[max(t - 3, 0) : t + 1, k].min()
            if not d.restrike_rise or jump < d.restrike_rise:
                continue
        end = _note_end(energy[:, k], t, d.frame_threshold, d.patience)
        # A strong onset with too little activation left for it: its own activation, unless a
        # note a partial below starts with it (Decoding.strong_onset).
        if (end - t <= min_frames and d.strong_onset and onset[t, k] >= d.strong_onset
                and not any(k >= i and struck[t, k - i] for i in PARTIALS)):
            for level in (d.frame_threshold, d.frame_threshold * d.weak_frame):
                end = _note_end(frame[:, k], t, level, d.patience)
                if end - t > min_frames:
                    break
        kept = t + origin < keep_to  # else a later note, decoded here only for the energy it claims
        if kept and not final and end + 4 * d.patience >= len(frame):
            near_end = True
        if end - t <= min_frames:
            continue
        energy[t:end, max(k - 1, 0) : k + 2] = 0
        if not kept:
            continue
        amplitude = float(frame[t:end, k].mean())
        velocity = int(np.clip(round(127 * amplitude), 1, 127))
        notes.append(Note(round(float(t + origin) / FPS, 4), round(float(end + origin) / FPS, 4), int(k) + LOWEST_PITCH, velocity))
    return notes, near_end


def transcribe(audio: np.ndarray, sr: int, progress: ProgressFn = null_progress) -> list[Note]:
    """Notes of mono audio (1-D or [1, n]) at any rate."""
    from muse_cli.music.audio import resample, to_mono

    mono = to_mono(audio)
    if sr != SAMPLE_RATE:
        mono = resample(mono, sr, SAMPLE_RATE)
    return notes_from_posteriors(posteriors(mono[0], progress))


def to_midi(notes: list[Note], program: int = 0):
    """A PrettyMIDI with one piano track holding the notes."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    track = pretty_midi.Instrument(program=program, name="transcription")
    track.notes = [pretty_midi.Note(n.velocity, n.pitch, n.onset, max(n.offset, n.onset + 1e-3)) for n in notes]
    pm.instruments.append(track)
    return pm

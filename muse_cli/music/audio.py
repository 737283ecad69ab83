"""Audio I/O and loudness: decode, encode, resample, normalise.

Audio arrays are float32 numpy arrays shaped [channels, samples]. Decoding and encoding go through
soundfile (libsndfile); soundfile >= 0.12 bundles a libsndfile with MPEG support, so MP3 is read and
written without any other decoder when `mp3_supported()` is true.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np

from muse_cli.contracts import Normalization
from muse_cli.errors import InputError

MAX_CHANNELS = 8
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
"""The rates an MPEG-1/2/2.5 layer III stream can carry."""

_LOUDNESS_BLOCK_S = 0.4  # ITU-R BS.1770 gating block; pyloudnorm refuses shorter input
_LIMITER_WINDOW_S = 0.005  # look-ahead/release radius of the peak limiter
ABSOLUTE_GATE_LUFS = -70.0  # BS.1770-4


# ------------------------------------------------------------------------------------- decode


def decode_audio(data: bytes, name: str = "audio") -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC/OGG/MP3 bytes to float32 [channels, samples] and the sample rate.

    Raises InputError naming `name` for empty, non-audio, corrupt, non-finite or >8-channel input.
    Silence is valid here: callers that need sound check `is_silent`.
    """
    import soundfile as sf

    if not data:
        raise InputError(f"{name}: file is empty (0 bytes), expected WAV, FLAC, OGG or MP3 audio")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            channels, sample_rate = f.channels, f.samplerate
            if channels > MAX_CHANNELS:
                raise InputError(f"{name}: has {channels} channels, at most {MAX_CHANNELS} are supported")
            if sample_rate <= 0:
                raise InputError(f"{name}: invalid sample rate {sample_rate}")
            samples = f.read(dtype="float32", always_2d=True)
    except InputError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        # libsndfile's message names the in-memory buffer, not the file: keep only the cause.
        detail = re.sub(r"^Error opening .*?>:\s*", "", str(exc).split("\n")[0])
        raise InputError(
            f"{name}: not a readable audio file (WAV, FLAC, OGG or MP3 expected): {_short(detail)}"
        ) from None
    if samples.shape[0] == 0:
        raise InputError(f"{name}: contains no audio samples (zero length)")
    audio = np.ascontiguousarray(samples.T)
    if not np.isfinite(audio).all():
        raise InputError(f"{name}: contains NaN or infinite samples; the file is corrupt")
    return audio, int(sample_rate)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file from disk: see `decode_audio`. A missing file is an InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_file():
        raise InputError(f"{p}: is not a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror})") from None
    return decode_audio(data, name=str(p))


class AudioReader:
    """An audio file opened for reading in blocks: its length is known from the header before
    anything is decoded, and `blocks` decodes it again from the start on each call.

    Same checks and messages as `decode_audio`; a block with NaN or infinity is an InputError.
    """

    def __init__(self, source: str | Path | bytes, name: str = "audio"):
        import soundfile as sf

        self.name = name
        if isinstance(source, (bytes, bytearray, memoryview)):
            if not source:
                raise InputError(f"{name}: file is empty (0 bytes), expected WAV, FLAC, OGG or MP3 audio")
            self._open = lambda: sf.SoundFile(io.BytesIO(source))
        else:
            path = Path(source)
            if path.stat().st_size == 0:
                raise InputError(f"{name}: file is empty (0 bytes), expected WAV, FLAC, OGG or MP3 audio")
            self._open = lambda: sf.SoundFile(str(path))
        with self._guard():
            with self._open() as f:
                self.channels, self.sample_rate, self.frames = f.channels, f.samplerate, f.frames
        if self.channels > MAX_CHANNELS:
            raise InputError(f"{name}: has {self.channels} channels, at most {MAX_CHANNELS} are supported")
        if self.sample_rate <= 0:
            raise InputError(f"{name}: invalid sample rate {self.sample_rate}")

    @property
    def duration(self) -> float:
        """Seconds, from the header (libsndfile counts compressed streams' frames when opening)."""
        return self.frames / self.sample_rate

    def _guard(self):
        import contextlib

        import soundfile as sf

        @contextlib.contextmanager
        def guard():
            try:
                yield
            except InputError:
                raise
            except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
                detail = re.sub(r"^Error opening .*?>:\s*", "", str(exc).split("\n")[0])
                detail = re.sub(r"^Error opening '.*?':\s*", "", detail)
                raise InputError(
                    f"{self.name}: not a readable audio file (WAV, FLAC, OGG or MP3 expected): {_short(detail)}"
                ) from None

        return guard()

    def blocks(self, size: int, max_samples: int | None = None):
        """Float32 blocks [channels, <= size] from the start; an InputError past `max_samples`."""
        seen = 0
        with self._guard():
            with self._open() as f:
                while True:
                    data = f.read(size, dtype="float32", always_2d=True)
                    if data.shape[0] == 0:
                        break
                    seen += data.shape[0]
                    if max_samples is not None and seen > max_samples:
                        raise InputError(f"{self.name}: decodes to more than {max_samples / self.sample_rate:.0f} s")
                    block = np.ascontiguousarray(data.T)
                    if not np.isfinite(block).all():
                        raise InputError(f"{self.name}: contains NaN or infinite samples; the file is corrupt")
                    yield block
        if seen == 0:
            raise InputError(f"{self.name}: contains no audio samples (zero length)")

    def read_all(self) -> np.ndarray:
        return np.concatenate(list(self.blocks(1 << 20)), axis=1)


class MonoResampler:
    """Mono audio resampled block by block (soxr's stream: the same samples as one whole call)."""

    def __init__(self, sr_from: int, sr_to: int):
        self.same = sr_from == sr_to
        self.sr_from, self.sr_to = sr_from, sr_to
        if not self.same:
            import soxr

            self.stream = soxr.ResampleStream(sr_from, sr_to, 1, dtype="float32", quality="HQ")

    def add(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(mono, dtype=np.float32)
        if self.same:
            return x
        return np.asarray(self.stream.resample_chunk(x, last=last), dtype=np.float32).reshape(-1)


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------- encode


def mp3_supported() -> bool:
    """Whether the installed libsndfile can write MP3 (libsndfile >= 1.1 built with LAME/mpg123)."""
    try:
        import soundfile as sf

        return "MP3" in sf.available_formats() and "MPEG_LAYER_III" in sf.available_subtypes("MP3")
    except (ImportError, OSError):
        return False


def encode_audio(x: np.ndarray, sr: int, fmt: str = "wav", float_wav: bool = False) -> bytes:
    """Encode float audio [channels, samples] (or 1-D mono) as WAV (PCM_16 or FLOAT), FLAC or MP3.

    Integer formats are clipped to [-1, 1] first: out-of-range floats would wrap around otherwise.
    """
    import soundfile as sf

    audio = _as_2d(x)
    if not np.isfinite(audio).all():
        raise ValueError("audio to encode contains NaN or infinite samples")
    fmt = fmt.lower()
    if fmt == "wav":
        container, subtype = "WAV", ("FLOAT" if float_wav else "PCM_16")
    elif fmt == "flac":
        container, subtype = "FLAC", "PCM_16"
    elif fmt == "mp3":
        if not mp3_supported():
            raise InputError(
                "mp3 output needs libsndfile >= 1.1 with MPEG support: "
                "pip install -U 'soundfile>=0.12' (bundles it), or use --format wav/flac"
            )
        if sr not in MP3_SAMPLE_RATES:
            rates = ", ".join(str(r) for r in MP3_SAMPLE_RATES)
            raise InputError(f"mp3 output: sample rate {sr} Hz is not allowed, use one of {rates}")
        if audio.shape[0] > 2:
            raise InputError(f"mp3 output: {audio.shape[0]} channels given, mp3 holds at most 2")
        container, subtype = "MP3", "MPEG_LAYER_III"
    else:
        raise InputError(f"format {fmt!r} is not supported, use wav, flac or mp3")
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, audio.T, int(sr), format=container, subtype=subtype)
    return buf.getvalue()


# ---------------------------------------------------------------------------- basic transforms


def _as_2d(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim != 2:
        raise ValueError(f"audio must be [channels, samples], got shape {a.shape}")
    return a


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average the channels: [channels, samples] -> [1, samples]."""
    a = _as_2d(x)
    return a.mean(axis=0, keepdims=True, dtype=np.float32) if a.shape[0] > 1 else a


def to_stereo(x: np.ndarray) -> np.ndarray:
    """Mono becomes two equal channels; stereo is kept; more channels are downmixed through mono."""
    a = _as_2d(x)
    if a.shape[0] == 2:
        return a
    return np.repeat(to_mono(a), 2, axis=0)


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample [channels, samples]; output length is round(n * sr_to / sr_from)."""
    a = _as_2d(x)
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    if sr_from == sr_to or a.shape[1] == 0:
        return a.copy()
    try:
        import soxr
    except ImportError:
        soxr = None
    if soxr is not None:
        out = soxr.resample(np.ascontiguousarray(a.T), sr_from, sr_to, quality="HQ")
        return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, a.shape[0]).T)
    from scipy.signal import resample_poly

    g = math.gcd(int(sr_from), int(sr_to))
    out = resample_poly(a, sr_to // g, sr_from // g, axis=1).astype(np.float32)
    want = int(round(a.shape[1] * sr_to / sr_from))
    return out[:, :want]


def peak_db(x: np.ndarray) -> float:
    """Sample peak in dBFS; -inf for silence."""
    p = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return 20 * math.log10(p) if p > 0 else -math.inf


def rms_db(x: np.ndarray) -> float:
    """RMS over all channels and samples in dBFS; -inf for silence."""
    a = np.asarray(x, dtype=np.float64)
    r = math.sqrt(float(np.mean(a * a))) if a.size else 0.0
    return 20 * math.log10(r) if r > 0 else -math.inf


def is_silent(x: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the peak is below `threshold_db` dBFS (digital silence counts)."""
    return peak_db(x) < threshold_db


# ------------------------------------------------------------------------------------ loudness


def integrated_loudness(x: np.ndarray, sr: int) -> float:
    """ITU-R BS.1770 integrated loudness in LUFS; `-math.inf` for silence.

    Clips shorter than the 400 ms gating block are looped up to one block: looping keeps the
    clip's mean-square level, where zero padding would understate it.
    """
    import pyloudnorm

    a = _as_2d(x).astype(np.float64)
    if a.shape[0] > 5:  # BS.1770 weights only define up to 5.0 channels; measure the downmix
        a = a.mean(axis=0, keepdims=True)
    if a.shape[1] == 0 or not np.any(a):
        return -math.inf
    block = int(math.ceil(_LOUDNESS_BLOCK_S * sr))
    if a.shape[1] < block:
        a = np.tile(a, (1, -(-block // a.shape[1])))[:, :block]
    with np.errstate(divide="ignore"):
        value = float(pyloudnorm.Meter(sr).integrated_loudness(a.T if a.shape[0] > 1 else a[0]))
    return value if math.isfinite(value) else -math.inf


def limiter_context(sr: int) -> int:
    """Samples on each side that `limit_peaks` looks at: a block needs this much of its neighbours."""
    return 2 * max(1, int(_LIMITER_WINDOW_S * sr))


def limit_peaks(x: np.ndarray, sr: int, ceiling_db: float = -1.0) -> np.ndarray:
    """Look-ahead peak limiter: smooth gain reduction so no sample exceeds `ceiling_db`.

    The gain curve is a running minimum of the per-sample required gain followed by a moving
    average of no greater radius, so it never rises above what any nearby sample needs and it
    ramps over ~5 ms instead of jumping (a plain scale-down would miss the loudness target; a hard
    clip would distort every peak).
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    a = _as_2d(x)
    ceiling = 10 ** (ceiling_db / 20)
    env = np.max(np.abs(a), axis=0)
    if env.size == 0 or float(env.max()) <= ceiling:
        return a.copy()
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    radius = max(1, int(_LIMITER_WINDOW_S * sr))
    gain = minimum_filter1d(need, size=2 * radius + 1, mode="nearest")
    gain = uniform_filter1d(gain, size=2 * radius + 1, mode="nearest")
    gain = np.minimum(gain, need)  # float rounding in the average must not let a peak through
    return (a * gain[None, :]).astype(np.float32)


def normalize(
    x: np.ndarray,
    sr: int,
    strategy: Normalization = "loudness",
    target_lufs: float = -14.0,
    headroom_db: float = -1.0,
) -> np.ndarray:
    """Normalise audio by one strategy; output peaks stay at or below `headroom_db` dBFS.

    - loudness: integrated loudness to `target_lufs`, then the peak limiter (no clipping).
    - peak: scale so the sample peak sits at `headroom_db`.
    - rms: RMS to `target_lufs` dBFS (a full-scale sine reads the same in both), then the limiter.
    - clip: hard clip to [-1, 1] with no gain change.
    - none: unchanged.
    Silent input is returned unchanged by every strategy.
    """
    a = _as_2d(x)
    if strategy == "none":
        return a.copy()
    if strategy == "clip":
        return np.clip(a, -1.0, 1.0).astype(np.float32)
    if not np.any(a):
        return a.copy()
    if strategy == "peak":
        return (a * (10 ** ((headroom_db - peak_db(a)) / 20))).astype(np.float32)
    if strategy == "rms":
        scaled = a * (10 ** ((target_lufs - rms_db(a)) / 20))
        return limit_peaks(scaled, sr, headroom_db)
    if strategy == "loudness":
        # normalize_plan holds the same steps for audio too long to hold in memory.
        current = integrated_loudness(a, sr)
        if not math.isfinite(current):  # everything below the -70 LUFS gate: nothing to measure
            return a.copy()
        base_db = gain_db = target_lufs - current
        ceiling = 10 ** (headroom_db / 20)
        # Limiting lowers the loudness a little; a few corrections land on the target.
        for _ in range(6):
            scaled = a * np.float32(10 ** (gain_db / 20))
            if float(np.max(np.abs(scaled))) <= ceiling:
                return scaled  # pure gain: loudness is exactly current + gain, no need to measure
            out = limit_peaks(scaled, sr, headroom_db)
            err = target_lufs - integrated_loudness(out, sr)
            if abs(err) < 0.1:
                break
            # Bounded: a very peaky signal cannot reach the target without crushing it.
            gain_db = min(gain_db + err, base_db + 6.0)
        return out.astype(np.float32)
    raise InputError(f"normalize must be one of loudness, peak, rms, clip, none; got {strategy!r}")


# ------------------------------------------------------------------------ normalising in blocks


def normalize_plan(
    strategy: Normalization,
    target_lufs: float,
    peak: float,
    rms: float,
    measure,
    headroom_db: float = -1.0,
) -> tuple[float | None, bool]:
    """`normalize` for audio seen block by block: returns (gain or None, limiter on?).

    `peak` (linear) and `rms` (dBFS) describe the raw audio; `measure(plan)` returns the
    integrated loudness of the audio with that plan applied (a pass over the blocks). Applying the
    plan to each block (gain, then `limit_peaks` with `limiter_context` samples of neighbours)
    gives what `normalize` gives the whole array. "clip" is the final encoder's clip to [-1, 1].
    """
    if strategy in ("none", "clip") or peak == 0.0:
        return None, False
    if strategy == "peak":
        return 10 ** ((headroom_db - peak_db(np.float32(peak))) / 20), False
    ceiling = 10 ** (headroom_db / 20)
    if strategy == "rms":
        gain = 10 ** ((target_lufs - rms) / 20)
        return gain, bool(np.float32(peak) * np.float32(gain) > ceiling)
    if strategy != "loudness":
        raise InputError(f"normalize must be one of loudness, peak, rms, clip, none; got {strategy!r}")
    current = measure((None, False))
    if not math.isfinite(current):
        return None, False
    base_db = gain_db = target_lufs - current
    plan: tuple[float | None, bool] = (None, False)
    for _ in range(6):  # the same corrections as `normalize`
        gain = 10 ** (gain_db / 20)
        if float(np.float32(peak) * np.float32(gain)) <= ceiling:
            return gain, False
        plan = (gain, True)
        err = target_lufs - measure(plan)
        if abs(err) < 0.1:
            break
        gain_db = min(gain_db + err, base_db + 6.0)
    return plan


class BlockLoudness:
    """BS.1770 integrated loudness of audio fed in consecutive blocks, as pyloudnorm measures it.

    pyloudnorm's `Meter` supplies the K-weighting filters and the block constants; it needs the
    whole signal in memory, so the rest is written here: the filters run with their state carried
    across blocks (scipy's `lfilter` zi), each 400 ms gating block's mean square is taken as soon
    as its samples have passed, and the two gates of BS.1770-4 are applied at the end, step for
    step as pyloudnorm 0.1 does (meter.py, `integrated_loudness`). Memory: one gating block of
    samples plus one number per 100 ms.
    """

    def __init__(self, sr: int, channels: int, samples: int):
        import pyloudnorm

        meter = pyloudnorm.Meter(sr)
        self.sr, self.channels, self.samples = sr, channels, samples
        self.filters = [(f.b, f.a, f.passband_gain) for f in meter._filters.values()]
        self.state = [[np.zeros(max(len(b), len(a)) - 1) for _ in range(channels)] for b, a, _ in self.filters]
        self.block_s, step = meter.block_size, 1.0 - meter.overlap
        count = int(np.round(((samples / sr - self.block_s) / (self.block_s * step)))) + 1
        self.lo = [int(self.block_s * (j * step) * sr) for j in range(count)]
        self.hi = [min(samples, int(self.block_s * (j * step + 1) * sr)) for j in range(count)]
        self.z = np.zeros((channels, count))
        self.buffer = np.zeros((channels, 0))
        self.start = 0  # sample index of buffer[:, 0]
        self.done = 0  # gating blocks measured so far

    def add(self, chunk: np.ndarray) -> None:
        from scipy.signal import lfilter

        x = np.array(chunk, dtype=np.float64, ndmin=2)
        for stage, (b, a, gain) in enumerate(self.filters):
            for c in range(self.channels):
                y, self.state[stage][c] = lfilter(b, a, x[c], zi=self.state[stage][c])
                x[c] = gain * y
        self.buffer = np.concatenate([self.buffer, np.square(x)], axis=1)
        end = self.start + self.buffer.shape[1]
        while self.done < len(self.lo) and (self.hi[self.done] <= end):
            lo, hi = self.lo[self.done] - self.start, self.hi[self.done] - self.start
            self.z[:, self.done] = (1.0 / (self.block_s * self.sr)) * np.sum(self.buffer[:, lo:hi], axis=1)
            self.done += 1
        keep_from = self.lo[self.done] if self.done < len(self.lo) else end
        self.buffer = self.buffer[:, keep_from - self.start :]
        self.start = keep_from

    def result(self) -> float:
        """Integrated loudness in LUFS; -inf for silence."""
        weights = np.array([1.0, 1.0, 1.0, 1.41, 1.41][: self.channels])[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            blocks = -0.691 + 10.0 * np.log10(np.sum(weights * self.z, axis=0))
            above = blocks >= ABSOLUTE_GATE_LUFS
            if not above.any():
                return -math.inf
            relative = -0.691 + 10.0 * np.log10(np.sum(weights[:, 0] * self.z[:, above].mean(axis=1))) - 10.0
            kept = (blocks > relative) & (blocks > ABSOLUTE_GATE_LUFS)
            mean = np.nan_to_num(self.z[:, kept].mean(axis=1)) if kept.any() else np.zeros(self.channels)
            value = -0.691 + 10.0 * np.log10(np.sum(weights[:, 0] * mean))
        return float(value) if math.isfinite(value) else -math.inf

"""MIDI to audio: FluidSynth with the user's SoundFont when it can run, else the built-in synth.

FluidSynth needs two pieces: the system library (apt install libfluidsynth3, brew install
fluid-synth) and its Python binding (pip install pyfluidsynth). Without them a SoundFont request
still renders, with the built-in voice and a notice saying so; engines never print, so the
caller shows `RenderOutput.notice`.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from muse_cli.contracts import RenderRequest
from muse_cli.errors import InputError
from muse_cli.music.audio import encode_audio, normalize, to_mono

BLOCK_S = 20.0
"""`render_to_file` renders, normalises and writes this many seconds at a time."""

FLUIDSYNTH_GAIN = 0.1
"""FluidSynth writes 16-bit samples and clips them; a low gain keeps dense chords from clipping."""
FLUIDSYNTH_MAX_TAIL_S = 3.0
"""After the last event, FluidSynth renders until its voices and reverb fall silent, at most this long."""
_TAIL_CHUNK_S = 0.1
_TAIL_SILENCE = 1e-4  # -80 dBFS

INSTALL_HINT = (
    "install FluidSynth to use SoundFonts: the library (apt install libfluidsynth3, "
    "brew install fluid-synth) and pip install pyfluidsynth"
)


@dataclass(frozen=True)
class RenderOutput:
    audio: np.ndarray  # float32 [channels, samples]
    sample_rate: int
    renderer: Literal["builtin", "fluidsynth"]
    notice: str | None = None

    @property
    def duration(self) -> float:
        return self.audio.shape[1] / self.sample_rate

    @property
    def channels(self) -> int:
        return int(self.audio.shape[0])


def fluidsynth_available() -> bool:
    """True when both pyfluidsynth and the libfluidsynth it loads are present."""
    try:
        import fluidsynth  # noqa: F401  (raises ImportError when the C library is missing)
    except (ImportError, OSError):
        return False
    return True


def check_soundfont(path: str | os.PathLike) -> Path:
    """The SoundFont path if it names a readable .sf2/.sf3 file; an InputError otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"soundfont not found: {p}")
    if not p.is_file():
        raise InputError(f"soundfont {p} is not a file")
    try:
        with open(p, "rb") as f:
            header = f.read(12)
    except OSError as exc:
        raise InputError(f"soundfont {p} cannot be read: {exc.strerror or exc}") from None
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise InputError(f"soundfont {p} is not a SoundFont (.sf2/.sf3 file expected)")
    return p


def render_midi(pm_or_bytes, request: RenderRequest) -> RenderOutput:
    """Render a PrettyMIDI, MIDI bytes or a MIDI path to normalised audio per `request`."""
    import pretty_midi

    if isinstance(pm_or_bytes, pretty_midi.PrettyMIDI):
        pm = pm_or_bytes
    else:
        from muse_cli.music.midi import load_midi

        pm = load_midi(pm_or_bytes)

    check_length(pm, request)
    sr = request.sample_rate
    blocks, renderer, notice = _raw_blocks(pm, request, block=None)
    audio = _channels(np.concatenate(list(blocks), axis=1), request.stereo)
    audio = normalize(audio, sr, request.normalize, request.target_lufs)
    return RenderOutput(np.ascontiguousarray(audio, dtype=np.float32), sr, renderer, notice)


def check_length(pm, request: RenderRequest, label: str = "MIDI") -> float:
    """The piece's rendered length in seconds; an InputError past `request.max_duration`.

    Runs before anything is allocated: a few bytes of MIDI can last for days.
    """
    from muse_cli.music.synth import rendered_duration

    duration = rendered_duration(pm)
    if duration > request.max_duration:
        raise InputError(
            f"{label}: lasts {_clock(duration)} ({duration:.0f} s); at most {request.max_duration:.0f} s "
            "is rendered (raise --max-duration)"
        )
    return duration


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _raw_blocks(pm, request: RenderRequest, block: int | None):
    """(blocks of un-normalised audio [channels, n], renderer, notice); block None: one block."""
    sr = request.sample_rate
    soundfont = check_soundfont(request.soundfont) if request.soundfont else None
    if soundfont is not None and fluidsynth_available():
        return _fluidsynth_blocks(pm, soundfont, sr, block), "fluidsynth", None
    notice = None
    if soundfont is not None:
        notice = (
            f"FluidSynth is not installed, so {soundfont.name} was not used: "
            f"rendered with the built-in piano; {INSTALL_HINT}"
        )
    from muse_cli.music.synth import rendered_length, synthesize_blocks

    size = block or rendered_length(pm, sr)
    return synthesize_blocks(pm, sample_rate=sr, stereo=request.stereo, block=size), "builtin", notice


def _channels(audio: np.ndarray, stereo: bool) -> np.ndarray:
    if stereo and audio.shape[0] == 1:
        return np.repeat(audio, 2, axis=0)
    return audio if stereo else to_mono(audio)


@dataclass(frozen=True)
class RenderInfo:
    """What `render_to_file` wrote."""

    samples: int
    sample_rate: int
    channels: int
    renderer: Literal["builtin", "fluidsynth"]
    notice: str | None = None

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


def render_to_file(pm, request: RenderRequest, path: str | os.PathLike, *, block_s: float = BLOCK_S) -> RenderInfo:
    """Render `pm` into the audio file `path` block by block: memory stays flat however long the piece.

    Pass one renders into an unnamed scratch file (float32; the OS deletes it with the process)
    while measuring peak, RMS and BS.1770 loudness; the normalisation gain then applies block by
    block, as `normalize` does to a whole array (the peak limiter reads its 10 ms of context
    across block edges), and each block is encoded straight into `path`.
    """
    import soundfile as sf

    from muse_cli.music.audio import BlockLoudness, integrated_loudness, normalize_plan

    check_length(pm, request)
    sr = request.sample_rate
    block = max(1, int(block_s * sr))
    blocks, renderer, notice = _raw_blocks(pm, request, block)
    with tempfile.TemporaryFile() as scratch:
        store = _Scratch(scratch)
        for raw in blocks:
            store.append(_channels(raw, request.stereo))

        def measure(plan: tuple[float | None, bool]) -> float:
            if store.samples < block:  # the whole piece is one block: measure it as a whole
                return integrated_loudness(np.concatenate(list(store.processed(plan, sr, block)), axis=1), sr)
            meter = BlockLoudness(sr, store.channels, store.samples)
            for chunk in store.processed(plan, sr, block):
                meter.add(chunk)
            return meter.result()

        plan = normalize_plan(request.normalize, request.target_lufs, store.peak, store.rms_db(), measure)
        container = {"wav": "WAV", "flac": "FLAC"}[request.format]
        with sf.SoundFile(os.fspath(path), "w", samplerate=sr, channels=store.channels, format=container, subtype="PCM_16") as out:
            for chunk in store.processed(plan, sr, block):
                out.write(np.clip(chunk, -1.0, 1.0).T)
    return RenderInfo(store.samples, sr, store.channels, renderer, notice)


class _Scratch:
    """Raw float32 audio in an unnamed temporary file, with the statistics normalisation needs."""

    def __init__(self, fh):
        self.fh, self.samples, self.channels = fh, 0, 0
        self.peak, self._squares = 0.0, 0.0

    def append(self, audio: np.ndarray) -> None:
        a = np.ascontiguousarray(audio, dtype=np.float32)
        self.channels = a.shape[0]
        self.fh.write(a.T.astype("<f4").tobytes())
        self.samples += a.shape[1]
        self.peak = max(self.peak, float(np.max(np.abs(a), initial=0.0)))
        self._squares += float(np.sum(np.square(a, dtype=np.float64)))

    def rms_db(self) -> float:
        mean = self._squares / max(1, self.samples * self.channels)
        return 10 * math.log10(mean) if mean > 0 else -math.inf

    def read(self, start: int, stop: int) -> np.ndarray:
        width = 4 * self.channels
        self.fh.seek(start * width)
        data = self.fh.read((stop - start) * width)
        return np.frombuffer(data, dtype="<f4").reshape(-1, self.channels).T

    def processed(self, plan: tuple[float | None, bool], sr: int, block: int) -> Iterator[np.ndarray]:
        """The audio block by block with plan = (gain or None, peak limiter on or off) applied."""
        from muse_cli.music.audio import limit_peaks, limiter_context

        gain, limit = plan
        context = limiter_context(sr) if limit else 0
        for start in range(0, self.samples, block):
            stop = min(self.samples, start + block)
            lo, hi = max(0, start - context), min(self.samples, stop + context)
            a = self.read(lo, hi)
            if gain is not None:
                a = a * np.float32(gain)
            if limit:
                a = limit_peaks(a, sr)
            yield a[:, start - lo : stop - lo]


def render_to_bytes(pm_or_bytes, request: RenderRequest) -> tuple[bytes, RenderOutput]:
    """`render_midi`, then encoded in `request.format`."""
    out = render_midi(pm_or_bytes, request)
    return encode_audio(out.audio, out.sample_rate, request.format), out


def _fluidsynth_blocks(pm, soundfont: Path, sr: int, block: int | None) -> Iterator[np.ndarray]:
    """Drive FluidSynth event by event: stereo blocks of `block` samples (None: one block)."""
    import fluidsynth

    from muse_cli.errors import RuntimeFailure

    synth = fluidsynth.Synth(gain=FLUIDSYNTH_GAIN, samplerate=float(sr))
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise InputError(f"soundfont {soundfont} could not be loaded by FluidSynth (corrupt or unsupported)")
        events = _fluidsynth_events(pm, synth, sfid)
        pending: list[np.ndarray] = []
        held = 0

        def take(count: int):
            """Render `count` samples into the pending list; yield every full block."""
            nonlocal held
            rendered = []
            while count > 0:
                step = count if block is None else min(count, block - held)
                rendered.append(np.asarray(synth.get_samples(step), dtype=np.int16))
                pending.append(rendered[-1])
                held += step
                count -= step
                if block is not None and held >= block:
                    yield _pcm(pending)
                    pending.clear()
                    held = 0
            return np.concatenate(rendered) if rendered else np.zeros(0, np.int16)

        cursor = 0
        for time, _, kind, chan, a, b in events:
            at = int(round(max(0.0, time) * sr))
            if at > cursor:
                yield from take(at - cursor)
                cursor = at
            if kind == "on":
                synth.noteon(chan, a, b)
            elif kind == "off":
                synth.noteoff(chan, a)
            elif kind == "cc":
                synth.cc(chan, a, b)
            else:
                synth.pitch_bend(chan, a)
        step = max(1, int(_TAIL_CHUNK_S * sr))
        for _ in range(int(FLUIDSYNTH_MAX_TAIL_S / _TAIL_CHUNK_S)):
            chunk = yield from take(step)
            if np.max(np.abs(chunk.astype(np.int32)), initial=0) / 32768.0 < _TAIL_SILENCE:
                break
        if pending:
            yield _pcm(pending)
    except OSError as exc:
        raise RuntimeFailure(f"FluidSynth failed: {exc}", hint="render without --soundfont") from None
    finally:
        synth.delete()


def _pcm(chunks: list[np.ndarray]) -> np.ndarray:
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return np.ascontiguousarray((pcm.astype(np.float32) / 32768.0).reshape(-1, 2).T)


def _fluidsynth_events(pm, synth, sfid: int) -> list[tuple[float, int, str, int, int, int]]:
    """Every note, control and bend as (time, order, kind, channel, a, b), sorted; programs selected."""
    events: list[tuple[float, int, str, int, int, int]] = []
    pitched = iter(c for c in range(256) if c % 16 != 9)  # GM reserves channel 10 for drums
    drum_channels = iter(range(9, 256, 16))
    for inst in pm.instruments:
        try:
            chan = next(drum_channels if inst.is_drum else pitched)
        except StopIteration:
            raise InputError("MIDI has more instruments than FluidSynth's 256 channels") from None
        bank = 128 if inst.is_drum else 0
        if synth.program_select(chan, sfid, bank, inst.program) < 0:
            synth.program_select(chan, sfid, bank, 0)  # the SoundFont lacks this preset
        # Order at equal times: controls, then note-offs, then note-ons (a repeated note restrikes).
        for cc in inst.control_changes:
            events.append((cc.time, 0, "cc", chan, cc.number, cc.value))
        for bend in inst.pitch_bends:
            events.append((bend.time, 0, "bend", chan, bend.pitch, 0))
        for note in inst.notes:
            events.append((note.end, 1, "off", chan, note.pitch, 0))
            events.append((note.start, 2, "on", chan, note.pitch, note.velocity))
    events.sort(key=lambda e: (e[0], e[1]))
    return events

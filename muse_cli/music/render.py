"""MIDI to audio: FluidSynth with the user's SoundFont when it can run, else the built-in synth.

FluidSynth needs two pieces: the system library (apt install libfluidsynth3, brew install
fluid-synth) and its Python binding (pip install pyfluidsynth). Without them a SoundFont request
still renders, with the built-in voice and a notice saying so; engines never print, so the
caller shows `RenderOutput.notice`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from muse_cli.contracts import RenderRequest
from muse_cli.errors import InputError
from muse_cli.music.audio import encode_audio, normalize, to_mono

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

    sr = request.sample_rate
    notice = None
    renderer: Literal["builtin", "fluidsynth"] = "builtin"
    soundfont = check_soundfont(request.soundfont) if request.soundfont else None
    if soundfont is not None and fluidsynth_available():
        audio = _fluidsynth(pm, soundfont, sr)
        renderer = "fluidsynth"
    else:
        if soundfont is not None:
            notice = (
                f"FluidSynth is not installed, so {soundfont.name} was not used: "
                f"rendered with the built-in piano; {INSTALL_HINT}"
            )
        from muse_cli.music.synth import synthesize

        audio = synthesize(pm, sample_rate=sr, stereo=request.stereo)
    if request.stereo and audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    elif not request.stereo:
        audio = to_mono(audio)
    audio = normalize(audio, sr, request.normalize, request.target_lufs)
    return RenderOutput(np.ascontiguousarray(audio, dtype=np.float32), sr, renderer, notice)


def render_to_bytes(pm_or_bytes, request: RenderRequest) -> tuple[bytes, RenderOutput]:
    """`render_midi`, then encoded in `request.format`."""
    out = render_midi(pm_or_bytes, request)
    return encode_audio(out.audio, out.sample_rate, request.format), out


def _fluidsynth(pm, soundfont: Path, sr: int) -> np.ndarray:
    """Drive FluidSynth event by event: stereo output, every instrument on its own channel."""
    import fluidsynth

    from muse_cli.errors import RuntimeFailure

    synth = fluidsynth.Synth(gain=FLUIDSYNTH_GAIN, samplerate=float(sr))
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise InputError(f"soundfont {soundfont} could not be loaded by FluidSynth (corrupt or unsupported)")
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

        chunks: list[np.ndarray] = []
        cursor = 0
        for time, _, kind, chan, a, b in events:
            at = int(round(max(0.0, time) * sr))
            if at > cursor:
                chunks.append(synth.get_samples(at - cursor))
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
            chunk = synth.get_samples(step)
            chunks.append(chunk)
            if np.max(np.abs(chunk), initial=0) / 32768.0 < _TAIL_SILENCE:
                break
    except OSError as exc:
        raise RuntimeFailure(f"FluidSynth failed: {exc}", hint="render without --soundfont") from None
    finally:
        synth.delete()
    pcm = np.concatenate([np.asarray(c, dtype=np.int16) for c in chunks]) if chunks else np.zeros(0, np.int16)
    return np.ascontiguousarray((pcm.astype(np.float32) / 32768.0).reshape(-1, 2).T)

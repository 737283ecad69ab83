"""The built-in synthesizer: a piano-like additive voice, so MIDI renders with no SoundFont.

Each pitched note is a sum of slightly inharmonic partials (stiff-string stretch), with a two-stage
exponential decay that is longer for low notes and shorter for high partials, and a spectrum that
brightens with velocity. Every MIDI program uses this voice. Drum tracks (`is_drum`) become short
decaying noise bursts (a low sine thump for kick drums 35/36), so grooves stay audible.

Timing contract: a note sounds from its start to its end, extended while the sustain pedal (CC64
>= 64) is down, then fades out over RELEASE_S. The output lasts `rendered_duration(pm)` seconds:
the latest such extended end plus RELEASE_S. Every note begins and ends at zero amplitude (raised-
cosine attack and release ramps), so nothing clicks. Pitch bends and other controllers than the
sustain pedal are ignored; partials above 0.45 x the sample rate are left out (no aliasing).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

ATTACK_S = 0.003
RELEASE_S = 0.12
PEDAL_CC = 64
DECAY_FLOOR_DB = -80.0
"""A held note stops once its slowest partial has decayed this far: past it nothing is audible."""

_MAX_PARTIALS = 40
_LEVEL = 0.18  # one forte note peaks well below full scale, leaving room for chords
_PAN_WIDTH = 0.7  # lowest piano key at 70% left, highest at 70% right (the player's view)


@dataclass(frozen=True)
class _Note:
    start: int  # samples
    hold: int  # samples from start to the (pedal-extended) note-off
    pitch: int
    velocity: int


def rendered_duration(pm) -> float:
    """Seconds of audio `synthesize` returns for `pm`: last pedal-extended note end + RELEASE_S."""
    end = 0.0
    for inst in pm.instruments:
        for _start, stop, _note in _sounding(inst):
            end = max(end, stop)
    return end + RELEASE_S


def rendered_length(pm, sample_rate: int) -> int:
    """Samples `synthesize` returns for `pm` at `sample_rate`."""
    return int(math.ceil(rendered_duration(pm) * int(sample_rate)))


def synthesize(pm, sample_rate: int = 44100, stereo: bool = True) -> np.ndarray:
    """Render a pretty_midi.PrettyMIDI to float32 audio [2 or 1, samples] (not normalised)."""
    total = rendered_length(pm, sample_rate)
    return next(synthesize_blocks(pm, sample_rate, stereo, block=total))


def synthesize_blocks(pm, sample_rate: int = 44100, stereo: bool = True, block: int = 1 << 19) -> Iterator[np.ndarray]:
    """`synthesize` as consecutive float32 blocks [2 or 1, <= block]: memory does not grow with length.

    Every sample receives the same additions in the same order as one whole render (pitch by
    pitch, note by note, then drums), so the blocks joined are bit-identical to `synthesize`. A
    pitch's two cached tones are dropped once its last note has sounded.
    """
    sr = int(sample_rate)
    total = rendered_length(pm, sr)
    release = _release_ramp(sr)
    pitched: dict[int, list[_Note]] = defaultdict(list)
    drums: list[_Note] = []
    for inst in pm.instruments:
        for start, stop, note in _sounding(inst):
            s = int(round(start * sr))
            n = _Note(s, max(1, int(round(stop * sr)) - s), int(note.pitch), int(note.velocity))
            if inst.is_drum:
                drums.append(n)
            else:
                pitched[n.pitch].append(n)
    voices = [_Voice.piano(pitch, notes, sr, stereo, len(release)) for pitch, notes in pitched.items()]
    if drums:
        voices.append(_Voice.drums(drums, sr, stereo, len(release)))
    for b0 in range(0, total, max(1, block)):
        b1 = min(total, b0 + max(1, block))
        out = np.zeros((2 if stereo else 1, b1 - b0), dtype=np.float32)
        for voice in voices:
            voice.mix(out, b0, b1, release)
        yield out


class _Voice:
    """The notes of one piano key (or all drum hits), mixed block by block from cached tones."""

    def __init__(self, notes: list[_Note], holds: np.ndarray, tone, gains, release_len: int):
        self.notes, self.holds, self.tone, self.gains = notes, holds, tone, gains
        self.starts = np.array([n.start for n in notes], dtype=np.int64)
        self.ends = self.starts + holds + release_len
        self.last = int(self.ends.max())
        self.cache: dict[int, np.ndarray] | None = None

    @classmethod
    def piano(cls, pitch: int, notes: list[_Note], sr: int, stereo: bool, release_len: int) -> "_Voice":
        cap = _decay_samples(pitch, sr)
        holds = np.array([min(n.hold, cap) for n in notes], dtype=np.int64)
        longest = int(holds.max())

        def tone(note: _Note, lo: int, hi: int) -> np.ndarray:
            if self.cache is None:
                soft, bright = _piano_tones(pitch, longest + release_len, sr)
                self.cache = {0: soft, 1: bright}
            b = note.velocity / 127.0  # harder hammer blows excite more upper partials
            return self.cache[0][lo:hi] * (1.0 - b) + self.cache[1][lo:hi] * b

        self = cls(notes, holds, tone, _pan_gains(pitch, stereo), release_len)
        return self

    @classmethod
    def drums(cls, notes: list[_Note], sr: int, stereo: bool, release_len: int) -> "_Voice":
        waves: dict[int, np.ndarray] = {}

        def hit(pitch: int) -> np.ndarray:
            if pitch not in waves:
                waves[pitch] = _drum_hit(pitch, sr)
            return waves[pitch]

        # Drums ring for at most their own sample, fading from the note-off like any note.
        holds = np.array([min(n.hold, len(hit(n.pitch)) - release_len) for n in notes], dtype=np.int64)
        return cls(notes, holds, lambda note, lo, hi: hit(note.pitch)[lo:hi].copy(), _pan_gains(60, stereo), release_len)

    def mix(self, out: np.ndarray, b0: int, b1: int, release: np.ndarray) -> None:
        if b0 >= self.last:
            self.cache = None  # this key is done: free its tones
            return
        for i in np.flatnonzero((self.starts < b1) & (self.ends > b0)):
            note, hold = self.notes[i], int(self.holds[i])
            lo, hi = max(b0, note.start) - note.start, min(b1, int(self.ends[i])) - note.start
            seg = np.asarray(self.tone(note, lo, hi), dtype=np.float32)
            if hi > hold:  # the release ramp, from the (pedal-extended) note-off
                first = max(lo, hold)
                seg[first - lo :] *= release[first - hold : hi - hold]
            amp = _LEVEL * (max(1, note.velocity) / 127.0) ** 1.6
            at = note.start + lo - b0
            out[:, at : at + len(seg)] += (amp * self.gains)[:, None] * seg[None, :]


# --------------------------------------------------------------------------------- note timing


def _sounding(inst):
    """(start_s, sounding_end_s, note) per note: note-offs held by the pedal, cut by a restrike."""
    pedal = _pedal_intervals(inst)
    notes = sorted(inst.notes, key=lambda n: (n.start, n.pitch))
    next_strike: dict[int, float] = {}
    result = []
    for note in reversed(notes):
        end = max(note.end, note.start)
        if not inst.is_drum:
            for down, up in pedal:
                if down <= end < up:
                    end = up
                    break
            # A key struck again re-excites the same string: the old sound stops there.
            following = next_strike.get(note.pitch)
            if following is not None and following > note.start:
                end = min(end, following)
        next_strike[note.pitch] = note.start
        result.append((note.start, end, note))
    result.reverse()
    return result


def _pedal_intervals(inst) -> list[tuple[float, float]]:
    """[(down, up)] seconds for CC64; a pedal still down at the end lifts at the last note end."""
    intervals: list[tuple[float, float]] = []
    down: float | None = None
    for cc in sorted((c for c in inst.control_changes if c.number == PEDAL_CC), key=lambda c: c.time):
        if cc.value >= 64 and down is None:
            down = cc.time
        elif cc.value < 64 and down is not None:
            intervals.append((down, cc.time))
            down = None
    if down is not None:
        last = max((n.end for n in inst.notes), default=down)
        intervals.append((down, max(down, last)))
    return intervals


# ---------------------------------------------------------------------------------- the voice


def _fundamental_tau(pitch: int) -> float:
    """Decay time constant (s) of the fundamental: bass strings ring for seconds, treble briefly."""
    return float(np.clip(4.0 * 2.0 ** (-(pitch - 48) / 15.0), 0.25, 10.0))


def _decay_samples(pitch: int, sr: int) -> int:
    # The slow stage of the fundamental sets how long anything is audible.
    return int(_fundamental_tau(pitch) * math.log(10 ** (-DECAY_FLOOR_DB / 20)) * sr)


def _release_ramp(sr: int) -> np.ndarray:
    n = max(2, int(round(RELEASE_S * sr)))
    return (0.5 + 0.5 * np.cos(np.linspace(0.0, math.pi, n))).astype(np.float32)


def _attack_ramp(sr: int, length: int) -> np.ndarray:
    n = min(length, max(2, int(round(ATTACK_S * sr))))
    return (0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, n))).astype(np.float32)


def _spectrum(pitch: int, brightness: float, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partial frequencies, unit-energy amplitudes and decay time constants for one brightness."""
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    inharmonicity = float(np.clip(3e-4 * 2.0 ** ((pitch - 60) / 19.0), 5e-5, 4e-3))
    n = np.arange(1, _MAX_PARTIALS + 1, dtype=np.float64)
    freqs = n * f0 * np.sqrt(1.0 + inharmonicity * n * n)
    slope = 2.3 - 1.1 * brightness  # soft notes lose their upper partials
    cutoff = 1500.0 + 7000.0 * brightness
    amps = n**-slope / (1.0 + (freqs / cutoff) ** 2)
    amps *= np.abs(np.sin(math.pi * n / 7.5)) * 0.8 + 0.2  # hammer near 1/7.5 of the string damps those modes
    amps[freqs >= 0.45 * sr] = 0.0
    if amps[0] == 0.0:  # even the fundamental is above Nyquist at this rate: nothing to play
        return freqs, amps, np.ones_like(freqs)
    amps[amps < 1e-3 * amps[0]] = 0.0
    amps /= math.sqrt(float(np.sum(amps**2)))
    tau = _fundamental_tau(pitch) / (1.0 + 0.12 * (n - 1)) / (1.0 + freqs / 4000.0)
    return freqs, amps, tau


def _piano_tones(pitch: int, length: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """The softest and the brightest version of one note (attack ramp included, no release).

    A note of brightness b is soft + b * (bright - soft): the spectrum is linear in the partial
    amplitudes, so two renders per pitch cover every velocity.

    Each partial stage is a decaying complex exponential exp(s t), and exp(s (K k + j)) =
    exp(s K k) * exp(s j): the sum over partials of a block-structured signal is one complex
    matrix product [blocks x partials] @ [partials x block], which BLAS does far faster than
    evaluating exp and sin per sample.
    """
    freqs, _, tau = _spectrum(pitch, 0.0, sr)
    amps = np.stack([_spectrum(pitch, b, sr)[1] for b in (0.0, 1.0)])  # [2, partials]
    live = np.flatnonzero(amps.max(axis=0) > 0)
    if live.size == 0:
        return np.zeros(length, np.float32), np.zeros(length, np.float32)
    freqs, tau, amps = freqs[live], tau[live], amps[:, live]
    phases = np.random.default_rng(pitch).uniform(0, 2 * math.pi, size=live.size)
    # Two stages per partial: a prompt sound decaying 4x faster, then the long aftersound.
    s = np.concatenate([-4.0 / tau, -1.0 / tau]) + 2j * math.pi * np.concatenate([freqs, freqs])
    weight = np.concatenate([0.65 * np.exp(1j * phases), 0.35 * np.exp(1j * phases)])

    block, chunk = 512, 32  # chunk: blocks per matrix product
    n_blocks = -(-length // block)
    # Components fall below DECAY_FLOOR_DB at different times: later chunks skip the dead ones.
    life = -math.log(10 ** (-DECAY_FLOOR_DB / 20)) / s.real  # seconds until inaudible
    inner = np.exp(np.outer(s, np.arange(block) / sr)).astype(np.complex64)  # [2P, block]
    coeff = np.stack([weight * np.concatenate([a, a]) for a in amps])  # [2, 2P]
    ramp = _attack_ramp(sr, length)
    tones = np.empty((2, n_blocks * block), dtype=np.float32)
    for first in range(0, n_blocks, chunk):
        k = np.arange(first, min(n_blocks, first + chunk))
        live = np.flatnonzero(life > first * block / sr)
        if live.size == 0:
            tones[:, first * block :] = 0.0
            break
        outer = np.exp(np.outer(k * (block / sr), s[live]))  # [blocks, live]
        both = np.concatenate([outer * coeff[0, live], outer * coeff[1, live]]).astype(np.complex64)
        part = (both @ inner[live]).imag.reshape(2, -1)  # soft and bright in one product
        tones[:, first * block : (k[-1] + 1) * block] = part
    tones = tones[:, :length]
    tones[:, : len(ramp)] *= ramp
    return np.ascontiguousarray(tones[0]), np.ascontiguousarray(tones[1])


def _drum_hit(pitch: int, sr: int) -> np.ndarray:
    """A short percussion sound: a pitched-down thump for kicks, shaped noise for the rest."""
    length = int(0.25 * sr) + int(round(RELEASE_S * sr))
    t = np.arange(length, dtype=np.float64) / sr
    if pitch in (35, 36):
        freq = 50.0 + 70.0 * np.exp(-t / 0.03)
        phase = 2 * math.pi * np.cumsum(freq) / sr
        wave = np.sin(phase) * np.exp(-t / 0.12)
    else:
        rng = np.random.default_rng(pitch)
        noise = rng.standard_normal(length)
        # Cymbals (>= 49) ring longer and brighter than snares and toms.
        tau = 0.25 if pitch >= 49 else 0.06
        if pitch < 49:
            noise = np.convolve(noise, np.ones(3) / 3, mode="same")
        wave = 0.5 * noise * np.exp(-t / tau)
    ramp = _attack_ramp(sr, length)
    wave[: len(ramp)] *= ramp
    return wave.astype(np.float32)


def _pan_gains(pitch: int, stereo: bool) -> np.ndarray:
    if not stereo:
        return np.ones(1, dtype=np.float32)
    pos = float(np.clip((pitch - 21) / (108 - 21), 0.0, 1.0)) * 2 - 1  # -1 left .. +1 right
    theta = (pos * _PAN_WIDTH + 1) * math.pi / 4  # constant power: cos^2 + sin^2 = 1
    return np.array([math.cos(theta), math.sin(theta)], dtype=np.float32)

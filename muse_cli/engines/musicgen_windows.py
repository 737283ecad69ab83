"""MusicGen's token bookkeeping: window plans, seeded sampling, the codebook delay pattern, chroma.

Only imported on the heavy path (by `engines/musicgen.py` inside `generate`), so torch is imported
at module level here.

Sampling. transformers' `generate` draws every token from one global RNG, so in a batched call the
tokens of clip k depend on the other clips. Instead, `SeededSampler` is a logits processor that does
the sampling itself: classifier-free guidance, temperature, top-k / top-p as in the reference
(audiocraft), then Gumbel-max with noise from a counter-based hash of (clip seed, step, codebook,
token). It returns scores with one winning token per row, so `generate(do_sample=False)` picks it.
Each clip therefore has its own random stream: clip k of a batch with seed s is the same clip as a
single run with seed `derive_seed(s, k)`, on CPU and GPU alike (up to floating-point differences in
the logits between batch sizes and devices). The sampler also records the chosen codes, which is how
the engine gets the EnCodec codes out of `generate` (it returns only decoded audio).
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

WINDOW_S = 30.0
"""MusicGen was trained on 30 s excerpts: one `generate` call never covers more."""

_LOSE = -1.0e4  # score of every token but the chosen one: finite, so guidance arithmetic stays finite


# ------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class Window:
    start: int  # first new frame, counted from the start of the output (prompt frames included)
    context: int  # frames of already generated (or prompt) codes the window is conditioned on
    new: int  # frames this window adds


@dataclass(frozen=True)
class Plan:
    frames: int  # total frames of the output, prompt included
    prompt: int  # frames that come from the continuation prompt
    windows: tuple[Window, ...]
    delay: int  # extra decoder steps per window caused by the codebook delay pattern

    @property
    def steps(self) -> int:
        """Decoder steps over all windows: the unit of progress."""
        return sum(w.new + self.delay for w in self.windows)


def plan_windows(
    new_frames: int, prompt_frames: int, frame_rate: float, extend_stride_s: float, channel_codebooks: int
) -> Plan:
    """Split generation into 30 s windows; each later window keeps the last (30 - stride) s as context.

    The first window is conditioned on the whole continuation prompt when it is shorter than a
    window, as audiocraft v1.3.0 does (audiocraft/models/genmodel.py, `_generate_tokens`: the first
    `lm.generate` call, line 248, gets all of `prompt_tokens`; only later ones get
    `gen_tokens[:, :, stride_tokens:]`, line 255). audiocraft refuses a prompt over 30 s (line 218),
    and a 30 s one leaves its first window nothing to add; here such a prompt counts as a finished
    window, so the first window keeps its last (30 - stride) s like any later one.

    A window never asks for fewer than `channel_codebooks` frames: below that the delay pattern does
    not fit (the extra frames are generated and dropped).
    """
    window = round(WINDOW_S * frame_rate)
    context_max = max(0, min(window - 1, round((WINDOW_S - extend_stride_s) * frame_rate)))
    total = prompt_frames + new_frames
    done = prompt_frames
    windows: list[Window] = []
    while done < total:
        first_with_prompt = not windows and 0 < prompt_frames < window
        context = prompt_frames if first_with_prompt else min(done, context_max)
        new = min(window - context, total - done)
        windows.append(Window(start=done, context=context, new=new))
        done += new
    return Plan(frames=total, prompt=prompt_frames, windows=tuple(windows), delay=channel_codebooks - 1)


def steps_for(new: int, channel_codebooks: int) -> int:
    """`max_new_tokens` that yields `new` frames after the delay pattern is undone."""
    return max(new, channel_codebooks) + channel_codebooks - 1


# ------------------------------------------------------------------------------------ sampling

_C1 = 0xBF58476D1CE4E5B9 - (1 << 64)  # splitmix64 constants as signed int64
_C2 = 0x94D049BB133111EB - (1 << 64)
_K_STEP = 0x9E3779B97F4A7C15 - (1 << 64)
_K_BOOK = 0xD1B54A32D192ED03 - (1 << 64)
_K_TOKEN = 0x2545F4914F6CDD1D


def _lshr(z: torch.Tensor, s: int) -> torch.Tensor:
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    z = (z ^ _lshr(z, 30)) * _C1
    z = (z ^ _lshr(z, 27)) * _C2
    return z ^ _lshr(z, 31)


def uniform_noise(seeds: torch.Tensor, step: int, codebooks: int, vocab: int) -> torch.Tensor:
    """U(0,1) float32 of shape [clips, codebooks, vocab], a pure function of (seed, step, codebook, token)."""
    device = seeds.device
    book = torch.arange(codebooks, device=device, dtype=torch.int64)[None, :, None]
    token = torch.arange(vocab, device=device, dtype=torch.int64)[None, None, :]
    step_key = torch.tensor(step, dtype=torch.int64, device=device) * _K_STEP
    z = _mix(seeds.to(torch.int64)[:, None, None] + step_key)
    z = _mix(z + book * _K_BOOK + token * _K_TOKEN)
    bits = _lshr(z, 40).to(torch.float32)  # 24 random bits: exact in float32
    return (bits + 0.5) / float(1 << 24)


class SeededSampler:
    """A transformers logits processor that samples (see the module docstring) and records codes."""

    def __init__(
        self,
        seeds: list[int],
        codebooks: int,
        *,
        temperature: float,
        top_k: int,
        top_p: float,
        guidance: float,
        step_offset: int,
        on_step=None,
    ):
        self.batch = len(seeds)
        self.codebooks = codebooks
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.guidance = guidance
        self.step_offset = step_offset
        self.on_step = on_step
        self._seeds = torch.tensor(seeds, dtype=torch.int64)
        self.chosen: list[torch.Tensor] = []  # per step: [batch, codebooks] on the model's device

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows = self.batch * self.codebooks
        logits = scores.float()
        if logits.shape[0] == 2 * rows:  # classifier-free guidance: conditional rows, then null rows
            cond, uncond = logits[:rows], logits[rows:]
            logits = uncond + (cond - uncond) * self.guidance
        vocab = logits.shape[-1]
        logits = (logits / self.temperature).view(self.batch, self.codebooks, vocab)
        logits = self._filter(logits)
        seeds = self._seeds.to(logits.device)
        u = uniform_noise(seeds, self.step_offset + len(self.chosen), self.codebooks, vocab)
        gumbel = -torch.log(-torch.log(u))
        choice = torch.argmax(logits + gumbel, dim=-1)  # [batch, codebooks]
        self.chosen.append(choice)
        out = torch.full((rows, vocab), _LOSE, dtype=scores.dtype, device=scores.device)
        out.scatter_(1, choice.reshape(rows, 1), 0.0)
        if scores.shape[0] == 2 * rows:
            out = torch.cat([out, out], dim=0)  # identical halves: guidance leaves them unchanged
        if self.on_step is not None:
            self.on_step()
        return out

    def _filter(self, logits: torch.Tensor) -> torch.Tensor:
        # As the reference: top_p > 0 selects nucleus sampling and ignores top_k; top_k 0 keeps all.
        if self.top_p > 0:
            probs = torch.softmax(logits, dim=-1)
            sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
            cumulative = torch.cumsum(sorted_probs, dim=-1)
            drop_sorted = cumulative - sorted_probs > self.top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            return logits.masked_fill(drop, -math.inf)
        if 0 < self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            return logits.masked_fill(logits < kth, -math.inf)
        return logits

    def codes(self, new: int, channel_codebooks: int) -> torch.Tensor:
        """Undo the delay pattern: [batch, codebooks, new] of the frames this call generated.

        In the delay pattern, codebook k of a channel lags k steps behind codebook 0; stereo models
        interleave left/right codebooks, which share the lag of their index within the channel.
        """
        steps = torch.stack(self.chosen, dim=-1)  # [batch, codebooks, steps]
        per_channel = self.codebooks // channel_codebooks
        parts = []
        for k in range(self.codebooks):
            lag = k // per_channel
            parts.append(steps[:, k, lag : lag + new])
        return torch.stack(parts, dim=1)


# ---------------------------------------------------------------------------- codes, not audio

_skip = threading.local()


@dataclass(frozen=True)
class _Undecoded:
    audio_values: torch.Tensor  # the codes themselves, where generate() expects audio


@contextlib.contextmanager
def codes_only(model) -> Iterator[None]:
    """Inside this block, `model.generate(...)` returns without decoding its codes with EnCodec.

    transformers' MusicGen and MusicGen-Melody `generate` always end by decoding the sampled codes
    (modeling_musicgen.py and modeling_musicgen_melody.py, `*ForConditionalGeneration.generate`:
    `self.audio_encoder.decode(output_ids, audio_scales=...)`, per channel for stereo), and take no
    option to skip it. muse reads the codes from its sampler and decodes the whole clip once at the
    end, so a windowed request decoded every window's batch for nothing: with -n 16, sixteen 30 s
    decodes per window. The codec's `decode` is wrapped once per model; the wrapper returns the codes
    unchanged while this calling thread is inside the block, and decodes as usual everywhere else
    (other threads, the engine's own final decode).
    """
    codec = model.audio_encoder
    if not getattr(codec.decode, "_muse_codes_only", False):
        decode = codec.decode

        def maybe_decode(audio_codes, *args, **kwargs):
            if getattr(_skip, "depth", 0):
                return _Undecoded(audio_codes)
            return decode(audio_codes, *args, **kwargs)

        maybe_decode._muse_codes_only = True  # type: ignore[attr-defined]
        codec.decode = maybe_decode
    _skip.depth = getattr(_skip, "depth", 0) + 1
    try:
        yield
    finally:
        _skip.depth -= 1


# -------------------------------------------------------------------------------------- chroma


def chroma_features(
    wav: np.ndarray, sr: int, *, n_fft: int, hop: int, num_chroma: int, max_samples: int
) -> torch.Tensor:
    """One-hot dominant-pitch-class chroma [frames, num_chroma], as MusicGen-Melody's feature extractor.

    Same recipe as transformers' MusicgenMelodyFeatureExtractor (power spectrogram with a Hann window,
    chroma filter bank, argmax one-hot), computed with torch.stft so torchaudio is not needed.
    """
    from transformers.audio_utils import chroma_filter_bank

    x = torch.from_numpy(np.ascontiguousarray(wav[:max_samples], dtype=np.float32))
    if x.shape[-1] < n_fft:
        pad = n_fft - x.shape[-1]
        x = torch.nn.functional.pad(x, (pad // 2, pad - pad // 2))
    window = torch.hann_window(n_fft)
    spec = torch.stft(
        x, n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window, center=True, pad_mode="reflect",
        normalized=False, return_complex=True,
    )
    power = (spec.abs() / window.pow(2).sum().sqrt()) ** 2  # [freqs, frames]
    filters = torch.from_numpy(
        chroma_filter_bank(sampling_rate=sr, num_frequency_bins=n_fft, tuning=0, num_chroma=num_chroma)
    ).float()
    if filters.shape[0] != num_chroma:
        filters = filters.T
    raw = filters @ power  # [chroma, frames]
    norm = torch.nn.functional.normalize(raw, p=float("inf"), dim=0, eps=1e-6).T
    one_hot = torch.zeros_like(norm)
    one_hot.scatter_(1, norm.argmax(-1, keepdim=True), 1.0)
    return one_hot


def looped_segment(wav: np.ndarray, start: int, length: int) -> np.ndarray:
    """`length` samples of `wav` from `start`, wrapping around: a short melody repeats under long music."""
    idx = (np.arange(start, start + length) % wav.shape[-1]).astype(np.int64)
    return wav[..., idx]

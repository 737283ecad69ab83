"""MusicGen text-to-music (transformers), with windowed extension past 30 s and optional MBD decoding.

    engine = MusicGenEngine("small")          # a MUSICGEN_MODELS name, a local folder or "org/name"
    engine.load()                             # CPU-side load, then move to the best device
    result = engine.generate(AudioRequest(prompt="calm lofi beat", duration=70), progress)

How a clip is made (details in docs/musicgen.md):
- Up to 30 s: one `generate` call. Longer: 30 s windows, each later window continues from the last
  (30 - extend_stride) s of EnCodec codes passed as `decoder_input_ids`; all codes are decoded once
  at the end, so there are no seams to crossfade.
- `continuation`: the prompt audio is encoded to codes and continued the same way. The output starts
  with the prompt (re-synthesised by EnCodec, so the join is seamless): length = prompt + duration.
- `melody` (melody models only): chroma of the melody, looped under the music, window by window.
- Output length is exactly round(duration * sample_rate) samples (plus the prompt, if any).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from muse_cli.contracts import (
    MUSICGEN_MODELS,
    AudioClip,
    AudioInput,
    AudioRequest,
    AudioResult,
)
from muse_cli.ops import hub
from muse_cli.engines.base import derive_seed, resolve_seed
from muse_cli.errors import InputError, RuntimeFailure, Unavailable
from muse_cli.progress import ProgressFn, null_progress

ENGINE_NAME = "musicgen"
MAX_PROMPT_S = 300.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_PATTERNS = ("*.json", "*.model", "*.txt")  # configs, tokenizer; weights chosen per repo
MBD_HINT = "use --backend modal (the deployed MusicGenMBD class has audiocraft), or --decoder encodec"


# ---------------------------------------------------------------------------- model names


def resolve_model(model: str) -> str:
    """A model name from MUSICGEN_MODELS, an existing local folder, or a hub id 'org/name'.

    Raises InputError for anything else, without touching the disk beyond one `exists` check.
    """
    name = model.strip()
    if name in MUSICGEN_MODELS:
        return MUSICGEN_MODELS[name]
    if name and Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if _HUB_ID.match(name) and not name.startswith((".", "/")):
        return name
    names = ", ".join(MUSICGEN_MODELS)
    raise InputError(f"model {model!r} is unknown: use one of {names}, a local folder, or a hub id org/name")


def short_name(model_id: str) -> str:
    """The table name for a hub id when there is one (for hints like `muse models pull small`)."""
    for name, repo in MUSICGEN_MODELS.items():
        if repo == model_id:
            return name
    return model_id


def is_melody_model(model_id: str) -> bool:
    """Melody models condition on chroma. Local folders say so in config.json; hub ids by name."""
    config = Path(model_id) / "config.json"
    if config.is_file():
        try:
            return json.loads(config.read_text()).get("model_type") == "musicgen_melody"
        except (OSError, ValueError):
            return False
    cached = _cached_snapshot(model_id)
    if cached is not None and (cached / "config.json").is_file():
        return json.loads((cached / "config.json").read_text()).get("model_type") == "musicgen_melody"
    return "melody" in model_id.lower()


# ---------------------------------------------------------------------------- weights on disk


def _cached_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model, or None; never touches the network."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if (path / "config.json").is_file() else None


def _weight_patterns(repo_id: str) -> list[str]:
    """safetensors when the repo has them, else the PyTorch .bin files: never both."""
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo_id)
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    return [*_WEIGHT_PATTERNS, weights]


def pull(model: str) -> Path:
    """Download a model's weights into the Hugging Face cache (`muse models pull`); returns its folder."""
    model_id = resolve_model(model)
    if Path(model_id).is_dir():
        return Path(model_id)
    cached = _cached_snapshot(model_id)
    why = hub.why_offline()
    if why is not None:
        if cached is not None:
            return cached
        raise Unavailable(f"cannot download {model_id}: {why}", hint="connect to the internet (and unset HF_HUB_OFFLINE)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    failures: tuple[type[BaseException], ...] = (HfHubHTTPError, OSError, ValueError)
    try:
        import httpx  # huggingface_hub >= 1.0 talks HTTP through httpx

        failures += (httpx.HTTPError,)
    except ImportError:
        pass
    try:
        return Path(snapshot_download(model_id, allow_patterns=_weight_patterns(model_id)))
    except failures as exc:
        raise RuntimeFailure(
            f"could not download {model_id}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            hint="check the model id and your network (or HF_TOKEN for gated models)",
        ) from None


def locate(model_id: str) -> Path:
    """The local folder of a model: a path as given, else the cache; downloads only when online."""
    path = Path(model_id)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"model folder {model_id} has no config.json: not a MusicGen checkpoint")
        return path
    cached = _cached_snapshot(model_id)
    if cached is not None:
        return cached
    why = hub.why_offline()
    if why is not None:
        name = short_name(model_id)
        raise Unavailable(
            f"model {model_id} is not downloaded and {why}", hint=f"run muse models pull {name} while online, or use --backend modal"
        )
    return pull(model_id)


# ---------------------------------------------------------------------------- input checks


@dataclass(frozen=True)
class PreparedInputs:
    melody: np.ndarray | None  # mono float32 at its own rate
    melody_sr: int
    prompt: np.ndarray | None  # [channels, samples] float32 at its own rate
    prompt_sr: int


def _decode_input(audio: AudioInput, what: str) -> tuple[np.ndarray, int]:
    from muse_cli.music.audio import decode_audio, is_silent

    label = f"{what} {audio.name}"
    x, sr = decode_audio(audio.data, label)
    if is_silent(x):
        raise InputError(f"{label}: the audio is silent (peak below -60 dBFS), nothing to follow")
    return x, sr


def validate_request(request: AudioRequest, model_id: str | None = None) -> PreparedInputs:
    """All input checks that need no model: run before any weights load (and before any GPU time).

    Decodes the melody / continuation audio (InputError for corrupt, empty or silent audio) and
    rejects a melody for a non-melody model.
    """
    model_id = model_id or resolve_model(request.model)
    melody = prompt = None
    melody_sr = prompt_sr = 0
    if request.melody is not None:
        if not is_melody_model(model_id):
            melody_names = ", ".join(n for n in MUSICGEN_MODELS if "melody" in n)
            raise InputError(f"melody needs a melody model ({melody_names}); model {request.model!r} is not one")
        x, melody_sr = _decode_input(request.melody, "melody")
        melody = x.mean(axis=0).astype(np.float32)
    if request.continuation is not None:
        prompt, prompt_sr = _decode_input(request.continuation, "continuation")
        seconds = prompt.shape[-1] / prompt_sr
        if seconds > MAX_PROMPT_S:
            raise InputError(
                f"continuation {request.continuation.name}: {seconds:.1f} s long, at most {MAX_PROMPT_S:.0f} s"
            )
    return PreparedInputs(melody=melody, melody_sr=melody_sr, prompt=prompt, prompt_sr=prompt_sr)


# ---------------------------------------------------------------------------- the engine


class MusicGenEngine:
    """One loaded MusicGen checkpoint; settings arrive with each request.

    `precision` (muse_cli/engines/precision.py; default auto: int8 on a CPU, bf16 on a GPU) sets the
    language model's weights: int8 quantizes the decoder's linear layers once, at load. `fast`
    (default: on for CUDA) pads prompts to a multiple of 32 tokens and, on CUDA, uses a static KV
    cache, which transformers compiles with torch.compile. EnCodec always runs in float32, as in the
    reference.
    """

    name = ENGINE_NAME
    takes_precision = True  # the local backend loads one engine per request precision

    def __init__(self, model: str = "small", device: str | None = None, fast: bool | None = None,
                 precision: str = "auto"):
        from muse_cli.engines import precision as P

        self.model_name = model
        self.model_id = resolve_model(model)
        self._device_request = device
        self._fast_request = fast
        self.precision_request = P.check(precision)
        self.precision: str | None = None  # resolved when the model reaches its device
        self.device = device or "cpu"
        self.fast = False
        self.model = None
        self.tokenizer = None
        self.melody_config: dict | None = None
        self.mbd = None
        self._quantized: list[str] = []

    # -- loading

    def load(self, device: str | None = None) -> None:
        """Load the weights on the CPU, then move them to `device` (default: CUDA when present)."""
        from muse_cli.engines import precision as P

        device = device or self._device_request or _best_device()
        P.resolve(self.precision_request, device)  # int8 on a GPU is refused before any weights load
        self.load_cpu()
        self.to(device)

    def load_cpu(self) -> None:
        """The device-free half of loading (Modal memory snapshots capture this state)."""
        if self.model is not None:
            return
        path = locate(self.model_id)
        try:
            import torch  # noqa: F401
            from transformers import AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:
            raise RuntimeFailure(
                f"MusicGen needs torch and transformers: {exc}",
                hint="pip install torch && pip install 'muse-cli[torch]', or use --backend modal"
            ) from None
        hf_logging.set_verbosity_error()  # engines never print; transformers' advice is for developers
        config = json.loads((path / "config.json").read_text())
        model_type = config.get("model_type")
        if model_type == "musicgen_melody":
            from transformers import MusicgenMelodyForConditionalGeneration as model_cls

            pre = path / "preprocessor_config.json"
            self.melody_config = json.loads(pre.read_text()) if pre.is_file() else {}
        elif model_type == "musicgen":
            from transformers import MusicgenForConditionalGeneration as model_cls
        else:
            raise InputError(f"model {self.model_name!r} is a {model_type!r} checkpoint, not MusicGen")
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would write to the CLI's stderr
        try:
            model = model_cls.from_pretrained(str(path))
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.model = model.float().eval()

    def to(self, device: str) -> None:
        """Move to `device` at the engine's precision (int8: quantize the decoder, once, on the CPU)."""
        import torch

        from muse_cli.engines import precision as P

        resolved = P.resolve(self.precision_request, device)
        if self._quantized and resolved != "int8":
            raise RuntimeFailure(f"this MusicGen engine was quantized to int8 on the CPU; it cannot run at {resolved} on {device}",
                                 hint="build a new engine for that precision")
        self.device = device
        self.precision = resolved
        self.fast = bool(self._fast_request if self._fast_request is not None else device.startswith("cuda"))
        self.model.to(device=device, dtype=P.dtype(resolved))
        self.model.audio_encoder.to(dtype=torch.float32)
        if resolved == "int8" and not self._quantized:
            self._quantized = quantize_decoder(self.model)
        if self.mbd is not None:
            self.mbd = None  # rebuilt on the new device when next needed

    @property
    def float_dtype(self):
        """The dtype of the language model's float inputs (text states, chroma)."""
        from muse_cli.engines import precision as P

        return P.dtype(self.precision or "fp32")

    def load_mbd(self) -> None:
        """Load the MultiBandDiffusion decoder (audiocraft; downloads facebook/multiband-diffusion)."""
        if self.mbd is not None:
            return
        try:
            from audiocraft.models import MultiBandDiffusion
        except ImportError:
            raise Unavailable("decoder mbd needs audiocraft, which is not installed here", hint=MBD_HINT) from None
        self.mbd = MultiBandDiffusion.get_mbd_musicgen(device=self.device)

    # -- properties of the loaded model

    @property
    def sample_rate(self) -> int:
        return int(self.model.audio_encoder.config.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.model.decoder.config.audio_channels)

    @property
    def hop(self) -> int:
        return int(np.prod(self.model.audio_encoder.config.upsampling_ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def codebooks(self) -> int:
        return int(self.model.decoder.config.num_codebooks)

    @property
    def channel_codebooks(self) -> int:
        return self.codebooks // self.channels

    @property
    def is_melody(self) -> bool:
        return self.melody_config is not None

    # -- generation

    def generate(self, request: AudioRequest, progress: ProgressFn = null_progress) -> AudioResult:
        requested = resolve_model(request.model)
        if requested != self.model_id:
            raise RuntimeFailure(
                f"this engine holds {self.model_id}, the request asks for {requested}",
                hint="construct the engine with the request's model",
            )
        inputs = validate_request(request, self.model_id)
        if request.melody is not None and not self.is_melody:
            raise InputError(f"melody needs a melody model; {request.model!r} is not one")
        if self.model is None:
            self.load()
        from muse_cli.engines import precision as P

        P.same(request.precision, self.precision, self.device, "MusicGen")
        if request.decoder == "mbd":  # refuse before spending time on the language model
            if self.sample_rate != 32000 or self.channel_codebooks != 4:
                raise InputError("decoder mbd works with the 32 kHz MusicGen checkpoints only")
            self.load_mbd()

        from muse_cli.engines import musicgen_windows as mw

        started = time.perf_counter()
        seed = resolve_seed(request.seed)
        seeds = [derive_seed(seed, i) for i in range(request.count)]
        prompt_codes, prompt_samples = self._encode_prompt(inputs)
        new_samples = round(request.duration * self.sample_rate)
        new_frames = math.ceil(new_samples / self.hop)
        plan = mw.plan_windows(
            new_frames, prompt_codes.shape[-1] if prompt_codes is not None else 0, self.frame_rate,
            request.extend_stride, self.channel_codebooks,
        )
        codes = self._generate_codes(request, inputs, plan, seeds, prompt_codes, progress)
        t_lm = time.perf_counter()
        audio = self._decode(codes, request.decoder)
        audio = audio[..., : prompt_samples + new_samples]
        t_decode = time.perf_counter()
        clips = [self._clip(a, request, s) for a, s in zip(audio, seeds)]
        timings = {
            "generate_s": round(t_lm - started, 3),
            "decode_s": round(t_decode - t_lm, 3),
            "encode_s": round(time.perf_counter() - t_decode, 3),
            "steps": float(plan.steps),
            "windows": float(len(plan.windows)),
        }
        return AudioResult(
            engine=ENGINE_NAME, model=self.model_id, seed=seed, device=self.device, precision=self.precision,
            decoder=request.decoder,
            clips=clips, timings=timings,
        )

    def _encode_prompt(self, inputs: PreparedInputs):
        """EnCodec codes [1, codebooks, frames] of the continuation prompt, cut to whole frames."""
        if inputs.prompt is None:
            return None, 0
        import torch

        from muse_cli.music.audio import resample, to_mono, to_stereo

        x = inputs.prompt
        if inputs.prompt_sr != self.sample_rate:
            x = resample(x, inputs.prompt_sr, self.sample_rate)
        x = to_stereo(x) if self.channels == 2 else to_mono(x)
        frames = x.shape[-1] // self.hop
        if frames < 1:
            raise InputError(f"continuation is shorter than one codec frame ({1000 / self.frame_rate:.0f} ms)")
        x = x[:, : frames * self.hop]
        wav = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            encode = self.model.audio_encoder.encode
            per_channel = [encode(wav[c : c + 1][None]).audio_codes[0] for c in range(self.channels)]
        if self.channels == 1:
            codes = per_channel[0]
        else:  # stereo models interleave left/right codebooks
            codes = torch.stack(per_channel, dim=2).flatten(1, 2)
        return codes[..., :frames], frames * self.hop

    def _text_inputs(self, prompt: str | None, batch: int):
        import torch

        texts = [prompt or ""] * batch
        pad = {"pad_to_multiple_of": 32} if self.fast else {}
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, **pad)
        mask = enc["attention_mask"]
        if prompt is None:
            mask = torch.zeros_like(mask)
        return enc["input_ids"].to(self.device), mask.to(self.device)

    def _melody_features(self, inputs: PreparedInputs, start_frame: int, batch: int):

        from muse_cli.engines import musicgen_windows as mw
        from muse_cli.music.audio import resample

        cfg = self.melody_config or {}
        sr = int(cfg.get("sampling_rate", 32000))
        wav = inputs.melody
        if inputs.melody_sr != sr:
            wav = resample(wav[None], inputs.melody_sr, sr)[0]
        window = round(mw.WINDOW_S * sr)
        segment = mw.looped_segment(wav, round(start_frame / self.frame_rate * sr), window)
        chroma = mw.chroma_features(
            segment, sr, n_fft=int(cfg.get("n_fft", 16384)), hop=int(cfg.get("hop_length", 4096)),
            num_chroma=int(cfg.get("num_chroma", 12)), max_samples=int(cfg.get("chunk_length", 30)) * sr,
        )
        return chroma[None].expand(batch, -1, -1).to(self.device, self.float_dtype)

    def _generate_codes(self, request, inputs, plan, seeds, prompt_codes, progress):
        """All windows; returns codes [batch, codebooks, frames] including the prompt's."""
        import torch
        from transformers import LogitsProcessorList

        from muse_cli.engines import musicgen_windows as mw

        batch = len(seeds)
        k = self.codebooks
        codes = torch.zeros((batch, k, plan.frames), dtype=torch.long, device=self.device)
        if prompt_codes is not None:
            codes[:, :, : plan.prompt] = prompt_codes.to(self.device)
        input_ids, attention_mask = self._text_inputs(request.prompt, batch)
        conditioned = request.prompt is not None or request.melody is not None
        guidance = request.cfg_coef if conditioned else 1.0
        if not conditioned and not self.is_melody:
            # Unconditional: the null condition of MusicGen is an all-zero text embedding.
            hidden = self.model.config.text_encoder.hidden_size
            text_kwargs = {
                "encoder_outputs": (torch.zeros((batch, 1, hidden), device=self.device, dtype=self.float_dtype),),
                "attention_mask": torch.zeros((batch, 1), dtype=torch.long, device=self.device),
            }
        else:
            text_kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        done = 0
        total = plan.steps
        progress(0, total)

        def step() -> None:
            nonlocal done
            done += 1
            progress(done, total)

        offset = 0
        for window in plan.windows:
            sampler = mw.SeededSampler(
                seeds, k, temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
                guidance=guidance, step_offset=offset, on_step=step,
            )
            kwargs = dict(text_kwargs)
            if window.context:
                context = codes[:, :, window.start - window.context : window.start]
                kwargs["decoder_input_ids"] = context.reshape(batch * k, window.context)
            if self.is_melody and inputs.melody is not None:
                kwargs["input_features"] = self._melody_features(inputs, window.start - window.context, batch)
            max_new = mw.steps_for(window.new, self.channel_codebooks)
            with torch.inference_mode(), mw.codes_only(self.model):  # decoded once, after the last window
                self.model.generate(
                    **kwargs, max_new_tokens=max_new, do_sample=False,
                    guidance_scale=guidance if guidance > 1 else None, logits_processor=LogitsProcessorList([sampler]),
                    temperature=None, top_k=None, top_p=None, **self._cache_kwargs(),
                )
            new_codes = sampler.codes(window.new, self.channel_codebooks)
            codes[:, :, window.start : window.start + window.new] = new_codes
            offset += len(sampler.chosen)
        progress(total, total)
        return codes

    def _cache_kwargs(self) -> dict:
        # transformers < 5 marks MusicGen as not supporting the static cache (the MBD image runs 4.46).
        supported = getattr(type(self.model), "_supports_static_cache", True)
        if self.fast and self.device.startswith("cuda") and supported:
            return {"cache_implementation": "static"}
        return {}

    # -- decoding

    def _decode(self, codes, decoder: str) -> np.ndarray:
        """Codes [batch, codebooks, frames] -> float32 audio [batch, channels, samples]."""
        import torch

        if decoder == "mbd":
            return self._decode_mbd(codes)
        out = []
        with torch.inference_mode():
            for clip in codes:  # one clip at a time: EnCodec activations of 16 x 300 s do not fit
                channels = [
                    self.model.audio_encoder.decode(part[None, None], [None]).audio_values[0]
                    for part in self._split_channels(clip)
                ]
                out.append(torch.cat(channels, dim=0).float().cpu().numpy())
        return np.stack(out)

    def _split_channels(self, clip):
        if self.channels == 1:
            return [clip]
        return [clip[0::2], clip[1::2]]

    def _decode_mbd(self, codes) -> np.ndarray:
        import torch

        self.load_mbd()
        out = []
        with torch.inference_mode():
            for clip in codes:
                channels = [self.mbd.tokens_to_wav(part[None])[0] for part in self._split_channels(clip)]
                out.append(torch.cat(channels, dim=0).float().cpu().numpy())
        return np.stack(out)

    def _clip(self, audio: np.ndarray, request: AudioRequest, seed: int) -> AudioClip:
        from muse_cli.music.audio import encode_audio, normalize

        audio = normalize(audio, self.sample_rate, request.normalize, request.target_lufs)
        data = encode_audio(audio, self.sample_rate, request.format, request.float_wav)
        return AudioClip(
            audio=data, format=request.format, sample_rate=self.sample_rate, channels=audio.shape[0],
            duration=round(audio.shape[-1] / self.sample_rate, 6), seed=seed,
        )


def quantize_decoder(model) -> list[str]:
    """int8 weights for the language model's linear layers (in place); returns the names swapped.

    The decoder's attention, cross-attention and feed-forward layers and its four codebook heads are
    quantized: tests/test_precision.py holds each to the fidelity bound, on the real small
    architecture and the tiny test model. Stay in float: the codebook embeddings (a lookup, no
    matmul), the projection of the text states into the decoder (once per window), the T5 text
    encoder (once per window: int8 saves no time there, see docs/backends.md) and EnCodec.
    """
    from muse_cli.engines import precision as P

    # One pass of 7-bit activations meets the fidelity bound here (tests/test_precision.py), and the
    # second pass cost this decoder's 1024-wide layers about a quarter of their speed.
    swapped = ["decoder." + name for name in P.quantize_linears(model.decoder, keep=_keep_float, two_pass=False)]
    P.own_memory(model)  # the float checkpoint's file mapping goes with the last view of it
    return swapped


def _keep_float(name: str, module) -> bool:
    return False


def _best_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

"""ACE-Step v1 text-to-music: style tags + lyrics -> up to 240 s of 48 kHz stereo song.

ACE-Step is not on PyPI; the Modal image installs it from its git repository at ACESTEP_COMMIT.
Its pipeline writes the song to a file (save_path) and returns the paths plus a dict of the
parameters, seeds and time costs it used; this engine points save_path into RAM (/dev/shm) when the
song fits there, else the temp folder, reads the file back and re-encodes it in the requested format.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from muse_cli.contracts import AceStepRequest, AceStepResult
from muse_cli.engines.base import resolve_seed
from muse_cli.errors import InputError, RuntimeFailure, Unavailable
from muse_cli.progress import ProgressFn, null_progress

DEFAULT_MODEL = "ACE-Step/ACE-Step-v1-3.5B"
ACESTEP_REPO = "https://github.com/ace-step/ACE-Step.git"
ACESTEP_COMMIT = "d612523f50e252c0e138e68ae75b06223f96e934"  # 2025-06-04, main
INSTALL_HINT = f"pip install git+{ACESTEP_REPO}@{ACESTEP_COMMIT}, or use --backend modal"

ACESTEP_CALL_PARAMETERS = frozenset({
    "format", "audio_duration", "prompt", "lyrics", "infer_step", "guidance_scale", "scheduler_type",
    "cfg_type", "omega_scale", "manual_seeds", "guidance_interval", "guidance_interval_decay",
    "min_guidance_scale", "use_erg_tag", "use_erg_lyric", "use_erg_diffusion", "oss_steps",
    "guidance_scale_text", "guidance_scale_lyric", "audio2audio_enable", "ref_audio_strength",
    "ref_audio_input", "lora_name_or_path", "lora_weight", "retake_seeds", "retake_variance", "task",
    "repaint_start", "repaint_end", "src_audio_path", "edit_target_prompt", "edit_target_lyrics",
    "edit_n_min", "edit_n_max", "edit_n_avg", "save_path", "batch_size", "debug",
})
"""Keyword parameters of ACEStepPipeline.__call__ at ACESTEP_COMMIT (checked against the installed
package by the tests when it is present)."""

ACESTEP_INIT_PARAMETERS = frozenset({
    "checkpoint_dir", "device_id", "dtype", "text_encoder_checkpoint_path", "persistent_storage_path",
    "torch_compile", "cpu_offload", "quantized", "overlapped_decode",
})

CHECKPOINT_PARTS = ("music_dcae_f8c8", "music_vocoder", "ace_step_transformer", "umt5-base")
"""Sub-folders of an ACE-Step checkpoint; a folder holding all four is used as is."""


def pipeline_kwargs(request: AceStepRequest, seed: int, save_path: str) -> dict[str, Any]:
    """The keyword arguments of one ACEStepPipeline call (it takes keywords only; guidance
    interval, ERG and the other expert knobs keep the pipeline's own defaults)."""
    return {
        "format": "wav",
        "audio_duration": float(request.duration),
        "prompt": request.tags,
        "lyrics": request.lyrics,
        "infer_step": int(request.steps),
        "guidance_scale": float(request.guidance),
        "scheduler_type": request.scheduler,
        "cfg_type": request.cfg_type,
        "omega_scale": float(request.omega),
        "manual_seeds": [int(seed)],
        "save_path": save_path,
        "batch_size": 1,
        "task": "text2music",
    }


def read_outputs(outputs: Any) -> tuple[Path, dict[str, Any]]:
    """The pipeline returns [audio path, ..., params dict]: the first audio path and the dict."""
    if not isinstance(outputs, (list, tuple)) or len(outputs) < 2 or not isinstance(outputs[-1], dict):
        raise RuntimeFailure(f"ACE-Step returned {type(outputs).__name__}, not [path, ..., params]")
    path = Path(str(outputs[0]))
    if not path.is_file():
        raise RuntimeFailure(f"ACE-Step wrote no audio file at {path}")
    return path, outputs[-1]


def stage_timings(params: dict[str, Any]) -> dict[str, float]:
    costs = params.get("timecosts") or {}
    names = {"preprocess": "preprocess", "diffusion": "diffusion", "latent2audio": "decode"}
    return {ours: round(float(costs[theirs]), 3) for theirs, ours in names.items() if theirs in costs}


SHM = "/dev/shm"
SONG_SAMPLE_RATE, SONG_CHANNELS, SONG_SAMPLE_BYTES = 48000, 2, 4  # the pipeline saves float32 stereo WAV


def song_file_bytes(duration: float) -> int:
    """Upper bound on the WAV the pipeline writes for `duration` seconds, with 1 MiB to spare."""
    return int(math.ceil(duration * SONG_SAMPLE_RATE)) * SONG_CHANNELS * SONG_SAMPLE_BYTES + (1 << 20)


def scratch_dir(needed: int = 0, candidates: tuple[str, ...] | None = None) -> str:
    """The first writable folder with `needed` bytes free: RAM-backed /dev/shm, then the temp folder.

    A 240 s song is about 92 MB, and a container's /dev/shm is often only 64 MB (Docker's default),
    so RAM is used only when the song fits there.
    """
    folders = candidates if candidates is not None else (SHM, tempfile.gettempdir())
    for folder in folders:
        if os.path.isdir(folder) and os.access(folder, os.W_OK) and shutil.disk_usage(folder).free >= needed:
            return folder
    raise RuntimeFailure(
        f"no room for the {needed / 1e6:.0f} MB song file: none of {', '.join(folders)} has that much free",
        hint="free some disk space, or point TMPDIR at a folder with room",
    )


@contextlib.contextmanager
def step_progress(module: Any, progress: ProgressFn, extra_units: int = 1) -> Iterator[None]:
    """Report diffusion steps. The pipeline's only progress signal is the tqdm around its step loop
    (the one call that passes `total`), so that name is swapped for a counting wrapper for the
    duration of one call; `extra_units` leaves room for decoding after the last step."""
    original = module.tqdm

    def counting(iterable: Any = None, *args: Any, total: Any = None, **kwargs: Any) -> Any:
        if total is None:
            return iterable

        def steps() -> Iterator[Any]:
            for i, item in enumerate(iterable):
                yield item
                progress(i + 1, total + extra_units)

        return steps()

    module.tqdm = counting
    try:
        yield
    finally:
        module.tqdm = original


class AceStepEngine:
    name = "acestep"

    def __init__(self, model: str = DEFAULT_MODEL, *, overlapped_decode: bool = True, cpu_offload: bool = False):
        self.model_id = model
        self.device = "cpu"
        self.overlapped_decode = overlapped_decode
        self.cpu_offload = cpu_offload
        self._pipe: Any = None
        self._module: Any = None
        self._lock = threading.Lock()  # the pipeline keeps per-call state (LoRA, loaded flags)

    def checkpoint_dir(self) -> str:
        """A local folder with the four checkpoint parts: the model path itself, or its hub
        snapshot (HF_HUB_CACHE decides where: the weights volume on Modal)."""
        if os.path.isdir(self.model_id):
            missing = [p for p in CHECKPOINT_PARTS if not os.path.isdir(os.path.join(self.model_id, p))]
            if missing:
                raise RuntimeFailure(
                    f"{self.model_id} is not an ACE-Step checkpoint: missing {', '.join(missing)}"
                )
            return self.model_id
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(self.model_id)
        except Exception as exc:  # hub errors come in many types; all mean "no weights"
            raise RuntimeFailure(
                f"cannot fetch ACE-Step weights {self.model_id}: {type(exc).__name__}",
                hint="check the model id and network access, or pass a local checkpoint folder",
            ) from None

    def load(self) -> None:
        try:
            import torch
            from acestep import pipeline_ace_step
        except ImportError as exc:
            raise Unavailable(f"ACE-Step is not installed here ({exc.name} is missing)", hint=INSTALL_HINT) from None
        try:
            from loguru import logger

            logger.disable("acestep")  # engines never print; the pipeline logs every step otherwise
        except ImportError:
            pass
        checkpoint = self.checkpoint_dir()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        pipe = pipeline_ace_step.ACEStepPipeline(
            checkpoint_dir=checkpoint,
            dtype="bfloat16" if self.device == "cuda" else "float32",
            torch_compile=False,
            cpu_offload=self.cpu_offload,
            overlapped_decode=self.overlapped_decode,
        )
        pipe.load_checkpoint(checkpoint)
        self._pipe, self._module = pipe, pipeline_ace_step

    def generate(self, request: AceStepRequest, progress: ProgressFn = null_progress) -> AceStepResult:
        from muse_cli.music.audio import decode_audio, encode_audio

        if self._pipe is None:
            self.load()
        seed = resolve_seed(request.seed)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="muse-acestep-", dir=scratch_dir(song_file_bytes(request.duration))) as tmp:
            kwargs = pipeline_kwargs(request, seed, str(Path(tmp) / "song.wav"))
            # Its decoder print()s: keep stdout for muse's own output (paths, --json).
            with self._lock, step_progress(self._module, progress), contextlib.redirect_stdout(sys.stderr):
                outputs = self._pipe(**kwargs)
            path, params = read_outputs(outputs)
            try:
                audio, sr = decode_audio(path.read_bytes(), name="ACE-Step output")
            except InputError as exc:  # our own model's file, not the user's input
                raise RuntimeFailure(exc.message) from None
        data = encode_audio(audio, sr, request.format, request.float_wav)
        progress(1.0, 1.0)
        timings = stage_timings(params)
        timings["acestep"] = round(time.perf_counter() - started, 3)
        return AceStepResult(
            engine=self.name,
            model=self.model_id,
            seed=seed,
            device=self.device,
            audio=data,
            format=request.format,
            sample_rate=sr,
            channels=int(audio.shape[0]),
            duration=round(audio.shape[1] / sr, 3),
            timings=timings,
        )

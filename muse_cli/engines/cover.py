"""Cover art: SDXL-Turbo (diffusers) text-to-image, PNG bytes out.

SDXL-Turbo is distilled for 1 to 4 steps without classifier-free guidance, so a cover costs about
a second of GPU time; the prompt comes from the song's tags and description (songtext.cover_prompt).
"""

from __future__ import annotations

import io
import os
import threading
import time
import warnings
from typing import Any

from muse_cli.ops import hub
from muse_cli.contracts import CoverRequest, CoverResult
from muse_cli.engines.base import resolve_seed
from muse_cli.errors import RuntimeFailure
from muse_cli.progress import ProgressFn, null_progress

DEFAULT_MODEL = "stabilityai/sdxl-turbo"


def png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class CoverEngine:
    name = "cover"

    def __init__(self, model: str = DEFAULT_MODEL):
        self.model_id = model
        self.device = "cpu"
        self._pipe: Any = None
        self._lock = threading.Lock()  # one diffusers pipeline call at a time (scheduler state)

    def load(self) -> None:
        hub.require_weights(self.model_id, marker="model_index.json")
        import torch
        from diffusers import AutoPipelineForText2Image
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as hf_logging

        diffusers_logging.disable_progress_bar()
        hf_logging.disable_progress_bar()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        options: dict[str, Any] = {"torch_dtype": torch.float16 if self.device == "cuda" else torch.float32}
        if self.device == "cuda" and not os.path.isdir(self.model_id):
            options["variant"] = "fp16"  # the hub repo ships half-size fp16 weights: half the download
        try:
            with warnings.catch_warnings():
                # Newer diffusers renamed torch_dtype to dtype; the pinned image's one knows only torch_dtype.
                warnings.simplefilter("ignore", FutureWarning)
                pipe = AutoPipelineForText2Image.from_pretrained(self.model_id, **options)
        except (OSError, ValueError) as exc:
            raise RuntimeFailure(
                f"cannot load the cover model {self.model_id}: {str(exc).splitlines()[0]}",
                hint="check the model id or path, or skip the cover with --no-cover",
            ) from None
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe.to(self.device)

    def generate(self, request: CoverRequest, progress: ProgressFn = null_progress) -> CoverResult:
        import torch

        if self._pipe is None:
            self.load()
        seed = resolve_seed(request.seed)
        started = time.perf_counter()

        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            progress(step + 1, request.steps)
            return kwargs

        with self._lock, torch.inference_mode():
            output = self._pipe(
                prompt=request.prompt,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance,
                width=request.width,
                height=request.height,
                generator=torch.Generator(device=self.device).manual_seed(seed),
                callback_on_step_end=on_step,
            )
        image = output.images[0]
        return CoverResult(
            engine=self.name,
            model=self.model_id,
            seed=seed,
            device=self.device,
            image=png_bytes(image),
            width=image.width,
            height=image.height,
            timings={"cover": round(time.perf_counter() - started, 3)},
        )

"""Songs on Modal: AceStep (text-to-music), LyricsLLM (tags, lyrics, genres), CoverArt (SDXL-Turbo).

The client-side song orchestration (muse_cli/pipelines/song.py) calls these three classes, diffusion,
cover and categories at the same time. Each image is its own: ACE-Step pins transformers 4.50
and is installed from its git repository at a fixed commit; the LLM and cover images pin newer
libraries. Weights download once into the shared Volume (HF_HUB_CACHE points there).

No memory snapshots: every engine puts its weights on the GPU while loading, and a CPU-only
snapshot would restore a model living on the CPU.
"""

import modal

from muse_cli.ops.catalog import gpu_for
from muse_cli.engines.acestep import (  # light: no torch at import
    ACESTEP_COMMIT,
    ACESTEP_REPO,
)
from remote import common
from remote.app import app
from remote.images import image
from remote.plan import service

ACESTEP_MODEL = "ACE-Step/ACE-Step-v1-3.5B"
LYRICS_MODEL = "Qwen/Qwen2.5-7B-Instruct"
COVER_MODEL = "stabilityai/sdxl-turbo"

acestep_image = image(
    "acestep",
    "torch==2.7.1",
    "torchaudio==2.7.1",  # ACE-Step saves through torchaudio.save(backend=...), gone in 2.9
    "torchvision==0.22.1",
    "transformers==4.50.0",
    "huggingface_hub[hf_transfer]==0.30.2",
    "diffusers==0.33.1",
    "accelerate==1.6.0",
    "peft==0.15.2",  # of the same season as transformers 4.50; newer peft expects newer transformers
    # ACE-Step's own requirements.txt leaves gradio and torch unpinned and pulls its GUI and training
    # stack; it is installed with --no-deps and these are what its pipeline imports, pinned.
    "librosa==0.11.0",
    "loguru==0.7.3",
    "tqdm==4.67.1",
    "pypinyin==0.53.0",
    "py3langid==0.3.0",
    "hangul-romanize==0.1.0",
    "num2words==0.5.14",
    "spacy==3.8.4",
    "cutlet==0.5.0",
    "fugashi==1.4.0",
    "unidic-lite==1.0.8",
    no_deps=(f"ace-step @ git+{ACESTEP_REPO}@{ACESTEP_COMMIT}",),
    apt=("git",),
)
lyrics_image = image(
    "lyrics", "torch==2.8.0", "transformers==4.57.6", "huggingface_hub[hf_transfer]==0.36.0", "tokenizers==0.22.1",
    "accelerate==1.11.0",
)
cover_image = image(
    "cover", "torch==2.8.0", "diffusers==0.36.0", "transformers==4.57.6", "huggingface_hub[hf_transfer]==0.36.0",
    "tokenizers==0.22.1", "accelerate==1.11.0", "pillow==11.3.0",
)


def _load(engine: object) -> None:
    from muse_cli.errors import MuseError

    try:
        engine.load()  # type: ignore[attr-defined]
    except MuseError:
        # Not loaded: each request retries the load and answers its error in protocol,
        # instead of the container crash-looping.
        pass


@app.cls(**service("AceStep", image=acestep_image, image_name="acestep",
                   gpu=gpu_for("acestep", ACESTEP_MODEL), timeout=900,
                   scaledown_window=120, retries=1))
class AceStep(common.Served):
    FAMILY = "acestep"
    model: str = modal.parameter(default=ACESTEP_MODEL)

    @modal.enter()
    def load(self) -> None:
        from muse_cli.engines.acestep import AceStepEngine

        # Overlapped decoding: DCAE and vocoder in windows, so 240 s songs decode in bounded memory.
        self.engine = AceStepEngine(self.model, overlapped_decode=True)
        _load(self.engine)

    def health_info(self) -> dict:
        return {"acestep_commit": ACESTEP_COMMIT}


@app.cls(**service("LyricsLLM", image=lyrics_image, image_name="lyrics",
                   gpu=gpu_for("lyrics", LYRICS_MODEL), timeout=600,
                   scaledown_window=120, retries=1))
class LyricsLLM(common.Served):
    FAMILY = "lyrics"
    model: str = modal.parameter(default=LYRICS_MODEL)

    @modal.enter()
    def load(self) -> None:
        from muse_cli.engines.lyrics import LyricsEngine

        self.engine = LyricsEngine(self.model)
        _load(self.engine)


@app.cls(**service("CoverArt", image=cover_image, image_name="cover",
                   gpu=gpu_for("cover", COVER_MODEL), timeout=300,
                   scaledown_window=120, retries=1))
class CoverArt(common.Served):
    FAMILY = "cover"
    model: str = modal.parameter(default=COVER_MODEL)

    @modal.enter()
    def load(self) -> None:
        from muse_cli.engines.cover import CoverEngine

        self.engine = CoverEngine(self.model)
        _load(self.engine)

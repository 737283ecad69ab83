"""Songs on Modal: AceStep (text-to-music), LyricsLLM (tags, lyrics, genres), CoverArt (SDXL-Turbo).

The client-side song orchestration (muse_cli/song.py) calls these three classes, diffusion,
cover and categories at the same time. Each image is its own: ACE-Step pins transformers 4.50
and is installed from its git repository at a fixed commit; the LLM and cover images pin newer
libraries. Weights download once into the shared Volume (HF_HUB_CACHE points there).

No memory snapshots: every engine puts its weights on the GPU while loading, and a CPU-only
snapshot would restore a model living on the CPU.
"""

import modal

from muse_cli.engines.acestep import ACESTEP_COMMIT, ACESTEP_REPO  # light: no torch at import
from remote import common
from remote.app import app
from remote.images import image
from remote.plan import service

acestep_image = image(
    "acestep",
    "torch==2.7.1",
    "torchaudio==2.7.1",  # ACE-Step saves through torchaudio.save(backend=...), gone in 2.9
    "torchvision==0.22.1",
    "transformers==4.50.0",
    "diffusers==0.33.1",
    "accelerate==1.6.0",
    "peft==0.15.2",  # of the same season as transformers 4.50; newer peft expects newer transformers
    f"ace-step @ git+{ACESTEP_REPO}@{ACESTEP_COMMIT}",
    apt=("git",),
)
lyrics_image = image("lyrics", "torch==2.8.0", "transformers==4.57.6", "tokenizers==0.22.1", "accelerate==1.11.0")
cover_image = image(
    "cover", "torch==2.8.0", "diffusers==0.36.0", "transformers==4.57.6", "tokenizers==0.22.1",
    "accelerate==1.11.0", "pillow==11.3.0",
)


def _load(engine: object) -> None:
    from muse_cli.errors import MuseError

    try:
        engine.load()  # type: ignore[attr-defined]
    except MuseError:
        # Not loaded: each request retries the load and answers its error in protocol,
        # instead of the container crash-looping.
        pass


@app.cls(**service("AceStep", image=acestep_image, image_name="acestep", gpu="L40S", timeout=900,
                   scaledown_window=120, retries=1))
class AceStep:
    model: str = modal.parameter(default="ACE-Step/ACE-Step-v1-3.5B")

    @modal.enter()
    def load(self) -> None:
        from muse_cli.engines.acestep import AceStepEngine

        # Overlapped decoding: DCAE and vocoder in windows, so 240 s songs decode in bounded memory.
        self.engine = AceStepEngine(self.model, overlapped_decode=True)
        _load(self.engine)

    @modal.method()
    def generate(self, payload: dict) -> dict:
        from muse_cli.contracts import AceStepRequest

        return common.serve(self.engine, AceStepRequest, payload)

    @modal.method()
    def generate_stream(self, payload: dict):
        from muse_cli.contracts import AceStepRequest

        yield from common.stream(self.engine, AceStepRequest, payload)

    @modal.method()
    def health(self) -> dict:
        info = common.health("acestep", self.engine.model_id, self.engine)
        info["acestep_commit"] = ACESTEP_COMMIT
        return info


@app.cls(**service("LyricsLLM", image=lyrics_image, image_name="lyrics", gpu="A10G", timeout=600,
                   scaledown_window=120, retries=1))
class LyricsLLM:
    model: str = modal.parameter(default="Qwen/Qwen2.5-7B-Instruct")

    @modal.enter()
    def load(self) -> None:
        from muse_cli.engines.lyrics import LyricsEngine

        self.engine = LyricsEngine(self.model)
        _load(self.engine)

    @modal.method()
    def generate(self, payload: dict) -> dict:
        from muse_cli.contracts import LyricsRequest

        return common.serve(self.engine, LyricsRequest, payload)

    @modal.method()
    def generate_stream(self, payload: dict):
        from muse_cli.contracts import LyricsRequest

        yield from common.stream(self.engine, LyricsRequest, payload)

    @modal.method()
    def health(self) -> dict:
        return common.health("lyrics", self.engine.model_id, self.engine)


@app.cls(**service("CoverArt", image=cover_image, image_name="cover", gpu="A10G", timeout=300,
                   scaledown_window=120, retries=1))
class CoverArt:
    model: str = modal.parameter(default="stabilityai/sdxl-turbo")

    @modal.enter()
    def load(self) -> None:
        from muse_cli.engines.cover import CoverEngine

        self.engine = CoverEngine(self.model)
        _load(self.engine)

    @modal.method()
    def generate(self, payload: dict) -> dict:
        from muse_cli.contracts import CoverRequest

        return common.serve(self.engine, CoverRequest, payload)

    @modal.method()
    def generate_stream(self, payload: dict):
        from muse_cli.contracts import CoverRequest

        yield from common.stream(self.engine, CoverRequest, payload)

    @modal.method()
    def health(self) -> dict:
        return common.health("cover", self.engine.model_id, self.engine)

"""MusicGen on Modal: `MusicGen` (EnCodec decoder) and `MusicGenMBD` (MultiBandDiffusion decoder).

Both wrap `muse_cli.engines.musicgen.MusicGenEngine`; no model logic lives here. The client picks
the GPU per model from muse_cli.ops.catalog (`Cls.with_options(gpu=...)`); the deployed default is the
catalog's GPU for the default model. Weights live on the shared volume (HF_HUB_CACHE points into
it); a model missing there is downloaded on first use and kept.

Two images because audiocraft (the only MBD implementation) pins torch 2.1 and av 11; av 11 has no
wheel for Python 3.11 and fails to build, so the MBD image installs audiocraft with --no-deps and
pins its runtime dependencies itself, with av 12.3 (cp311 manylinux wheels) instead.
"""

import modal

from muse_cli.ops.catalog import gpu_for
from remote import common
from remote.app import app
from remote.images import image, weights_volume
from remote.plan import service

DEFAULT_MODEL = "small"

musicgen_image = image(
    "musicgen", "torch==2.13.0", "transformers==5.23.0", "huggingface_hub==2.4.0",
)

mbd_image = image(
    "musicgen-mbd",
    "hf_transfer==0.1.9",
    "torch==2.1.0",
    "torchaudio==2.1.0",
    "xformers==0.0.22.post7",
    "av==12.3.0",
    "transformers==4.46.3",
    "huggingface_hub==0.26.2",
    "einops==0.8.0",
    "flashy==0.0.2",
    "julius==0.2.7",
    "omegaconf==2.3.0",
    "hydra-core==1.3.2",
    "hydra_colorlog==1.2.0",
    "num2words==0.5.13",
    "sentencepiece==0.2.0",
    "spacy==3.7.5",
    "librosa==0.10.2.post1",
    "torchmetrics==1.4.0",
    "encodec==0.1.1",
    "demucs==4.0.1",
    "protobuf==4.25.3",
    replace=("numpy==1.26.4",),  # torch 2.1 wheels are built against NumPy 1.x
    no_deps=("audiocraft==1.3.0",),
)


def _service(name: str, image_: modal.Image, image_name: str) -> dict:
    return service(
        name, image=image_, image_name=image_name, gpu=gpu_for("musicgen", DEFAULT_MODEL),
        timeout=1800,  # 16 x 300 s on a large model with MBD is the worst case
        scaledown_window=180, enable_memory_snapshot=True, retries=1,
    )


class _MusicGenServed(common.Served):
    """How both MusicGen classes load: on the CPU for the memory snapshot, then onto the GPU."""

    model: str

    @modal.enter(snap=True)
    def load(self) -> None:
        from muse_cli.engines.musicgen import MusicGenEngine, locate

        engine = MusicGenEngine(self.model, device="cpu")
        was_cached = _in_volume(engine.model_id)
        locate(engine.model_id)
        if not was_cached:
            weights_volume.commit()  # keep the download for the next container
        engine.load_cpu()
        self.engine = engine

    @modal.enter(snap=False)
    def to_device(self) -> None:
        import torch

        self.engine.to("cuda" if torch.cuda.is_available() else "cpu")
        self.after_device()

    def after_device(self) -> None:
        """What a class loads once the model is on its device."""

    def health_info(self) -> dict:
        return {"fast": self.engine.fast}


def _in_volume(model_id: str) -> bool:
    from pathlib import Path

    from muse_cli.engines.musicgen import _cached_snapshot

    return Path(model_id).is_dir() or _cached_snapshot(model_id) is not None


@app.cls(**_service("MusicGen", musicgen_image, "musicgen"))
class MusicGen(_MusicGenServed):
    FAMILY = "musicgen"
    model: str = modal.parameter(default=DEFAULT_MODEL)


@app.cls(**_service("MusicGenMBD", mbd_image, "musicgen-mbd"))
class MusicGenMBD(_MusicGenServed):
    """Same engine, in the audiocraft image: serves requests with decoder="mbd" (and encodec too)."""

    FAMILY = "musicgen-mbd"
    model: str = modal.parameter(default=DEFAULT_MODEL)

    def after_device(self) -> None:
        self.engine.load_mbd()

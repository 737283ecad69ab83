"""MusicGen on Modal: `MusicGen` (EnCodec decoder) and `MusicGenMBD` (MultiBandDiffusion decoder).

Both wrap `muse_cli.engines.musicgen.MusicGenEngine`; no model logic lives here. Clients pick the
GPU per model with `Cls.with_options(gpu=GPU_BY_MODEL[name])`. Weights live on the shared volume
(HF_HUB_CACHE points into it); a model missing there is downloaded on first use and kept.

Two images because audiocraft (the only MBD implementation) pins torch 2.1 and av 11; av 11 has no
wheel for Python 3.11 and fails to build, so the MBD image installs audiocraft without its
dependency pins and lists them here, with av 12.3 (cp311 manylinux wheels) instead.
"""


import modal

from remote import common
from remote.app import app
from remote.images import (
    CORE_PACKAGES,
    PYTHON_VERSION,
    WEIGHTS_DIR,
    base_image,
    weights_volume,
)

DEFAULT_GPU = "A10G"
GPU_BY_MODEL = {
    "small": "A10G",
    "medium": "A10G",
    "melody": "A10G",
    "stereo-small": "A10G",
    "stereo-medium": "A10G",
    "stereo-melody": "A10G",
    "large": "L40S",
    "melody-large": "L40S",
    "stereo-large": "L40S",
    "stereo-melody-large": "L40S",
}
"""GPU per model name; hub ids and paths not in the table get DEFAULT_GPU (or 'L40S' if named large)."""


def gpu_for(model: str) -> str:
    if model in GPU_BY_MODEL:
        return GPU_BY_MODEL[model]
    return "L40S" if "large" in model.lower() else DEFAULT_GPU


musicgen_image = base_image("torch==2.13.0", "transformers==5.23.0", "huggingface_hub==2.4.0")

_MBD_NUMPY = "numpy==1.26.4"  # torch 2.1 wheels are built against NumPy 1.x
mbd_image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .pip_install(
        *[p for p in CORE_PACKAGES if not p.startswith("numpy==")],
        _MBD_NUMPY,
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
    )
    .pip_install("audiocraft==1.3.0", extra_options="--no-deps")
    .env({"HF_HUB_CACHE": f"{WEIGHTS_DIR}/hf", "HF_HUB_ENABLE_HF_TRANSFER": "1", "PYTHONUNBUFFERED": "1"})
    .add_local_python_source("muse_cli")
)

_COMMON = {
    "volumes": {WEIGHTS_DIR: weights_volume},
    "timeout": 1800,  # 16 x 300 s on a large model with MBD is the worst case
    "scaledown_window": 180,
    "enable_memory_snapshot": True,
    "retries": modal.Retries(max_retries=1, initial_delay=2.0),
}


class _Serve:
    """The methods both classes share; `model` and `engine` are set by the Modal class."""

    model: str

    def _load_cpu(self):
        from muse_cli.engines.musicgen import MusicGenEngine, locate

        engine = MusicGenEngine(self.model, device="cpu")
        was_cached = _in_volume(engine.model_id)
        locate(engine.model_id)
        if not was_cached:
            weights_volume.commit()  # keep the download for the next container
        engine.load_cpu()
        self.engine = engine

    def _to_device(self) -> None:
        import torch

        self.engine.to("cuda" if torch.cuda.is_available() else "cpu")

    def _generate(self, payload: dict) -> dict:
        from muse_cli.contracts import AudioRequest

        return common.serve(self.engine, AudioRequest, payload)

    def _stream(self, payload: dict):
        from muse_cli.contracts import AudioRequest

        yield from common.stream(self.engine, AudioRequest, payload)

    def _health(self) -> dict:
        info = common.health("musicgen", self.engine.model_id, self.engine)
        info["fast"] = self.engine.fast
        return info


def _in_volume(model_id: str) -> bool:
    from pathlib import Path

    from muse_cli.engines.musicgen import _cached_snapshot

    return Path(model_id).is_dir() or _cached_snapshot(model_id) is not None


@app.cls(image=musicgen_image, gpu=DEFAULT_GPU, **_COMMON)
class MusicGen(_Serve):
    model: str = modal.parameter(default="small")

    @modal.enter(snap=True)
    def load(self):
        self._load_cpu()

    @modal.enter(snap=False)
    def to_device(self):
        self._to_device()

    @modal.method()
    def generate(self, payload: dict) -> dict:
        return self._generate(payload)

    @modal.method()
    def generate_stream(self, payload: dict):
        yield from self._stream(payload)

    @modal.method()
    def health(self) -> dict:
        return self._health()


@app.cls(image=mbd_image, gpu=DEFAULT_GPU, **_COMMON)
class MusicGenMBD(_Serve):
    """Same engine, in the audiocraft image: serves requests with decoder="mbd" (and encodec too)."""

    model: str = modal.parameter(default="small")

    @modal.enter(snap=True)
    def load(self):
        self._load_cpu()

    @modal.enter(snap=False)
    def to_device(self):
        self._to_device()
        self.engine.load_mbd()

    @modal.method()
    def generate(self, payload: dict) -> dict:
        return self._generate(payload)

    @modal.method()
    def generate_stream(self, payload: dict):
        yield from self._stream(payload)

    @modal.method()
    def health(self) -> dict:
        return self._health()

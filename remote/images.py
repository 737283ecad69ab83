"""Container images, one per model family, every version pinned so a deploy builds the same.

Images are declared through `image(name, ...)`, which also records them as plain data in
IMAGES: `muse deploy --dry-run` and scripts/check_images.py read that record, so what is
checked is exactly what is deployed. Only the `muse_cli` source travels into the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import modal

PYTHON_VERSION = "3.11"
WEIGHTS_DIR = "/weights"
WEIGHTS_VOLUME = "muse-weights"

# Weights cache shared by all families: HF_HUB_CACHE points into it, so a model downloads once.
weights_volume = modal.Volume.from_name(WEIGHTS_VOLUME, create_if_missing=True)

# What muse_cli itself needs inside every image (contracts, music helpers), pinned.
CORE_PACKAGES = (
    "pydantic==2.12.5",
    "numpy==2.2.6",
    "pretty_midi==0.2.11",
    "mido==1.3.3",
    "soundfile==0.13.1",
    "pyloudnorm==0.1.1",
    "scipy==1.15.3",
    "huggingface_hub[hf_transfer]==0.36.0",
)

ENV = {"HF_HUB_CACHE": f"{WEIGHTS_DIR}/hf", "HF_HUB_ENABLE_HF_TRANSFER": "1", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class ImageSpec:
    name: str
    packages: tuple[str, ...]
    apt: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()  # e.g. a pip install from git at a pinned commit
    python: str = PYTHON_VERSION
    index_url: str | None = None
    extra_index_url: str | None = None

    @property
    def all_packages(self) -> tuple[str, ...]:
        return CORE_PACKAGES + self.packages


IMAGES: dict[str, ImageSpec] = {}


def image(
    name: str,
    *packages: str,
    apt: tuple[str, ...] = (),
    commands: tuple[str, ...] = (),
    extra_index_url: str | None = None,
) -> modal.Image:
    """debian-slim + apt packages + pinned pip packages + commands + the muse_cli source."""
    spec = ImageSpec(name, tuple(packages), tuple(apt), tuple(commands), extra_index_url=extra_index_url)
    IMAGES[name] = spec
    built = modal.Image.debian_slim(python_version=spec.python)
    if spec.apt:
        built = built.apt_install(*spec.apt)
    built = built.pip_install(*spec.all_packages, extra_index_url=extra_index_url)
    if spec.commands:
        built = built.run_commands(*spec.commands)
    return built.env(ENV).add_local_python_source("muse_cli")


def base_image(*packages: str, apt: tuple[str, ...] = ()) -> modal.Image:
    """Transitional alias while family modules move to named `image(...)` declarations."""
    return image(f"unnamed-{len(IMAGES)}", *packages, apt=apt)

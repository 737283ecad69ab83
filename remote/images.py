"""One container image per model family, with every version pinned so deploys build the same.

Only `muse_cli` travels into the images (as source); the CLI's heavy dependencies are listed
per family, pinned exactly.
"""

from __future__ import annotations

import modal

PYTHON_VERSION = "3.11"
WEIGHTS_DIR = "/weights"

# Weights cache shared by all families: HF_HUB_CACHE points into it, so a model downloads once.
weights_volume = modal.Volume.from_name("muse-weights", create_if_missing=True)

# Packages of the muse_cli core (contracts, music helpers), pinned.
CORE_PACKAGES = [
    "pydantic==2.12.5",
    "numpy==2.2.6",
    "pretty_midi==0.2.11",
    "mido==1.3.3",
    "soundfile==0.13.1",
    "pyloudnorm==0.1.1",
]

_ENV = {"HF_HUB_CACHE": f"{WEIGHTS_DIR}/hf", "HF_HUB_ENABLE_HF_TRANSFER": "1", "PYTHONUNBUFFERED": "1"}


def base_image(*packages: str, apt: tuple[str, ...] = ()) -> modal.Image:
    """debian-slim + pinned packages + the muse_cli source."""
    image = modal.Image.debian_slim(python_version=PYTHON_VERSION)
    if apt:
        image = image.apt_install(*apt)
    return (
        image.pip_install(*CORE_PACKAGES, "hf_transfer==0.1.9", *packages)
        .env(_ENV)
        .add_local_python_source("muse_cli")
    )

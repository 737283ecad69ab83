"""The HTTP API on Modal: muse_cli/http's app, served next to the model classes of this app.

The `web` function builds it with ModalBackend (requests fan out to this same app's classes), the
token from the `muse-api` Secret and results on the muse-files Volume (or the S3 bucket that
MUSE_STORAGE names). FastAPI is imported only inside `web`, so this module imports where only
modal is installed (`muse deploy`, tests/test_deploy_plan.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import modal

from muse_cli.http.settings import MIN_TOKEN_CHARS, TOKEN_ENV
from remote.app import app
from remote.images import image
from remote.plan import service

if TYPE_CHECKING:
    from fastapi import FastAPI

SECRET_NAME = "muse-api"
"""The Modal Secret holding TOKEN_ENV; `muse deploy` creates it with a random token when missing."""


def deployed_models() -> dict[str, list[str]]:
    """On Modal: the classes deployed with this app (the web function is part of the same app)."""
    from muse_cli.contracts import MUSICGEN_MODELS
    from remote.plan import SERVICES

    have = set(SERVICES)
    return {
        "midi": ["etude"] + (["midi-llm"] if "MidiLLM" in have else []),
        "audio": sorted(MUSICGEN_MODELS) if "MusicGen" in have else [],
        "songs": ["acestep"] if {"AceStep", "LyricsLLM", "CoverArt"} <= have else [],
        "analyze": ["measures", "transcription"] + (["perceptual"] if "PianoModel" in have else []),
    }


# -------------------------------------------------------------------------------------- Modal

FILES_DIR = "/files"
FILES_VOLUME = "muse-files"
files_volume = modal.Volume.from_name(FILES_VOLUME, create_if_missing=True)

web_image = image(
    "web",
    "fastapi==0.165.0",
    "python-multipart==0.0.34",
    "librosa==0.11.0",
    "soxr==1.1.0",
    "onnxruntime==1.31.1",
    "matplotlib==3.11.2",
    "boto3==1.44.8",  # results in an S3-compatible bucket when MUSE_STORAGE is set
    no_deps=("basic-pitch==0.4.0",),  # only its ONNX model file is used
)


@app.function(**service(
    "web", kind="function", image=web_image, image_name="web", loads_weights=False, secrets=(SECRET_NAME,),
    timeout=1800,  # a 240 s song with lyrics, cover and categories, waited for in one request
    scaledown_window=300, cpu=2.0, memory=4096, volumes={FILES_DIR: files_volume},
))
@modal.concurrent(max_inputs=32)
@modal.asgi_app()
def web() -> FastAPI:
    """The HTTP API on Modal: requests fan out to the model classes of this same app."""
    from muse_cli.backends.modal import ModalBackend
    from muse_cli.http.app import create_app
    from muse_cli.http.store import storage_from_env

    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN_CHARS:
        raise RuntimeError(
            f"{TOKEN_ENV} is missing or shorter than {MIN_TOKEN_CHARS} characters: "
            f"modal secret create {SECRET_NAME} {TOKEN_ENV}=<token>"
        )
    origins = tuple(o.strip() for o in os.environ.get("MUSE_CORS_ORIGINS", "").split(",") if o.strip())
    # MUSE_STORAGE=s3://bucket/prefix (with MUSE_S3_ENDPOINT_URL and AWS_* keys, from the same
    # Secret) keeps results in that bucket; otherwise on the muse-files Volume.
    store = storage_from_env()
    return create_app(
        ModalBackend(), token=token, storage_dir=FILES_DIR, models=deployed_models, cors_origins=origins,
        on_store=files_volume.commit, on_miss=files_volume.reload, store=store,
    )

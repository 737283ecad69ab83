"""The deployment as data: every class and function with its GPU, timeout, volumes, image.

Families declare their Modal settings through `service(...)`, which records them here and
returns the keyword arguments for `@app.cls` / `@app.function`. `muse deploy --dry-run` and
the plan test read SERVICES, so they need no network, no credentials, no Modal internals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import modal

from remote.images import IMAGES, WEIGHTS_DIR, weights_volume


@dataclass(frozen=True)
class Service:
    name: str
    kind: str  # "class" or "function"
    image: str
    gpu: str | None
    timeout: int
    scaledown_window: int | None
    memory_snapshot: bool
    volumes: tuple[str, ...]
    secrets: tuple[str, ...]
    loads_weights: bool
    retries: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "volumes": list(self.volumes), "secrets": list(self.secrets)}


SERVICES: dict[str, Service] = {}


def service(
    name: str,
    *,
    image: modal.Image,
    image_name: str,
    kind: str = "class",
    gpu: str | None = None,
    timeout: int = 600,
    scaledown_window: int | None = 120,
    enable_memory_snapshot: bool = False,
    loads_weights: bool = True,
    secrets: tuple[str, ...] = (),
    retries: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """Record a class/function and return its decorator kwargs. Weight loaders get the weights Volume."""
    if image_name not in IMAGES:
        raise ValueError(f"image {image_name!r} was not declared with remote.images.image()")
    if name in SERVICES:
        raise ValueError(f"{name!r} is declared twice")
    volumes: dict[str, Any] = dict(extra.pop("volumes", None) or {})
    if loads_weights:
        volumes[WEIGHTS_DIR] = weights_volume
    SERVICES[name] = Service(
        name, kind, image_name, gpu, timeout, scaledown_window, enable_memory_snapshot,
        tuple(f"{getattr(v, 'name', None) or '?'}:{path}" for path, v in volumes.items()), tuple(secrets),
        loads_weights, retries,
    )
    kwargs: dict[str, Any] = dict(image=image, timeout=timeout, **extra)
    if gpu:
        kwargs["gpu"] = gpu
    if scaledown_window is not None:
        kwargs["scaledown_window"] = scaledown_window
    if enable_memory_snapshot:
        kwargs["enable_memory_snapshot"] = True
    if volumes:
        kwargs["volumes"] = volumes
    if secrets:
        kwargs["secrets"] = [modal.Secret.from_name(s) for s in secrets]
    if retries:
        kwargs["retries"] = modal.Retries(max_retries=retries, initial_delay=1.0, backoff_coefficient=2.0)
    return kwargs

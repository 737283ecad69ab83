"""Container images, one per model family, every version pinned so a deploy builds the same.

Images are declared through `image(name, ...)`, which also records them as plain data in
IMAGES: `muse deploy --dry-run` and `muse deploy --check` (scripts/check_images.py) read that
record, so what is checked is exactly what is deployed. Only the `muse_cli` source travels
into the images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import modal

PYTHON_VERSION = "3.11"
WEIGHTS_DIR = "/weights"
from muse_cli.backends.modal import WEIGHTS_VOLUME  # noqa: E402  the name the client uploads to

# Weights cache shared by all families: HF_HUB_CACHE points into it, so a model downloads once.
weights_volume = modal.Volume.from_name(WEIGHTS_VOLUME, create_if_missing=True)

# What muse_cli itself needs inside every image (contracts, music helpers), pinned. No
# huggingface_hub here: each family pins the hub its transformers/diffusers/vLLM release needs.
CORE_PACKAGES = (
    "pydantic==2.12.5",
    "numpy==2.2.6",
    "pretty_midi==0.2.11.post0",  # 0.2.11 itself is a source distribution only
    "mido==1.3.3",
    "soundfile==0.13.1",
    "pyloudnorm==0.1.1",
    "scipy==1.15.3",
)

ENV = {"HF_HUB_CACHE": f"{WEIGHTS_DIR}/hf", "PYTHONUNBUFFERED": "1"}
HF_TRANSFER_ENV = {"HF_HUB_ENABLE_HF_TRANSFER": "1"}
"""Only for images that install hf_transfer: huggingface_hub < 1.0 fails every download when this
is set without the package, and 1.x ignores it (it downloads through hf_xet)."""

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def package_name(requirement: str) -> str:
    """The canonical (PEP 503) name of a requirement string: `Foo_Bar[x]==1` -> `foo-bar`."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


@dataclass(frozen=True)
class ImageSpec:
    name: str
    packages: tuple[str, ...]
    apt: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()  # shell steps after the pip installs (nothing to resolve)
    python: str = PYTHON_VERSION
    index_url: str | None = None
    extra_index_url: str | None = None
    core: bool = True  # include CORE_PACKAGES
    replace: tuple[str, ...] = ()  # pins that replace the core pin of the same name
    no_deps: tuple[str, ...] = ()  # installed last with --no-deps: their deps are pinned in `packages`
    env: tuple[tuple[str, str], ...] = field(default=())

    @property
    def all_packages(self) -> tuple[str, ...]:
        """What the first `pip install` gets: core pins (with replacements) and the family's pins."""
        if not self.core:
            return self.replace + self.packages
        replaced = {package_name(p) for p in self.replace}
        return tuple(p for p in CORE_PACKAGES if package_name(p) not in replaced) + self.replace + self.packages

    @property
    def every_pin(self) -> tuple[str, ...]:
        return self.all_packages + self.no_deps


IMAGES: dict[str, ImageSpec] = {}


def image(
    name: str,
    *packages: str,
    apt: tuple[str, ...] = (),
    commands: tuple[str, ...] = (),
    extra_index_url: str | None = None,
    index_url: str | None = None,
    core: bool = True,
    replace: tuple[str, ...] = (),
    no_deps: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> modal.Image:
    """debian-slim + apt + pinned pip packages + `--no-deps` packages + commands + muse_cli source."""
    if name in IMAGES:
        raise ValueError(f"image {name!r} is declared twice")
    core_names = {package_name(p) for p in CORE_PACKAGES} if core else set()
    clashes = sorted(core_names & {package_name(p) for p in packages})
    if clashes:
        raise ValueError(f"image {name!r} pins core packages {clashes}: pass them as replace=(...)")
    merged_env = dict(ENV)
    if any(package_name(p) == "hf-transfer" or "[hf_transfer]" in p for p in packages + replace):
        merged_env.update(HF_TRANSFER_ENV)
    merged_env.update(env or {})
    spec = ImageSpec(
        name, tuple(packages), tuple(apt), tuple(commands), index_url=index_url, extra_index_url=extra_index_url,
        core=core, replace=tuple(replace), no_deps=tuple(no_deps), env=tuple(sorted(merged_env.items())),
    )
    IMAGES[name] = spec
    built = modal.Image.debian_slim(python_version=spec.python)
    if spec.apt:
        built = built.apt_install(*spec.apt)
    built = built.pip_install(*spec.all_packages, index_url=index_url, extra_index_url=extra_index_url)
    if spec.no_deps:
        built = built.pip_install(*spec.no_deps, index_url=index_url, extra_index_url=extra_index_url,
                                  extra_options="--no-deps")
    if spec.commands:
        built = built.run_commands(*spec.commands)
    return built.env(dict(spec.env)).add_local_python_source("muse_cli")

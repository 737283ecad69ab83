"""Every model muse knows: family, hub id, the GPU it gets on Modal, and a rough cost.

Costs are estimates per minute of generated output (or analysed audio), from Modal's list
prices per GPU-second and our measured or expected speed on that GPU; they exclude cold
starts. docs/costs.md explains the arithmetic. Update both together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Modal list prices, USD per GPU-hour (modal.com/pricing, 2025-2026).
GPU_PRICE_PER_HOUR = {
    "T4": 0.59, "L4": 0.80, "A10G": 1.10, "L40S": 1.95, "A100-40GB": 2.10, "A100-80GB": 2.50,
    "H100": 3.95, "H200": 4.54, "CPU": 0.0,
}


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what users type: `--model small`, `muse models pull small`
    family: str  # backends.registry family
    hub_id: str
    gpu: str  # default GPU on Modal
    compute_s_per_min: float  # GPU seconds per minute of output (rough)
    notes: str = ""

    @property
    def usd_per_min(self) -> float:
        return round(GPU_PRICE_PER_HOUR[self.gpu] / 3600 * self.compute_s_per_min, 4)

    def as_dict(self) -> dict:
        return {**asdict(self), "usd_per_min": self.usd_per_min}


MODELS: tuple[ModelEntry, ...] = (
    ModelEntry("small", "musicgen", "facebook/musicgen-small", "A10G", 25, "300M, mono, 32 kHz"),
    ModelEntry("medium", "musicgen", "facebook/musicgen-medium", "A10G", 60, "1.5B, mono"),
    ModelEntry("large", "musicgen", "facebook/musicgen-large", "L40S", 90, "3.3B, mono"),
    ModelEntry("melody", "musicgen", "facebook/musicgen-melody", "A10G", 60, "1.5B, melody conditioning"),
    ModelEntry("melody-large", "musicgen", "facebook/musicgen-melody-large", "L40S", 90, "3.3B, melody conditioning"),
    ModelEntry("stereo-small", "musicgen", "facebook/musicgen-stereo-small", "A10G", 35, "stereo"),
    ModelEntry("stereo-medium", "musicgen", "facebook/musicgen-stereo-medium", "A10G", 80, "stereo"),
    ModelEntry("stereo-large", "musicgen", "facebook/musicgen-stereo-large", "L40S", 120, "stereo"),
    ModelEntry("stereo-melody", "musicgen", "facebook/musicgen-stereo-melody", "A10G", 80, "stereo, melody"),
    ModelEntry("stereo-melody-large", "musicgen", "facebook/musicgen-stereo-melody-large", "L40S", 120, "stereo, melody"),
    ModelEntry("midi-llm", "midi-llm", "slseanwu/MIDI-LLM_Llama-3.2-1B", "L4", 20, "Llama 3.2 1B + AMT vocabulary; per minute of MIDI"),
    ModelEntry("etude", "etude", "built-in", "CPU", 0, "built-in composer, runs locally, free"),
    ModelEntry("ace-step", "acestep", "ACE-Step/ACE-Step-v1-3.5B", "L40S", 6, "3.5B diffusion, 48 kHz songs up to 240 s, 60 steps"),
    ModelEntry("qwen2.5-7b", "lyrics", "Qwen/Qwen2.5-7B-Instruct", "A10G", 5, "song tags and lyrics; ~15 s per song, per minute of a 3 min song"),
    ModelEntry("sdxl-turbo", "cover", "stabilityai/sdxl-turbo", "A10G", 1, "cover art, 1 step; ~3 s per song, per minute of a 3 min song"),
    ModelEntry("transcription", "transcription", "pypi:basic-pitch==0.4.0", "CPU", 0, "basic-pitch ICASSP 2022 note transcription (ONNX), runs locally; muse models pull transcription"),
    ModelEntry("percepiano-ast", "piano", "user-checkpoint", "L4", 2, "Flax AST, your checkpoint on the weights Volume; per minute analysed"),
)


def by_name(name: str) -> ModelEntry | None:
    for entry in MODELS:
        if entry.name == name or entry.hub_id == name:
            return entry
    return None


def gpu_override(family: str, model: str) -> str | None:
    """$MUSE_GPU_<MODEL> or $MUSE_GPU_<FAMILY> (e.g. MUSE_GPU_LARGE=H100, MUSE_GPU_MUSICGEN=L40S).

    Read by `muse deploy` (the class default) and by the client (per call), so set it where both
    see it: a shell profile or the CI job that deploys.
    """
    import os
    import re

    for name in (model, family):
        value = os.environ.get("MUSE_GPU_" + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper())
        if value:
            return value.strip()
    return None


def gpu_for(family: str, model: str) -> str | None:
    """The GPU a (family, model) call asks for on Modal; None keeps the class's deployed default.

    An environment override wins; MusicGen hub ids and paths outside the table get the
    large-model GPU when named "large".
    """
    family = "musicgen" if family == "musicgen-mbd" else family
    override = gpu_override(family, model)
    if override:
        return override
    entry = by_name(model)
    if entry is not None:
        return entry.gpu if entry.family == family and entry.gpu != "CPU" else None
    if family == "musicgen" and "large" in model.lower():
        return "L40S"
    return None

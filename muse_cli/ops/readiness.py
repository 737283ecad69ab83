"""What each capability still needs on this machine, all of it at once, with the commands that fix it.

`muse doctor` shows these lists; commands that run an engine in-process call `require` before any
model loads, so a newcomer reads every missing piece in one error instead of one per attempt.
Nothing here imports a heavy runtime: packages are found with importlib, weights in the caches.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from muse_cli.errors import Unavailable

MODAL_ROUTE = "or use --backend modal (modal setup, then muse deploy)"


@dataclass(frozen=True)
class Gap:
    what: str  # "torch is not installed"
    fix: str  # the command that closes it


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _runtime(need_jax: bool = False) -> list[Gap]:
    gaps = []
    if need_jax:
        if _missing("jax") or _missing("flax"):
            gaps.append(Gap("JAX/Flax are not installed", "pip install 'muse-cli[piano]'"))
        return gaps
    if _missing("torch"):
        gaps.append(Gap("torch is not installed", "pip install torch"))
    if _missing("transformers"):
        gaps.append(Gap("transformers is not installed", "pip install 'muse-cli[torch]'"))
    return gaps


def hub_cached(model_id: str, marker: str = "config.json") -> bool:
    if Path(model_id).expanduser().exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(model_id, marker), str)


def _weights(model_id: str, marker: str = "config.json") -> list[Gap]:
    if hub_cached(model_id, marker):
        return []
    from muse_cli.ops.catalog import by_name

    entry = by_name(model_id)
    return [Gap(f"{model_id} is not downloaded", f"muse models pull {entry.name if entry else model_id}")]


def musicgen(model: str = "small") -> list[Gap]:
    from muse_cli.contracts import MUSICGEN_MODELS

    return _runtime() + _weights(MUSICGEN_MODELS.get(model, model))


def midi_llm(model: str | None = None) -> list[Gap]:
    from muse_cli.engines.midi_llm import DEFAULT_MODEL

    return _runtime() + _weights(model or DEFAULT_MODEL)


ACESTEP_MARKER = "ace_step_transformer/config.json"


def song(*, llm: bool = True, cover: bool = False, lyrics_model: str | None = None) -> list[Gap]:
    """ACE-Step's package and weights, plus the LLM's weights when tags or lyrics are to be written.

    The cover is optional (a song without one is still made, with a warning): counted when asked.
    """
    from muse_cli.engines.acestep import ACESTEP_COMMIT, ACESTEP_REPO, DEFAULT_MODEL as ACESTEP
    from muse_cli.engines.cover import DEFAULT_MODEL as COVER
    from muse_cli.engines.lyrics import DEFAULT_MODEL as LYRICS

    gaps = _runtime()
    if llm:
        gaps += _weights(lyrics_model or LYRICS)
    if _missing("acestep"):
        gaps.append(Gap("ACE-Step is not installed", f"pip install git+{ACESTEP_REPO}@{ACESTEP_COMMIT}"))
    gaps += _weights(ACESTEP, ACESTEP_MARKER)
    if cover:
        if _missing("diffusers"):
            gaps.append(Gap("diffusers is not installed (cover art)", "pip install diffusers"))
        gaps += _weights(COVER, "model_index.json")
    return gaps


def transcription() -> list[Gap]:
    from muse_cli.music.transcribe import model_path

    gaps = []
    if _missing("onnxruntime"):
        gaps.append(Gap("onnxruntime is not installed", "pip install 'muse-cli[analysis]'"))
    if model_path() is None:
        gaps.append(Gap("the transcription model is not downloaded", "muse models pull transcription"))
    return gaps


def analysis(*, audio: bool = True, plot: bool = False) -> list[Gap]:
    """Descriptors of audio resample with soxr; --plot draws with matplotlib (both in [analysis])."""
    missing = [m for m, needed in (("soxr", audio), ("matplotlib", plot)) if needed and _missing(m)]
    return [Gap(f"{', '.join(missing)} not installed", "pip install 'muse-cli[analysis]'")] if missing else []


def perceptual() -> list[Gap]:
    from muse_cli.engines.piano import resolve_checkpoint

    gaps = _runtime(need_jax=True)
    try:
        resolve_checkpoint("percepiano-ast")
    except Unavailable:
        gaps.append(Gap("no piano-model checkpoint (no trained weights are public)",
                        "muse analyze --checkpoint YOUR.msgpack (see docs/piano-model.md)"))
    return gaps


def fluidsynth() -> list[Gap]:
    from muse_cli.music.render import fluidsynth_available

    if fluidsynth_available():
        return []
    if _missing("fluidsynth"):
        return [Gap("pyfluidsynth is not installed", "pip install 'muse-cli[fluidsynth]' (and apt install libfluidsynth3)")]
    return [Gap("the FluidSynth library is missing", "apt install libfluidsynth3 (brew install fluid-synth)")]


SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/soundfonts", "~/.local/share/soundfonts")


def soundfonts() -> list[str]:
    """SoundFonts in the usual system folders (muse uses one only when --soundfont names it)."""
    found = []
    for folder in SOUNDFONT_DIRS:
        path = Path(folder).expanduser()
        if path.is_dir():
            found += sorted(str(p) for p in path.iterdir() if p.suffix.lower() in (".sf2", ".sf3"))
    return found


def serve() -> list[Gap]:
    missing = [m for m in ("fastapi", "uvicorn") if _missing(m)]
    return [Gap(f"{', '.join(missing)} not installed", "pip install 'muse-cli[serve]'")] if missing else []


def fix(gaps: list[Gap]) -> str:
    """The one command line that closes every gap, in order, without repeats."""
    steps: list[str] = []
    for gap in gaps:
        if gap.fix not in steps:
            steps.append(gap.fix)
    return " && ".join(steps)


def require(label: str, gaps: list[Gap], *, modal_route: bool = True) -> None:
    """Raise one Unavailable listing every gap, or return when there is none."""
    if not gaps:
        return
    hint = fix(gaps)
    if modal_route:
        hint = f"{hint}; {MODAL_ROUTE}"
    raise Unavailable(f"{label} cannot run here: " + "; ".join(g.what for g in gaps), hint=hint)

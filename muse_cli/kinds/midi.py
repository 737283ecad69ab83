"""A MIDI job: MIDI-LLM from a prompt, or the etude composer from structured options.

engine=auto uses MIDI-LLM where a backend can run it, else the etude composer, with a notice;
engine=midi-llm never falls back. The etude composer always runs in-process: it needs no GPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, Field

from muse_cli.contracts import MidiMetadata, MidiRequest, MidiResult, RenderRequest
from muse_cli.errors import InputError, Unavailable
from muse_cli.kinds.base import Deliver, Kind, Outcome, Saved, b64
from muse_cli.output import Target, sidecar, slugify, write_group
from muse_cli.progress import ProgressFn, null_progress

if TYPE_CHECKING:
    from muse_cli.backends import Backend


class MidiReply(BaseModel):
    """`POST /v1/midi` (and the MIDI-LLM service's `/generate`): the earlier service's fields."""

    success: bool = True
    midiData: str = Field(description="the MIDI file, base64")
    metadata: MidiMetadata
    model: str
    engine: str
    seed: int
    backend: str
    notices: list[str] = []


def midi_llm_cached(model: str) -> bool:
    """Can MIDI-LLM run in-process right now: runtime installed and weights on disk?"""
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        return False
    if Path(model).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(model, "config.json"), str)


class MidiKind(Kind[MidiRequest, MidiResult]):
    name = "midi"
    request_type = MidiRequest
    renders = True

    def check(self, request: MidiRequest) -> None:
        """MIDI-LLM needs something to go on; the etude composer has defaults for everything."""
        if request.engine != "etude":
            from muse_cli.engines.midi_llm import check_request

            check_request(request)

    def family(self, request: MidiRequest, backend: Backend) -> tuple[str, str | None]:
        """Which family runs the request, as far as can be known before calling: (family, notice)."""
        if request.engine == "auto" and backend.name == "local" and not midi_llm_cached(request.model):
            return "etude", "MIDI-LLM is not available locally (muse models pull midi-llm); using the built-in etude composer"
        if request.engine == "auto" and not self._gives_midi_llm_anything(request):
            return "etude", "no prompt or musical option for MIDI-LLM; the built-in etude composer composes"
        self.check(request)
        if request.engine == "midi-llm" and backend.name == "local":
            from muse_cli.ops import readiness

            readiness.require("MIDI-LLM", readiness.midi_llm(request.model))
        return ("etude" if request.engine == "etude" else "midi-llm"), None

    def _gives_midi_llm_anything(self, request: MidiRequest) -> bool:
        try:
            self.check(request)
        except InputError:
            return False
        return True

    def run(self, request: MidiRequest, backend: Backend, progress: ProgressFn = null_progress) -> Outcome[MidiResult]:
        """A Modal that cannot serve MIDI-LLM (unreachable, not deployed: `Unavailable`) falls back to
        the composer under engine=auto; any other failure of MIDI-LLM is reported, never papered over."""
        from muse_cli.backends.local import shared

        family, notice = self.family(request, backend)
        local = backend if backend.name == "local" else shared()
        if family == "etude":
            return Outcome(local.run("etude", request, progress=progress), "local", [notice] if notice else [])
        try:
            return Outcome(backend.run("midi-llm", request, model=request.model, progress=progress), backend.name)
        except Unavailable as exc:  # not deployed, unreachable, ...; a model that fails for real still fails
            if request.engine == "midi-llm":
                raise
            notice = f"MIDI-LLM unavailable ({exc.message}); using the built-in etude composer"
            return Outcome(local.run("etude", request, progress=progress), "local", [notice])

    def stem(self, request: MidiRequest, outcome: Outcome[MidiResult]) -> str:
        """Name from the prompt, else engine + key + difficulty: 'etude-g-major-beginner'.

        The key is named when the request fixed it or every sample shares it: `-n 3` without
        `--key` gives three keys, and one name must not claim the first sample's for all.
        """
        if request.prompt:
            return slugify(request.prompt)
        result = outcome.result
        keys = {sample.metadata.key for sample in result.samples}
        key = request.key or (keys.pop() if len(keys) == 1 else None)
        parts = [result.engine, key or "", request.difficulty or ("beginner" if result.engine == "etude" else "")]
        return slugify(" ".join(p for p in parts if p))

    def save(
        self,
        request: MidiRequest,
        outcome: Outcome[MidiResult],
        target: Target,
        command: str,
        *,
        render: RenderRequest | None = None,
        timings: dict[str, float] | None = None,
        on_saved: Callable[[Saved], None] | None = None,
    ) -> list[Saved]:
        """Each sample as .mid (+ rendered audio) with its sidecar; render notices join the outcome's.

        `on_saved(item)` is called as each sample lands, so a caller can report it before the next
        (rendering) starts: an interrupted run has listed everything it finished.
        """
        result = outcome.result
        saved: list[Saved] = []
        count = len(result.samples)
        asked = request
        if result.engine == "etude" and (request.engine, request.model) != ("etude", result.model):
            # The request as it ran: the composer and its own model id, not MIDI-LLM's default id.
            request = request.model_copy(update={"engine": "etude", "model": result.model})
        for index, sample in enumerate(result.samples):
            files = {".mid": sample.midi}
            times = dict(result.timings, **(timings or {}))
            if render is not None:
                from muse_cli.music.render import render_to_bytes

                start = time.perf_counter()
                audio, out = render_to_bytes(sample.midi, render)
                times["render_s"] = time.perf_counter() - start
                files[f".{render.format}"] = audio
                if out.notice and out.notice not in outcome.notices:
                    outcome.notices.append(out.notice)
            meta = sample.metadata.model_dump()
            record = sidecar(
                command=command, engine=result.engine, model=result.model, backend=outcome.backend, request=request,
                seed=sample.seed, timings=times, metadata=meta, device=result.device, precision=result.precision,
            )
            if render is not None:
                record["render"] = render.model_dump()
            if asked.engine != "etude" and request is not asked:
                record["requested"] = {"engine": asked.engine, "model": asked.model}  # what was asked, kept
            paths = write_group(target.numbered(index, count), files, record)
            saved.append(Saved(paths, {"engine": result.engine, "seed": sample.seed, "metadata": meta}))
            if on_saved is not None:
                on_saved(saved[-1])
        return saved

    def reply(self, outcome: Outcome[MidiResult], deliver: Deliver) -> dict[str, Any]:
        result = outcome.result
        sample = result.samples[0]
        return {"success": True, "midiData": b64(sample.midi), "metadata": sample.metadata,
                "model": result.model, "engine": result.engine, "seed": sample.seed, "backend": outcome.backend,
                "notices": outcome.notices}


KIND = MidiKind()

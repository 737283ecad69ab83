"""Jobs: run one validated request on a backend and save what it returns.

Shared by the CLI commands, `muse batch` and the HTTP API, so a job behaves the same from all
three. Nothing here prints: notices are returned for the caller to show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from muse_cli.errors import InputError, Unavailable
from muse_cli.output import Target, sidecar, slugify, write_group
from muse_cli.progress import ProgressFn, null_progress


def build(contract: type[BaseModel], /, **fields: Any) -> Any:
    """Validate fields into a contract; the first problem becomes a one-line InputError (exit 2).

    Options the user did not give (None) are left out so the contract's defaults apply.
    """
    try:
        return contract.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc)) from None


POSITIONAL = {"prompt": "PROMPT", "description": "DESCRIPTION"}  # fields the commands take as arguments


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    name = (POSITIONAL.get(loc[0]) or f"--{loc[0].replace('_', '-')}") if loc else "input"
    message = first.get("msg", "invalid value")
    message = message.removeprefix("Value error, ")
    value = first.get("input")
    hidden = isinstance(value, (dict, bytes)) or value is None or not loc or repr(value) in message
    shown = "" if hidden else f" (got {value!r})"
    return f"{name}: {message}{shown}" if loc else message


@dataclass
class Saved:
    """One saved result: its files (sidecar last, where it has one) and the JSON-able summary."""

    paths: list[Path]
    summary: dict[str, Any] = field(default_factory=dict)
    has_sidecar: bool = True

    @property
    def outputs(self) -> list[Path]:
        """The files the user asked for (what stdout lists)."""
        return self.paths[:-1] if self.has_sidecar else list(self.paths)

    @property
    def sidecar(self) -> Path | None:
        return self.paths[-1] if self.has_sidecar else None


# ------------------------------------------------------------------------------------ MIDI

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


def check_midi_request(request: Any) -> None:
    """MIDI-LLM needs something to go on; the etude composer has defaults for everything."""
    if request.engine != "etude":
        from muse_cli.engines.midi_llm import check_request

        check_request(request)


def midi_family(request: Any, backend: Any) -> tuple[str, str | None]:
    """Which family runs a MidiRequest, as far as can be known before calling: (family, notice).

    engine=auto uses MIDI-LLM where a backend can run it, else the etude composer, with a notice.
    engine=midi-llm never falls back.
    """
    if request.engine == "auto" and backend.name == "local" and not midi_llm_cached(request.model):
        return "etude", "MIDI-LLM is not available locally (muse models pull midi-llm); using the built-in etude composer"
    if request.engine == "auto" and not _gives_midi_llm_anything(request):
        return "etude", "no prompt or musical option for MIDI-LLM; the built-in etude composer composes"
    check_midi_request(request)
    if request.engine == "midi-llm" and backend.name == "local":
        from muse_cli import readiness

        readiness.require("MIDI-LLM", readiness.midi_llm(request.model))
    return ("etude" if request.engine == "etude" else "midi-llm"), None


def _gives_midi_llm_anything(request: Any) -> bool:
    try:
        check_midi_request(request)
    except InputError:
        return False
    return True


def run_midi(request: Any, backend: Any, progress: ProgressFn = null_progress) -> tuple[Any, str, str | None]:
    """Run a MidiRequest. Returns (result, backend name actually used, notice or None).

    The etude composer always runs in-process: it needs no GPU. With engine=auto on Modal, a
    Modal that cannot serve MIDI-LLM (unreachable, not deployed: `Unavailable`) falls back to it
    too; any other failure of MIDI-LLM is reported, never papered over.
    """
    family, notice = midi_family(request, backend)
    local = backend if backend.name == "local" else _shared_local()
    if family == "etude":
        return local.run("etude", request, progress=progress), "local", notice
    try:
        return backend.run("midi-llm", request, model=request.model, progress=progress), backend.name, None
    except Unavailable as exc:  # not deployed, unreachable, ...; a model that fails for real still fails
        if request.engine == "midi-llm":
            raise
        notice = f"MIDI-LLM unavailable ({exc.message}); using the built-in etude composer"
        return local.run("etude", request, progress=progress), "local", notice


_local_singleton: Any = None


def _shared_local() -> Any:
    global _local_singleton
    if _local_singleton is None:
        from muse_cli.backends.local import LocalBackend

        _local_singleton = LocalBackend()
    return _local_singleton


def midi_stem(request: Any, result: Any) -> str:
    """Name from the prompt, else engine + key + difficulty: 'etude-g-major-beginner'.

    The key is named when the request fixed it or every sample shares it: `-n 3` without
    `--key` gives three keys, and one name must not claim the first sample's for all.
    """
    if request.prompt:
        return slugify(request.prompt)
    keys = {sample.metadata.key for sample in result.samples}
    key = request.key or (keys.pop() if len(keys) == 1 else None)
    parts = [result.engine, key or "", request.difficulty or ("beginner" if result.engine == "etude" else "")]
    return slugify(" ".join(p for p in parts if p))


def save_midi(
    request: Any,
    result: Any,
    target: Target,
    *,
    backend: str,
    command: str,
    render: Any | None = None,
    timings: dict[str, float] | None = None,
    on_saved: Any = None,
) -> tuple[list[Saved], list[str]]:
    """Write each sample as .mid (+ rendered audio) with its sidecar. Returns (saved, notices).

    `on_saved(item)` is called as each sample lands, so a caller can report it before the next
    (rendering) starts: an interrupted run has listed everything it finished.
    """
    saved: list[Saved] = []
    notices: list[str] = []
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
            if out.notice and out.notice not in notices:
                notices.append(out.notice)
        meta = sample.metadata.model_dump()
        record = sidecar(
            command=command,
            engine=result.engine,
            model=result.model,
            backend=backend,
            request=request,
            seed=sample.seed,
            timings=times,
            metadata=meta,
            device=result.device,
        )
        if render is not None:
            record["render"] = render.model_dump()
        if asked.engine != "etude" and request is not asked:
            record["requested"] = {"engine": asked.engine, "model": asked.model}  # what was asked, kept
        paths = write_group(target.numbered(index, count), files, record)
        saved.append(Saved(paths, {"engine": result.engine, "seed": sample.seed, "metadata": meta}))
        if on_saved is not None:
            on_saved(saved[-1])
    return saved, notices


# ----------------------------------------------------------------------------------- audio


def audio_input(path: Path | None, option: str) -> dict[str, Any] | None:
    """Read a user's audio file for a request (as AudioInput fields), failing fast and clearly."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{option} {str(path)!r}: no such file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{option} {str(path)!r}: cannot read ({exc.strerror})") from None
    return {"name": path.name, "data": data}


def check_audio_request(request: Any) -> None:
    """Model name, melody model, readable and non-silent audio: checked before any backend is touched."""
    from muse_cli.engines.musicgen import validate_request

    validate_request(request)


def audio_family(request: Any) -> str:
    """MultiBandDiffusion decoding runs in its own deployed class (audiocraft's image)."""
    return "musicgen-mbd" if request.decoder == "mbd" else "musicgen"


def save_audio(request: Any, result: Any, target: Target, *, backend: str, command: str) -> list[Saved]:
    saved = []
    for index, clip in enumerate(result.clips):
        meta = {"duration": clip.duration, "sample_rate": clip.sample_rate, "channels": clip.channels, "format": clip.format}
        record = sidecar(
            command=command, engine=result.engine, model=result.model, backend=backend, request=request,
            seed=clip.seed, timings=result.timings, metadata={**meta, "decoder": result.decoder}, device=result.device,
        )
        paths = write_group(target.numbered(index, len(result.clips)), {f".{clip.format}": clip.audio}, record)
        saved.append(Saved(paths, {"engine": result.engine, "model": result.model, "seed": clip.seed, **meta}))
    return saved


# ------------------------------------------------------------------------------------ songs


def run_song(request: Any, backend: Any, progress: ProgressFn = null_progress) -> Any:
    """A song through every stage (LLM, ACE-Step, cover, categories) on one backend."""
    from muse_cli.song import make_song

    return make_song(request, backend.run, progress)


def save_song(request: Any, result: Any, target: Target, *, backend: str, command: str) -> Saved:
    """<stem>.<format>, <stem>.png (when there is a cover), <stem>.lyrics.txt and the sidecar."""
    files = {f".{result.format}": result.audio}
    if result.cover is not None:
        files[".png"] = result.cover
    files[".lyrics.txt"] = (result.lyrics.rstrip() + "\n").encode()
    meta = {
        "duration": result.duration, "sample_rate": result.sample_rate, "channels": result.channels,
        "format": result.format, "tags": result.tags, "lyrics": result.lyrics, "categories": result.categories,
        "tags_source": result.tags_source, "lyrics_source": result.lyrics_source, "seeds": result.seeds,
        "models": result.models, "warnings": result.warnings,
    }
    record = sidecar(
        command=command, engine=result.engine, model=result.model, backend=backend, request=request,
        seed=result.seed, timings=result.timings, metadata=meta, device=result.device,
    )
    paths = write_group(target, files, record)
    summary = {"engine": result.engine, "seed": result.seed, "duration": result.duration, "tags": result.tags,
               "categories": result.categories, "warnings": result.warnings}
    return Saved(paths, summary)


def song_stem(request: Any) -> str:
    return slugify(request.description or request.tags or "song")


# --------------------------------------------------------------------------------- analysis


def perceptual_runner(request: Any, backend: Any) -> tuple[Any, str | None]:
    """The 19-D perceptual model as a callable for analysis, or (None, why it is absent).

    A checkpoint that is a local file runs in-process (JAX); a checkpoint name runs on the
    backend (on Modal: a file uploaded with `muse models upload piano`). Without --checkpoint,
    the local default checkpoint is used when one is installed; random weights never score.
    """
    from muse_cli.engines.piano import NO_CHECKPOINT_HINT, make_request, resolve_checkpoint

    checkpoint = request.checkpoint
    runner = backend
    if checkpoint is None:
        if backend.name != "local":
            return None, f"no perceptual scores: no --checkpoint given ({NO_CHECKPOINT_HINT})"
        try:
            checkpoint = str(resolve_checkpoint("percepiano-ast"))
        except Unavailable:
            return None, f"no perceptual scores: no checkpoint installed ({NO_CHECKPOINT_HINT})"
    if Path(checkpoint).expanduser().is_file() and backend.name != "local":
        runner = _shared_local()
    options = {"trust": True} if request.trust_checkpoint else None

    def score(audio: Any, sr: int) -> Any:
        return runner.run("piano", make_request(audio, sr), model=checkpoint, options=options)

    return score, None


def run_analysis(request: Any, backend: Any, progress: ProgressFn = null_progress, *, source: Any = None) -> Outcome:
    """Analyse request.input (or `source`, a path) with measured descriptors, notes and scores."""
    from muse_cli.analysis import analyze_source

    source = source if source is not None else request.input
    if source is None:
        raise InputError("analyze needs an input file")
    score, absent = perceptual_runner(request, backend)
    analysis = analyze_source(source, request, score, progress=progress)
    notices = [absent] if absent else []
    return Outcome(analysis, backend.name if score is not None else "local", notices)


def save_analysis(request: Any, outcome: Outcome, target: Target, *, command: str) -> Saved:
    """<stem>.analysis.json, plus .transcription.mid, .analysis.png (plot) and .score.png (the
    practice plot, with a score) when asked.

    Every name has its own suffix, so none can be the analysed file's sibling of another kind:
    with --force, take.analysis.json replaces an earlier report, never the composed take.mid,
    its take.json sidecar or a song's take.png cover.
    """
    import json

    analysis = outcome.result
    report = analysis.report.model_dump(mode="json")
    provenance = sidecar(
        command=command, engine="analysis", model=(report.get("perceptual") or {}).get("model", "descriptors"),
        backend=outcome.backend, request=request, seed=None, timings={}, metadata={},
    )
    files = {".analysis.json": (json.dumps({**report, "muse": provenance}, indent=2) + "\n").encode()}
    if analysis.midi is not None:
        files[".transcription.mid"] = analysis.midi
    if analysis.png is not None:
        files[".analysis.png"] = analysis.png
    if getattr(analysis, "score_png", None) is not None:
        files[".score.png"] = analysis.score_png
    paths = write_group(target, files)
    return Saved(paths, {"report": report}, has_sidecar=False)  # the report carries its provenance


# ------------------------------------------------------------------------------- job kinds


@dataclass
class Outcome:
    """What running a job produced: the result contract, where it ran, notices for the user."""

    result: Any
    backend: str
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobKind:
    """One kind of job (`"kind"` in a batch line, one endpoint of the HTTP API)."""

    name: str
    request: str  # contract class name in muse_cli.contracts
    run: Any  # (request, backend, progress) -> Outcome
    save: Any  # (request, outcome, target, command[, render]) -> list[Saved]
    stem: Any  # (request, outcome) -> str: the file stem when the caller does not choose one
    check: Any = None  # (request) -> None, raising InputError: checks beyond the contract, run before any job
    renders: bool = False  # its save takes render= (a RenderRequest): MIDI also rendered to audio

    def request_type(self) -> Any:
        from muse_cli import contracts

        return getattr(contracts, self.request)


def _run_midi_job(request: Any, backend: Any, progress: ProgressFn) -> Outcome:
    result, used, notice = run_midi(request, backend, progress)
    return Outcome(result, used, [notice] if notice else [])


def _save_midi_job(request: Any, outcome: Outcome, target: Target, command: str, render: Any = None) -> list[Saved]:
    saved, notices = save_midi(request, outcome.result, target, backend=outcome.backend, command=command, render=render)
    outcome.notices.extend(notices)
    return saved


def _run_audio_job(request: Any, backend: Any, progress: ProgressFn) -> Outcome:
    return Outcome(backend.run(audio_family(request), request, model=request.model, progress=progress), backend.name)


def _save_audio_job(request: Any, outcome: Outcome, target: Target, command: str) -> list[Saved]:
    return save_audio(request, outcome.result, target, backend=outcome.backend, command=command)


def _run_song_job(request: Any, backend: Any, progress: ProgressFn) -> Outcome:
    result = run_song(request, backend, progress)
    return Outcome(result, backend.name, list(result.warnings))


def _save_song_job(request: Any, outcome: Outcome, target: Target, command: str) -> list[Saved]:
    return [save_song(request, outcome.result, target, backend=outcome.backend, command=command)]


def _save_analysis_job(request: Any, outcome: Outcome, target: Target, command: str) -> list[Saved]:
    return [save_analysis(request, outcome, target, command=command)]


def _analysis_stem(request: Any) -> str:
    name = request.input.name if request.input is not None else "analysis"
    return slugify(Path(name).stem)


KINDS: dict[str, JobKind] = {
    "midi": JobKind(
        "midi", "MidiRequest", _run_midi_job, _save_midi_job, lambda r, o: midi_stem(r, o.result), check_midi_request,
        renders=True,
    ),
    "audio": JobKind("audio", "AudioRequest", _run_audio_job, _save_audio_job, lambda r, o: slugify(r.prompt or "musicgen"), check_audio_request),
    "song": JobKind("song", "SongRequest", _run_song_job, _save_song_job, lambda r, o: song_stem(r)),
    "analyze": JobKind("analyze", "AnalyzeRequest", run_analysis, _save_analysis_job, lambda r, o: _analysis_stem(r)),
}

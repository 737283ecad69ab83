"""An analysis job (`kind: "analyze"`): a piano performance report from audio or MIDI.

Measured descriptors, note transcription, the 19-D perceptual model when a checkpoint is there,
and with a score the practice section. The report itself is built in muse_cli/pipelines/analysis.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import ConfigDict, Field

from muse_cli.contracts import AnalysisReport, AnalyzeRequest, RenderRequest
from muse_cli.errors import InputError, Unavailable
from muse_cli.kinds.base import Deliver, Kind, Outcome, Saved, b64
from muse_cli.output import Target, sidecar, slugify, write_group
from muse_cli.progress import ProgressFn, null_progress

if TYPE_CHECKING:
    import numpy as np

    from muse_cli.backends import Backend
    from muse_cli.contracts import PianoResult
    from muse_cli.pipelines.analysis import Analysis

PerceptualFn = Callable[["np.ndarray", int], "PianoResult"]


class AnalyzeReply(AnalysisReport):
    """`POST /v1/analyze`: the `muse analyze` report, with the files it made as base64."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    midi_base64: str | None = Field(None, description="the transcription as MIDI, when midi=true")
    plot_base64: str | None = Field(None, description="PNG plot, when plot=true")
    score_plot_base64: str | None = Field(None, description="PNG practice plot, when a score is sent and plot=true")


def perceptual_runner(request: AnalyzeRequest, backend: Backend) -> tuple[PerceptualFn | None, str | None]:
    """The 19-D perceptual model as a callable for analysis, or (None, why it is absent).

    A checkpoint that is a local file runs in-process (JAX); a checkpoint name runs on the
    backend (on Modal: a file uploaded with `muse models upload piano`). Without --checkpoint,
    the local default checkpoint is used when one is installed; random weights never score.
    """
    from muse_cli.backends.local import shared
    from muse_cli.engines.piano import NO_CHECKPOINT_HINT, make_request, resolve_checkpoint

    checkpoint = request.checkpoint
    runner: Backend = backend
    if checkpoint is None:
        if backend.name != "local":
            return None, f"no perceptual scores: no --checkpoint given ({NO_CHECKPOINT_HINT})"
        try:
            checkpoint = str(resolve_checkpoint("percepiano-ast"))
        except Unavailable:
            return None, f"no perceptual scores: no checkpoint installed ({NO_CHECKPOINT_HINT})"
    if Path(checkpoint).expanduser().is_file() and backend.name != "local":
        runner = shared()
    options = {"trust": True} if request.trust_checkpoint else None

    def score(audio: np.ndarray, sr: int) -> PianoResult:
        return runner.run("piano", make_request(audio, sr), model=checkpoint, options=options)

    return score, None


class AnalysisKind(Kind[AnalyzeRequest, "Analysis"]):
    name = "analyze"
    request_type = AnalyzeRequest

    def run(
        self, request: AnalyzeRequest, backend: Backend, progress: ProgressFn = null_progress,
        *, source: Path | None = None,
    ) -> Outcome[Analysis]:
        """Analyse request.input (or `source`, a path) with measured descriptors, notes and scores."""
        from muse_cli.pipelines.analysis import analyze_source

        given = source if source is not None else request.input
        if given is None:
            raise InputError("analyze needs an input file")
        score, absent = perceptual_runner(request, backend)
        analysis = analyze_source(given, request, score, progress=progress)
        return Outcome(analysis, backend.name if score is not None else "local", [absent] if absent else [])

    def stem(self, request: AnalyzeRequest, outcome: Outcome[Analysis] | None = None) -> str:
        name = request.input.name if request.input is not None else "analysis"
        return slugify(Path(name).stem)

    def save(
        self, request: AnalyzeRequest, outcome: Outcome[Analysis], target: Target, command: str,
        *, render: RenderRequest | None = None,
    ) -> list[Saved]:
        """<stem>.analysis.json, plus .transcription.mid, .analysis.png (plot) and .score.png (the
        practice plot, with a score) when asked.

        Every name has its own suffix, so none can be the analysed file's sibling of another kind:
        with --force, take.analysis.json replaces an earlier report, never the composed take.mid,
        its take.json sidecar or a song's take.png cover.
        """
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
        if analysis.score_png is not None:
            files[".score.png"] = analysis.score_png
        paths = write_group(target, files)
        return [Saved(paths, {"report": report}, has_sidecar=False)]  # the report carries its provenance

    def reply(self, outcome: Outcome[Analysis], deliver: Deliver) -> dict[str, Any]:
        analysis = outcome.result
        reply = analysis.report.model_dump(mode="json")
        for key, data in (("midi_base64", analysis.midi), ("plot_base64", analysis.png),
                          ("score_plot_base64", analysis.score_png)):
            reply[key] = b64(data) if data else None
        return reply


KIND = AnalysisKind()

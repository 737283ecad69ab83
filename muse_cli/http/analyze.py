"""Performance analysis: `/v1/analyze`, a multipart upload answered with the `muse analyze` report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from muse_cli.contracts import AnalyzeRequest
from muse_cli.http.deps import AUTH, FAILURES, AppSettings, deliverer, run_job
from muse_cli.http.gate import invalid
from muse_cli.kinds.analysis import KIND, AnalyzeReply

router = APIRouter()


defaults = AnalyzeRequest.model_fields


@router.post("/v1/analyze", tags=["analysis"], dependencies=AUTH, response_model=AnalyzeReply,
             response_model_exclude_none=False, responses=FAILURES)
def analyze_v1(
    settings: AppSettings,
    file: Annotated[UploadFile, File(description="a WAV/FLAC/OGG/MP3 recording or a MIDI performance")],
    score: Annotated[UploadFile | None, File(description=defaults["score"].description)] = None,
    transcribe: Annotated[bool | None, Form(description=defaults["transcribe"].description)] = None,
    notes: Annotated[bool, Form(description=defaults["notes"].description)] = False,
    midi: Annotated[bool, Form(description=defaults["midi"].description)] = False,
    plot: Annotated[bool, Form(description=defaults["plot"].description)] = False,
    max_duration: Annotated[float, Form(gt=0, le=4 * 3600, allow_inf_nan=False,
                                        description=defaults["max_duration"].description)] = 1800.0,
) -> dict[str, Any]:
    """Analyse an uploaded performance: the `muse analyze` JSON report."""
    from muse_cli.pipelines.analysis import client_duration_problem

    if problem := client_duration_problem(max_duration):
        raise invalid([{"field": "max_duration", "message": problem}])
    data = file.file.read()
    if not data:
        raise invalid([{"field": "file", "message": "the uploaded file is empty"}])
    name = Path(file.filename or "upload").name or "upload"
    fields: dict[str, Any] = {"transcribe": transcribe, "notes": notes, "midi": midi, "plot": plot,
                              "max_duration": max_duration, "input": {"name": name, "data": data}}
    if score is not None:
        score_data = score.file.read()
        if not score_data:
            raise invalid([{"field": "score", "message": "the uploaded score is empty"}])
        fields["score"] = {"name": Path(score.filename or "score").name or "score", "data": score_data}
    _, outcome = run_job("analyze", {k: v for k, v in fields.items() if v is not None}, settings.backend)
    return KIND.reply(outcome, deliverer(settings, "inline"))

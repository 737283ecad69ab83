"""MIDI: `/v1/midi`, and `/generate`, the earlier MIDI-LLM service's route and contract."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from muse_cli.contracts import MidiRequest
from muse_cli.http.deps import AUTH, FAILURES, AppSettings, deliverer, run_job, subset
from muse_cli.http.settings import Settings
from muse_cli.kinds.midi import KIND, MidiReply

router = APIRouter()

MidiBody = subset(
    "MidiBody", MidiRequest,
    ("prompt", "engine", "difficulty", "key", "tempo", "time_signature", "bars", "instrument", "hands",
     "style", "seed", "temperature", "top_p", "max_tokens"),
    doc="One MIDI piece: MIDI-LLM from a prompt, or the etude composer from structured fields.",
)
MidiCompatBody = subset(
    "MidiCompatBody", MidiRequest, ("prompt", "temperature", "instrument", "difficulty", "key", "tempo", "seed"),
    extra="ignore", doc="The earlier MIDI-LLM service's request; unknown fields are ignored.",
)


def midi(body: BaseModel, settings: Settings) -> dict[str, Any]:
    _, outcome = run_job("midi", {**body.model_dump(exclude_unset=True), "count": 1}, settings.backend)
    return KIND.reply(outcome, deliverer(settings, "inline"))


@router.post("/v1/midi", tags=["midi"], dependencies=AUTH, response_model=MidiReply, responses=FAILURES)
def midi_v1(body: MidiBody, settings: AppSettings) -> dict[str, Any]:  # type: ignore[valid-type]
    """Compose one MIDI piece (MIDI-LLM where deployed, else the etude composer)."""
    return midi(body, settings)


@router.post("/generate", tags=["compatibility"], dependencies=AUTH, response_model=MidiReply, responses=FAILURES)
def midi_compat(body: MidiCompatBody, settings: AppSettings) -> dict[str, Any]:  # type: ignore[valid-type]
    """The earlier MIDI-LLM service's route and contract."""
    return midi(body, settings)

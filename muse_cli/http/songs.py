"""ACE-Step songs: `/v1/songs` (seed 004's routes to the same job are in seed.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from muse_cli.contracts import SongRequest
from muse_cli.http.deps import AUTH, FAILURES, AppSettings, Delivery, deliverer, run_job, subset
from muse_cli.kinds.song import KIND, SongReply

router = APIRouter()

SongBody = subset(
    "SongBody", SongRequest,
    ("description", "lyrics", "describe_lyrics", "tags", "instrumental", "duration", "steps", "guidance",
     "scheduler", "cfg_type", "omega", "seed", "format", "cover", "categories"),
    doc="An ACE-Step song: from a description, with the user's lyrics, or with lyrics the LLM "
    "writes about `describe_lyrics`; `instrumental` for none.",
)


@router.post("/v1/songs", tags=["songs"], dependencies=AUTH, response_model=SongReply, responses=FAILURES)
def songs_v1(body: SongBody, settings: AppSettings, delivery: Delivery = "auto") -> dict[str, Any]:  # type: ignore[valid-type]
    """Make a song with ACE-Step: audio, cover art and genre categories."""
    if delivery != "inline":
        settings.store.ready()  # a store that cannot take the result fails before any GPU time
    _, outcome = run_job("song", body.model_dump(exclude_unset=True), settings.backend)
    return KIND.reply(outcome, deliverer(settings, delivery))

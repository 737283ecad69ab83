"""Seed 004's routes: three ways to make a song, each stored as files named by key, and /auth-status.

The bodies use the seed's field names, mapped onto the song contract (SEED_NAMES) so its ranges
and defaults hold here too; error messages name the seed's fields back.
"""

# No `from __future__ import annotations`: each route's body type is a local variable of
# seed_route, which FastAPI must read from the signature at run time.
import re
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from muse_cli.contracts import SongRequest, SongResult, Text
from muse_cli.http.deps import AUTH, FAILURES, AppSettings, contract_field, run_job, subset
from muse_cli.http.gate import ApiError
from muse_cli.http.settings import Settings

router = APIRouter()

# seed 004's name -> the song contract's; the contract's ranges and defaults come along.
SEED_NAMES = {"full_described_song": "description", "prompt": "tags", "lyrics": "lyrics",
              "described_lyrics": "describe_lyrics", "audio_duration": "duration", "seed": "seed",
              "guidance_scale": "guidance", "infer_step": "steps", "instrumental": "instrumental"}
CONTRACT_WORDS = {v: k for k, v in SEED_NAMES.items() if k != v}
OPTIONAL = ("audio_duration", "seed", "guidance_scale", "infer_step", "instrumental")


def seed_body(name: str, required: dict[str, Any], doc: str) -> type[BaseModel]:
    """A seed body: its `required` fields (described as the contract describes them), then OPTIONAL."""
    song = SongRequest.model_fields
    defs: dict[str, tuple[Any, Any]] = {
        seed_name: (annotation, Field(description=song[SEED_NAMES[seed_name]].description))
        for seed_name, annotation in required.items()
    }
    defs.update({seed_name: contract_field(SongRequest, SEED_NAMES[seed_name]) for seed_name in OPTIONAL})
    # Unknown fields are ignored, as the seed's own server did (and the other compat routes do).
    return subset(name, SongRequest, (), extra="ignore", overrides=defs, doc=doc)


DescriptionBody = seed_body("GenerateFromDescription", {"full_described_song": Text},
                            "Seed 004: the LLM writes the tags and the lyrics from one description.")
LyricsBody = seed_body("GenerateWithLyrics", {"prompt": Text, "lyrics": str},
                       "Seed 004: the user's tags (`prompt`) and lyrics.")
DescribedLyricsBody = seed_body("GenerateWithDescribedLyrics", {"prompt": Text, "described_lyrics": Text},
                                "Seed 004: the user's tags; the LLM writes lyrics about `described_lyrics`.")


class SeedReply(BaseModel):
    r2_key: str = Field(description="the song (WAV) in the configured store: the bucket's object key, "
                        "or a key for GET /v1/files/{key}")
    cover_image_r2_key: str | None = Field(description="the cover art (PNG); null if it failed")
    categories: list[str]


def seed_reply(song: SongResult, keys: list[str]) -> dict[str, Any]:
    """A stored song as SeedReply: `keys` are the song's and, when it has one, the cover's."""
    return {"r2_key": keys[0], "cover_image_r2_key": keys[1] if song.cover else None,
            "categories": song.categories}


def seed_words(err: ApiError) -> ApiError:
    """The same error naming the seed's fields (`audio_duration`) where it named the contract's."""
    def words(text: str) -> str:
        return re.sub(r"\b(" + "|".join(CONTRACT_WORDS) + r")\b", lambda m: CONTRACT_WORDS[m.group(1)], text)

    fields = [{"field": words(f["field"]), "message": words(f["message"])} for f in err.fields or []]
    return ApiError(err.status, err.kind, words(err.message), hint=err.hint, fields=fields or None,
                    headers=err.headers)


def seed_song(body: BaseModel, settings: Settings) -> dict[str, Any]:
    """One adapter for the three seed routes: rename to the song contract, run, store both files."""
    fields = {SEED_NAMES[k]: v for k, v in body.model_dump().items()}
    fields.update(format="wav", cover=True, categories=True)
    settings.store.ready()  # before any GPU time
    try:
        _, outcome = run_job("song", fields, settings.backend)
    except ApiError as err:  # name the seed's fields, not the contract's
        raise seed_words(err) from None
    song = outcome.result
    files = [(song.audio, song.format)] + ([(song.cover, "png")] if song.cover else [])
    return seed_reply(song, settings.store.put_group(files))


def seed_route(path: str, body_model: type[BaseModel]) -> None:
    def route(body: body_model, settings: AppSettings) -> dict[str, Any]:  # type: ignore[valid-type]
        return seed_song(body, settings)

    route.__doc__ = f"Seed 004's `{path}`: {body_model.__doc__}"
    router.post(path, tags=["compatibility"], dependencies=AUTH, response_model=SeedReply, responses=FAILURES,
                name=path.strip("/").replace("-", "_"))(route)


for _path, _model in {"/generate-from-description": DescriptionBody, "/generate-with-lyrics": LyricsBody,
                      "/generate-with-described-lyrics": DescribedLyricsBody}.items():
    seed_route(_path, _model)


@router.post("/auth-status", tags=["compatibility"], dependencies=AUTH, responses=FAILURES)
def auth_status() -> dict[str, Any]:
    """Seed 004's token check: 200 for a good token (401 otherwise, from the Gate)."""
    return {"authenticated": True, "status": "ok"}

"""`/v1/files/{key}`: results stored by an earlier call, from the folder or the S3 bucket."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, StreamingResponse

from muse_cli.http.deps import AUTH, FAILURES, AppSettings, Failure
from muse_cli.http.gate import ApiError
from muse_cli.http.store import MEDIA_TYPES, FileStore

router = APIRouter()


@router.get(
    "/v1/files/{key:path}", tags=["files"], dependencies=AUTH,
    responses={**FAILURES, 404: {"model": Failure},
               200: {"content": {m: {} for m in MEDIA_TYPES.values()}, "description": "the stored file"}},
)
def files_v1(key: str, settings: AppSettings) -> Any:  # not Response: that would change the OpenAPI 200 schema
    """A result stored by an earlier call (its `*_key` or `r2_key`): from the folder for a day, or
    streamed from the S3 bucket through this server (no redirect: a presigned URL would hand
    the client the access key id, and the bucket may not be reachable from the client)."""
    store = settings.store
    if not isinstance(store, FileStore):
        opened = store.open(key)
        if opened is None:
            raise ApiError(404, "not_found", "no such file")
        chunks, length, media = opened
        return StreamingResponse(chunks, media_type=media, headers={
            "content-length": str(length), "content-disposition": f'attachment; filename="{key.rsplit("/", 1)[-1]}"'})
    path = store.path(key)
    if path is None:
        raise ApiError(404, "not_found", "no such file (keys expire after a day)")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix[1:]], filename=key)

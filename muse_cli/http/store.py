"""Where the HTTP API keeps results fetched by key: random keys in one folder (`FileStore`), or in
an S3-compatible bucket (`S3Store`: Cloudflare R2, AWS S3, MinIO)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("muse.web")

FILE_TTL_S = 24 * 3600
KEY_RE = re.compile(r"[0-9a-f]{32}\.(wav|flac|mp3|png|mid)")
MEDIA_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "png": "image/png",
    "mid": "audio/midi",
}


class FileStore:
    """Results too large to inline, under random keys in one folder; nothing else is reachable.

    A key is 32 hex digits and a known suffix, matched whole before any path is built, so no
    request names a file outside `root`. Files older than `ttl_s` are swept as new ones arrive.
    `on_put` / `on_miss` let a shared volume commit after a write and reload before a miss.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        ttl_s: float = FILE_TTL_S,
        on_put: Callable[[], None] | None = None,
        on_miss: Callable[[], None] | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._on_put = on_put
        self._on_miss = on_miss
        self._swept = 0.0
        self._lock = threading.Lock()

    def put(self, data: bytes, suffix: str) -> str:
        from muse_cli.output import Target, write_group

        if suffix not in MEDIA_TYPES:
            raise ValueError(f"no stored files of type {suffix!r}")
        self.sweep()
        stem = secrets.token_hex(16)
        write_group(Target(self.root, stem), {f".{suffix}": data})
        if self._on_put is not None:
            self._on_put()
        return f"{stem}.{suffix}"

    def put_group(self, files: list[tuple[bytes, str]]) -> list[str]:
        """Store the files of one result: all of them or none (those written are removed by name)."""
        done: list[str] = []
        try:
            for data, suffix in files:
                done.append(self.put(data, suffix))
        except BaseException:
            for key in done:
                (self.root / key).unlink(missing_ok=True)
            raise
        return done

    def ready(self) -> None:
        """A folder needs no check before a job (the S3 store checks its bucket)."""

    def path(self, key: str) -> Path | None:
        if not KEY_RE.fullmatch(key):
            return None
        path = self.root / key
        if not path.is_file() and self._on_miss is not None:
            try:
                self._on_miss()
            except Exception:  # a failed reload is a miss, not a server error
                log.warning("storage reload failed", exc_info=True)
        if not path.is_file() or path.resolve().parent != self.root:
            return None
        return path

    def sweep(self, now: float | None = None) -> int:
        """Delete expired files (at most once a minute); returns how many went."""
        now = time.time() if now is None else now
        with self._lock:
            if now - self._swept < 60:
                return 0
            self._swept = now
        removed = 0
        for path in self.root.iterdir():
            try:
                if KEY_RE.fullmatch(path.name) and now - path.stat().st_mtime > self.ttl_s:
                    path.unlink()
                    removed += 1
            except OSError:  # another worker removed it first
                continue
        return removed


# ------------------------------------------------------------------------ S3-compatible storage

S3_KEY_RE = re.compile(r"(?:(?P<prefix>.+)/)?(?P<name>[0-9a-f]{32}\.(?:wav|flac|mp3|png|mid))")
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 3
MAX_ATTEMPTS = 2
"""With these, a store that is down or silent fails a call in about 7 s (2 x 3 s plus a backoff),
inside the 10 s promised; a store that refuses connections fails at once."""
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
READY_TTL_S = 60.0


class StorageError(Exception):
    """The object store cannot be used: one line naming the cause, never a credential."""


def parse_storage_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ('bucket', 'some/prefix'); ValueError with the rule otherwise."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: use s3://BUCKET or s3://BUCKET/PREFIX")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ValueError(f"{bucket!r} is not a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens")
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise ValueError(f"{url!r}: the prefix has an empty, '.' or '..' segment")
    return bucket, prefix


def safe_endpoint(endpoint: str | None) -> str:
    """An endpoint URL fit for a message: any user:password part removed."""
    from urllib.parse import urlsplit, urlunsplit

    if not endpoint:
        return "AWS S3"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class S3Store:
    """Results in an S3-compatible bucket (Cloudflare R2, AWS S3, MinIO) through boto3.

    Keys are `<prefix>/<32 random hex digits>.<suffix>`: unique and unguessable (128 bits), and
    only names of that form are ever read back, so a token holder cannot read other objects of
    the bucket. A file up to MULTIPART_THRESHOLD goes up in one PutObject, which S3 makes visible
    whole or not at all; larger ones go up in parts, and s3transfer aborts the multipart upload
    when a part fails (s3transfer/tasks.py, CreateMultipartUploadTask adds
    abort_multipart_upload as its failure cleanup), so no half object is ever visible. Files of
    one result are put as a group: if one fails, those already put are deleted by their exact keys.

    Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a
    profile); they appear in no message, and boto's own loggers are held at WARNING so a debug
    log never prints signed headers. boto3 is imported here, when the store is made, never at
    CLI start-up.
    """

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 multipart_threshold: int = MULTIPART_THRESHOLD, part_size: int = PART_SIZE) -> None:
        self.bucket, self.prefix = parse_storage_url(url)
        self.url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.endpoint_url = endpoint_url or None
        self.where = f"{self.url} at {safe_endpoint(self.endpoint_url)}"
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
        except ImportError as exc:
            raise StorageError(f"S3 storage needs {exc.name}: pip install 'muse-cli[serve]'") from None
        for name in ("boto3", "botocore", "s3transfer", "urllib3"):
            logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.WARNING))
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
            retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            s3={"addressing_style": "path" if self.endpoint_url else "auto"}, signature_version="s3v4",
        )
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, region_name=region,
                                                     config=config)
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold, multipart_chunksize=part_size,
                                       max_concurrency=4)
        self._ready_at = 0.0
        self._lock = threading.Lock()

    # -- keys

    def object_key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def name_of(self, key: str) -> str | None:
        """The stored name a client's key refers to (`name` or `<prefix>/name`), or None."""
        match = S3_KEY_RE.fullmatch(key)
        if match is None or (match["prefix"] or "") != self.prefix and match["prefix"] is not None:
            return None
        return match["name"]

    # -- failures, in one line

    def explain(self, exc: BaseException, doing: str) -> StorageError:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        if isinstance(exc, NoCredentialsError):
            why = "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        elif isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            why = "cannot connect to the endpoint"
        elif isinstance(exc, ReadTimeoutError):
            why = f"the endpoint did not answer within {READ_TIMEOUT_S} s"
        elif isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchBucket",) or (code == "404" and doing == "checking the bucket"):
                why = "the bucket does not exist"
            elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                          "AuthorizationHeaderMalformed", "InvalidClientTokenId"):
                why = f"the credentials were refused ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            elif code in ("AccessDenied", "403") or status == 403:
                why = ("access denied (403): the credentials were refused or may not use this bucket; "
                       "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            else:
                why = f"{code or status or 'error'} from the store"
        else:
            why = type(exc).__name__
        return StorageError(f"object storage {self.where} failed {doing}: {why}")

    # -- the store's interface

    def check(self) -> None:
        """HeadBucket: the bucket exists and the credentials may use it (StorageError if not)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self.explain(exc, "checking the bucket") from None
        self._ready_at = time.monotonic()

    def ready(self) -> None:
        """`check`, at most once a minute while it keeps passing: run before a job spends GPU time."""
        if time.monotonic() - self._ready_at > READY_TTL_S:
            self.check()

    def put(self, data: bytes, suffix: str) -> str:
        return self.put_group([(data, suffix)])[0]

    def put_group(self, files: list[tuple[bytes, str]]) -> list[str]:
        """Upload files whole; all of them or none (those already up are deleted by their keys)."""
        import io

        done: list[str] = []
        try:
            for data, suffix in files:
                if suffix not in MEDIA_TYPES:
                    raise ValueError(f"no stored files of type {suffix!r}")
                key = self.object_key(f"{secrets.token_hex(16)}.{suffix}")
                extra = {"ContentType": MEDIA_TYPES[suffix]}
                if len(data) <= self.transfer.multipart_threshold:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
                else:
                    self.client.upload_fileobj(io.BytesIO(data), self.bucket, key, ExtraArgs=extra,
                                               Config=self.transfer)
                done.append(key)
        except ValueError:
            self._remove(done)
            raise
        except Exception as exc:
            self._remove(done)
            raise self.explain(exc, "storing a result") from None
        return done

    def _remove(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except Exception:  # the store just failed; say so, keep the first cause
                log.warning("could not remove %s after a failed upload", key)

    def open(self, key: str) -> tuple[Any, int, str] | None:
        """(chunks, length, media type) of a stored result, or None when there is none."""
        name = self.name_of(key)
        if name is None:
            return None
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.object_key(name))
        except Exception as exc:
            from botocore.exceptions import ClientError

            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self.explain(exc, "reading a result") from None
        body = obj["Body"]
        return body.iter_chunks(1024 * 1024), int(obj["ContentLength"]), MEDIA_TYPES[name.rsplit(".", 1)[1]]


def storage_from_env(url: str | None = None, endpoint_url: str | None = None,
                     environ: Any = None) -> S3Store | None:
    """The S3 store MUSE_STORAGE / MUSE_S3_ENDPOINT_URL name (or the arguments), or None for a folder."""
    env = os.environ if environ is None else environ
    url = url or env.get("MUSE_STORAGE") or ""
    if not url:
        return None
    return S3Store(url, endpoint_url=endpoint_url or env.get("MUSE_S3_ENDPOINT_URL") or None)

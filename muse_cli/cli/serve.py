"""`muse serve`: the muse HTTP API (muse_cli/http) on this machine, with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o

EXAMPLES = """\b
Examples:
  muse serve                                          # 127.0.0.1:8000, token printed once
  MUSE_API_TOKEN=$(openssl rand -hex 32) muse serve --port 9000
  muse serve --model tiny=./checkpoints/musicgen-tiny --default-model tiny
  MUSE_S3_ENDPOINT_URL=https://<account>.r2.cloudflarestorage.com muse serve --storage s3://songs
  curl -H "Authorization: Bearer $MUSE_API_TOKEN" -d '{"difficulty":"beginner"}' \\
       -H 'content-type: application/json' http://127.0.0.1:8000/v1/midi
"""

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def parse_aliases(values: list[str]) -> dict[str, str]:
    """['tiny=/ckpt/tiny', ...] -> {'tiny': '/ckpt/tiny'}; a path given alone is named by its folder."""
    from muse_cli.errors import InputError

    aliases: dict[str, str] = {}
    for value in values:
        name, sep, target = value.partition("=")
        if not sep:
            name, target = Path(value).name, value
        if not name or not target:
            raise InputError(f"--model {value!r}: use NAME=PATH (or a hub id instead of PATH)")
        if Path(target).expanduser().exists():
            target = str(Path(target).expanduser().resolve())
        aliases[name] = target
    return aliases


@app.command("serve", epilog=EXAMPLES)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback exposes the API to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    token_env: Annotated[str, typer.Option("--token-env", help="Environment variable holding the API token; if unset, a token is generated and printed once.")] = "MUSE_API_TOKEN",
    backend: Annotated[str, typer.Option("--backend", help="Where jobs run: local (engines in this process) or modal.")] = "local",
    storage_dir: Annotated[Path | None, typer.Option("--storage-dir", help="Folder for large results fetched by key (default: a temporary folder removed on exit).", show_default=False)] = None,
    storage: Annotated[str | None, typer.Option("--storage", metavar="s3://BUCKET[/PREFIX]", envvar="MUSE_STORAGE", help="Keep results in an S3-compatible bucket instead: s3://BUCKET[/PREFIX] (keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).", show_default=False)] = None,
    s3_endpoint: Annotated[str | None, typer.Option("--s3-endpoint", envvar="MUSE_S3_ENDPOINT_URL", help="The bucket's endpoint URL (R2: https://<account>.r2.cloudflarestorage.com; MinIO: its URL). Default: AWS S3.", show_default=False)] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="Also serve this MusicGen checkpoint: NAME=PATH or NAME=hub-id (repeatable).", show_default=False)] = None,
    default_model: Annotated[str | None, typer.Option("--default-model", help="MusicGen model for requests that name none (and /generate_endpoint). [default: small]", show_default=False)] = None,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Allow browser calls from this origin (repeatable).", show_default=False)] = None,
    max_connections: Annotated[int, typer.Option("--max-connections", metavar="N", help="Open connections above which new requests get 503 at once.", min=1, max=100_000)] = 1000,
    read_timeout: Annotated[float, typer.Option("--read-timeout", metavar="SECONDS", help="Seconds a client may take to send a request's headers, or pause while sending its body, before it is dropped.", min=1, max=3600)] = 10.0,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Serve every muse capability over one authenticated HTTP API (OpenAPI at /openapi.json)."""
    import logging
    import os
    import secrets
    import shutil
    import tempfile

    from muse_cli import ui as ui_mod
    from muse_cli.backends import get_backend
    from muse_cli.errors import InputError, RuntimeFailure

    ui = ui_mod.set_current(ui_mod.UI(quiet=quiet, debug=debug))
    try:
        import uvicorn

        from muse_cli.http import serve as web_serve
        from muse_cli.http.app import create_app
        from muse_cli.http.settings import MIN_TOKEN_CHARS
    except ImportError as exc:
        raise RuntimeFailure(f"muse serve needs {exc.name}", hint="pip install 'muse-cli[serve]'") from None

    if backend not in ("local", "modal"):
        raise InputError(f"--backend {backend!r}: use local or modal")
    token = os.environ.get(token_env, "")
    generated = not token
    if generated:
        token = secrets.token_urlsafe(32)
    elif len(token) < MIN_TOKEN_CHARS:
        raise InputError(f"${token_env} has {len(token)} characters; use at least {MIN_TOKEN_CHARS}",
                         hint="e.g. openssl rand -hex 32")
    aliases = parse_aliases(model or [])
    store = None
    if storage:
        if storage_dir is not None:
            raise InputError("give either --storage (a bucket) or --storage-dir (a folder), not both")
        from muse_cli.http.store import StorageError, storage_from_env

        try:
            store = storage_from_env(storage, s3_endpoint)
        except ValueError as exc:
            raise InputError(f"--storage {exc}") from None
        except StorageError as exc:
            raise RuntimeFailure(str(exc)) from None
        try:
            store.check()  # a missing bucket or refused keys stop here, within 10 s, not at the first song
        except StorageError as exc:
            raise RuntimeFailure(str(exc), hint="check --storage, --s3-endpoint and the AWS_* keys") from None
    # Bind before announcing anything: a port in use or a bad host is one line and exit 1.
    try:
        sock = web_serve.bind(host, port)
    except OSError as exc:
        raise RuntimeFailure(str(exc)) from None
    web_serve.raise_file_limit(max_connections + 256)
    temporary = storage_dir is None
    folder = Path(tempfile.mkdtemp(prefix="muse-serve-")) if temporary else storage_dir.expanduser()
    try:
        api = create_app(
            get_backend(backend), token=token, storage_dir=folder, model_aliases=aliases,
            default_audio_model=default_model, cors_origins=tuple(cors_origin or ()), body_idle_s=read_timeout,
            store=store,
        )
        if host not in LOOPBACK:
            ui.warn(f"listening on {host}: anyone who can reach this address can call the API with the token")
        where = f"[{host}]" if ":" in host else host
        ui.info(f"muse API on http://{where}:{port} ({backend} backend); docs: docs/http-api.md")
        if store is not None:
            ui.info(f"results go to {store.where}")
        if generated:
            # Shown once, on the terminal only: the server never logs it.
            ui.stderr.write(f"API token (set ${token_env} to choose your own): {token}\n")
            ui.stderr.flush()
        logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        config = uvicorn.Config(
            api, host=host, port=port, log_level="warning" if quiet else "info", access_log=not quiet,
            server_header=False, proxy_headers=False, http=web_serve.bound_protocol(read_timeout),
            timeout_keep_alive=web_serve.KEEP_ALIVE_S, limit_concurrency=max_connections,
            h11_max_incomplete_event_size=web_serve.MAX_HEADER_BYTES,
        )
        logging.getLogger("uvicorn.access").addFilter(web_serve.RedactSecrets())  # after uvicorn's dictConfig
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)

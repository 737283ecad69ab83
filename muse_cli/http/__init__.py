"""The muse HTTP API: every capability over one authenticated FastAPI app.

`app.create_app(backend, token=..., storage_dir=...)` builds it. `muse serve` runs it with uvicorn
on the local backend; remote/web.py serves it on Modal next to the model classes.

One module per capability, each an `APIRouter`; the earlier services' compatibility routes sit
with the capability they serve (`/generate` in midi.py, `/generate_endpoint` in audio.py), while
seed 004's song routes and `/auth-status` share seed.py:

    app.py       create_app: settings on app.state, the routers, the Gate and CORS middleware
    settings.py  the limits and the frozen Settings (no FastAPI: remote/web.py reads it)
    deps.py      what routes share: auth, settings, body-model building, run_job, delivery
    errors.py    one table from exception to the one JSON error shape
    gate.py      ASGI middleware: bearer token and body limits before any route
    store.py     results fetched by key: a folder (FileStore) or an S3 bucket (S3Store)
    serve.py     how `muse serve` runs uvicorn (bound socket, header deadline, log redaction)
    service.py   /health, /openapi.json
    midi.py audio.py songs.py analyze.py files.py seed.py   the routes

Routes drive `muse_cli.kinds.KINDS`, the jobs the CLI and `muse batch` run. Only settings.py,
gate.py, store.py and serve.py import without FastAPI. docs/http-api.md documents every route.
"""

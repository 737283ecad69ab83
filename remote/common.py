"""The wire protocol every Modal class speaks: plain dicts in, plain dicts (and bytes) out.

    request payload:  {"protocol": N, "request": {...contract fields...}}
    reply:            {"protocol": N, "result": {...}}  or  {"protocol": N, "error": {...}}
    stream events:    {"event": "progress", "done": x, "total": y} ... then one reply

Errors travel as data, not pickled exceptions, so a client with another muse version still
reads them; the client checks the protocol number before trusting anything else.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

import modal
from pydantic import BaseModel, ValidationError

from muse_cli.contracts import PROTOCOL_VERSION
from muse_cli.errors import InputError, MuseError, TransientFailure, Unavailable


def _error(kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"protocol": PROTOCOL_VERSION, "error": {"type": kind, "message": message, "hint": hint}}


def _parse(request_cls: type[BaseModel], payload: dict[str, Any]) -> BaseModel | dict[str, Any]:
    protocol = payload.get("protocol")
    if protocol != PROTOCOL_VERSION:
        return _error(
            "version",
            f"deployed app speaks protocol {PROTOCOL_VERSION}, this client sent {protocol}",
            "run muse deploy (or upgrade muse) so client and app match",
        )
    try:
        return request_cls.model_validate(payload.get("request", {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return _error("input", f"{where}: {first.get('msg')}")


def _run(engine: Any, request: BaseModel, progress: Any) -> dict[str, Any]:
    try:
        result = engine.generate(request, progress=progress)
    except InputError as exc:
        return _error("input", exc.message, exc.hint)
    except TransientFailure as exc:
        return _error("transient", exc.message, exc.hint)
    except Unavailable as exc:
        return _error("unavailable", exc.message, exc.hint)
    except MuseError as exc:
        return _error("runtime", exc.message, exc.hint)
    except Exception as exc:  # the container must always answer in protocol, never with a traceback pickle
        name = type(exc).__name__
        kind = "oom" if "OutOfMemory" in name else "runtime"
        return _error(kind, f"{name}: {exc}".splitlines()[0][:500])
    return {"protocol": PROTOCOL_VERSION, "result": result.model_dump(mode="python")}


def serve(engine: Any, request_cls: type[BaseModel], payload: dict[str, Any]) -> dict[str, Any]:
    """Validate, run, reply: the body of every plain `@modal.method`."""
    request = _parse(request_cls, payload)
    if isinstance(request, dict):
        return request
    return _run(engine, request, progress=lambda done, total: None)


def stream(engine: Any, request_cls: type[BaseModel], payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Like `serve`, but yields progress events while the engine works (generator methods)."""
    request = _parse(request_cls, payload)
    if isinstance(request, dict):
        yield request
        return
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    reply: dict[str, Any] = {}

    def progress(done: float, total: float) -> None:
        events.put({"event": "progress", "done": float(done), "total": float(total)})

    def work() -> None:
        reply.update(_run(engine, request, progress))
        events.put({"event": "done"})

    threading.Thread(target=work, daemon=True).start()
    last = 0.0
    while True:
        event = events.get()
        if event["event"] == "done":
            break
        # Thin the stream: a progress event per token would cost more than the tokens.
        if event["done"] >= event["total"] or event["done"] - last >= event["total"] / 100:
            last = event["done"]
            yield event
    yield reply


def health(family: str, model_id: str, engine: Any | None = None) -> dict[str, Any]:
    import platform

    from muse_cli import __version__

    info: dict[str, Any] = {
        "app_version": __version__,
        "protocol": PROTOCOL_VERSION,
        "family": family,
        "model": model_id,
        "python": platform.python_version(),
        "device": getattr(engine, "device", None),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


class Served:
    """The methods every model class serves; a subclass sets FAMILY and loads `self.engine`.

    Modal classes inherit `@modal.method`s from a plain parent, so each family module only
    says how its engine loads (its `@modal.enter`) and what its health adds (`health_info`).
    """

    FAMILY: str
    engine: Any

    def health_info(self) -> dict[str, Any]:
        return {}

    @modal.method()
    def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        return serve(self.engine, _request_type(self.FAMILY), payload)

    @modal.method()
    def generate_stream(self, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from stream(self.engine, _request_type(self.FAMILY), payload)

    @modal.method()
    def health(self) -> dict[str, Any]:
        return {**health(self.FAMILY, self.engine.model_id, self.engine), **self.health_info()}


def _request_type(family: str) -> Any:
    from muse_cli.backends.registry import family as get_family

    return get_family(family).request_type()

"""The Modal backend: calls the deployed "muse" app's classes with `.remote_gen()` / `.remote()`.

modal is imported only here, on first use. Before the first call the backend checks, quickly,
that the Modal API answers (a bare `.remote()` would hang about 60 s offline) and that the
deployed app speaks this client's protocol.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from muse_cli.backends.registry import family as get_family
from muse_cli.contracts import PROTOCOL_VERSION
from muse_cli.errors import InputError, MuseError, RuntimeFailure, TransientFailure, Unavailable
from muse_cli.progress import ProgressFn, null_progress

APP_NAME = "muse"
WEIGHTS_VOLUME = "muse-weights"  # HF cache and user checkpoints, mounted at /weights by every model class
REACH_TIMEOUT_S = 5.0

HINT_SETUP = "run `modal setup` (or set MODAL_TOKEN_ID/MODAL_TOKEN_SECRET), or use --backend local"
HINT_DEPLOY = "run `muse deploy` to deploy the muse app, or use --backend local"
HINT_OFFLINE = "check your network, or use --backend local"


def modal_server() -> str:
    return os.environ.get("MODAL_SERVER_URL", "https://api.modal.com")


def reachable(timeout: float = REACH_TIMEOUT_S) -> tuple[bool, str]:
    """Can we open a TCP connection to the Modal API within `timeout` seconds?"""
    from muse_cli.ops.net import can_connect

    return can_connect(modal_server(), timeout)


def require_modal(setup_hint: str = HINT_SETUP) -> None:
    """Credentials present and the API reachable, checked in seconds, before anything waits on Modal."""
    from muse_cli.backends import modal_credentials_present

    if not modal_credentials_present():
        raise Unavailable("no Modal credentials found", hint=setup_hint)
    ok, where = reachable()
    if not ok:
        raise Unavailable(f"cannot reach Modal at {where}", hint=HINT_OFFLINE)


def translate(exc: BaseException) -> MuseError:
    """Modal's exceptions -> one-line muse errors with the next command to run."""
    import modal.exception as me

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, me.AuthError):
        return Unavailable(f"Modal rejected the credentials: {text}", hint=HINT_SETUP)
    if isinstance(exc, me.NotFoundError):
        return Unavailable(f"the muse app is not deployed in this Modal workspace ({text})", hint=HINT_DEPLOY)
    if isinstance(exc, (me.FunctionTimeoutError, getattr(me, "TimeoutError", me.FunctionTimeoutError))):
        return TransientFailure(f"the remote call timed out: {text}", hint="try a shorter duration or retry")
    if isinstance(exc, me.ConnectionError):
        return TransientFailure(f"lost the connection to Modal: {text}", hint=HINT_OFFLINE)
    if "OutOfMemory" in type(exc).__name__ or "out of memory" in text.lower():
        return RuntimeFailure(f"the GPU ran out of memory: {text}", hint="use a smaller model or a shorter duration")
    return RuntimeFailure(f"remote call failed: {type(exc).__name__}: {text}")


def unpack(reply: dict[str, Any], result_type: Any) -> Any:
    """A protocol reply -> the result contract, or the error it carries raised as a muse error."""
    if reply.get("protocol") != PROTOCOL_VERSION:
        raise Unavailable(
            f"deployed app is protocol version {reply.get('protocol')}, this client needs {PROTOCOL_VERSION}",
            hint="run muse deploy",
        )
    if "error" in reply:
        err = reply["error"]
        kind, message, hint = err.get("type"), err.get("message", "remote error"), err.get("hint")
        if kind == "input":
            raise InputError(message, hint)
        if kind == "transient":
            raise TransientFailure(message, hint)
        if kind == "oom":
            raise RuntimeFailure(f"the GPU ran out of memory: {message}", hint or "use a smaller model or a shorter duration")
        if kind == "version":
            raise Unavailable(message, hint or "run muse deploy")
        if kind == "unavailable":
            raise Unavailable(message, hint)
        raise RuntimeFailure(message, hint)
    return result_type.model_validate(reply["result"])


class ModalBackend:
    name = "modal"

    def __init__(self, gpu_for: Callable[[str, str], str | None] | None = None) -> None:
        from muse_cli.ops.catalog import gpu_for as catalog_gpu

        self._checked = False
        self._check_lock = threading.Lock()
        self._gpu_for = gpu_for or catalog_gpu

    def check(self) -> None:
        """Reachable and deployed at our protocol version; done once, before the first job."""
        with self._check_lock:
            if self._checked:
                return
            require_modal()
            info = self.app_info()
            if info.get("protocol") != PROTOCOL_VERSION:
                raise Unavailable(
                    f"deployed app is version {info.get('app_version')} (protocol {info.get('protocol')}), "
                    f"this client needs protocol {PROTOCOL_VERSION}",
                    hint="run muse deploy",
                )
            self._checked = True

    def app_info(self) -> dict[str, Any]:
        """The deployed app's version function (CPU only, cheap)."""
        import modal

        try:
            return modal.Function.from_name(APP_NAME, "version").remote()
        except MuseError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    def _instance(self, family: str, model: str, options: dict[str, Any] | None = None) -> Any:
        import modal

        fam = get_family(family)
        cls = modal.Cls.from_name(APP_NAME, fam.modal_class)
        gpu = self._gpu_for(family, model) if self._gpu_for else None
        if gpu:
            cls = cls.with_options(gpu=gpu)
        return cls(model=model, **(options or {}))

    def run(
        self,
        family: str,
        request: Any,
        *,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        progress: ProgressFn = null_progress,
    ) -> Any:
        fam = get_family(family)
        self.check()
        payload = {"protocol": PROTOCOL_VERSION, "request": request.model_dump(mode="python")}
        obj = self._instance(family, model or fam.default_model, options)
        try:
            reply: dict[str, Any] | None = None
            for event in obj.generate_stream.remote_gen(payload):
                if event.get("event") == "progress":
                    progress(event["done"], event["total"])
                else:
                    reply = event
        except MuseError:
            raise
        except Exception as exc:
            raise translate(exc) from exc
        if reply is None:
            raise TransientFailure("the remote call ended without a result", hint="retry")
        return unpack(reply, fam.result_type())


def upload_to_volume(local: Any, remote_path: str, force: bool = False) -> str:
    """Put a local file on the weights Volume (what the deployed classes mount at /weights)."""
    require_modal()
    import modal

    target = "/" + remote_path.lstrip("/")
    try:
        volume = modal.Volume.from_name(WEIGHTS_VOLUME, create_if_missing=True)
        with volume.batch_upload(force=force) as batch:
            batch.put_file(str(local), target)
    except FileExistsError:
        raise InputError(f"{target} already exists on the {WEIGHTS_VOLUME} Volume", hint="use --force to replace it") from None
    except Exception as exc:
        raise translate(exc) from exc
    return target

"""Is the Hugging Face Hub usable right now? Asked once per process, answered in seconds.

Engines consult this before any download so that "offline and not cached" fails at once with
the command that fixes it, instead of after huggingface_hub's retries (about 25 s).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

REACH_TIMEOUT_S = 2.0


def offline_by_setting() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=1)
def reachable() -> tuple[bool, str]:
    from muse_cli.ops.net import can_connect

    return can_connect(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), REACH_TIMEOUT_S)


def why_offline() -> str | None:
    """None when downloads can work; else the reason, for a one-line error."""
    if offline_by_setting():
        return "HF_HUB_OFFLINE is set"
    ok, where = reachable()
    return None if ok else f"the Hub at {where} is unreachable"


def require_weights(model_id: str, marker: str = "config.json") -> None:
    """Fail in seconds, naming `muse models pull`, when a hub model is neither on disk nor fetchable.

    `marker` is a file every snapshot of that kind has (config.json; model_index.json for
    diffusers pipelines). Local folders and cached snapshots pass; so does an online machine.
    """
    from muse_cli.errors import Unavailable

    if Path(model_id).expanduser().exists():
        return
    if model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1:
        raise Unavailable(f"no model folder at {model_id}", hint="check the path, or give a hub id like org/name")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return
    if isinstance(try_to_load_from_cache(model_id, marker), str):
        return
    why = why_offline()
    if why is not None:
        from muse_cli.ops.catalog import by_name

        entry = by_name(model_id)
        raise Unavailable(
            f"model {model_id} is not downloaded and {why}",
            hint=f"run muse models pull {entry.name if entry else model_id} while online, or use --backend modal",
        )

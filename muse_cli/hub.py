"""Is the Hugging Face Hub usable right now? Asked once per process, answered in seconds.

Engines consult this before any download so that "offline and not cached" fails at once with
the command that fixes it, instead of after huggingface_hub's retries (about 25 s).
"""

from __future__ import annotations

import functools
import os

REACH_TIMEOUT_S = 2.0


def offline_by_setting() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=1)
def reachable() -> tuple[bool, str]:
    from muse_cli.net import can_connect

    return can_connect(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), REACH_TIMEOUT_S)


def why_offline() -> str | None:
    """None when downloads can work; else the reason, for a one-line error."""
    if offline_by_setting():
        return "HF_HUB_OFFLINE is set"
    ok, where = reachable()
    return None if ok else f"the Hub at {where} is unreachable"

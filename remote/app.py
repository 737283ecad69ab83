"""The muse Modal app. `muse deploy` and `modal deploy remote/app.py` both deploy it.

Each model family lives in its own module and registers its class on this one App; importing
this module imports them all, so the deployed app always has every family.
"""

from __future__ import annotations

import sys

import modal

# `modal deploy remote/app.py` runs this file as the top-level module `app` (modal/cli/import_refs.py,
# `import_file_or_module`: spec_from_file_location(inspect.getmodulename(path), path)), while the family
# modules import `remote.app`. Registering this very module under that name too means it runs once,
# whichever way it was imported (`modal deploy -m remote.app` imports it as `remote.app` directly).
if __name__ != "remote.app":
    sys.modules.setdefault("remote.app", sys.modules[__name__])

from remote.images import image
from remote.plan import service

from muse_cli.backends.modal import APP_NAME  # noqa: E402  one name for client and deployment

app = modal.App(APP_NAME)

_core_image = image("core")


@app.function(**service("version", kind="function", image=_core_image, image_name="core", loads_weights=False,
                        timeout=30, scaledown_window=60, cpu=0.25, memory=256))
def version() -> dict:
    """What the client checks before its first call: the deployed muse and protocol version."""
    from muse_cli import __version__
    from muse_cli.contracts import PROTOCOL_VERSION

    return {"app_version": __version__, "protocol": PROTOCOL_VERSION}


# Families register themselves on `app` when imported; import them last so `app` exists.
from remote import families  # noqa: E402,F401

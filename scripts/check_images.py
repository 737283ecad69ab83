#!/usr/bin/env python
"""Resolve every Modal image's pins against PyPI for Linux x86_64; same as `muse deploy --check`.

    .venv/bin/python scripts/check_images.py [IMAGE ...] [--json] [--jobs N]

Needs the package index, no Modal credentials. Exit 0 when every image resolves, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="image names (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--jobs", type=int, default=4, help="images resolved at once")
    args = parser.parse_args()

    from muse_cli.ops import deploy_check
    from muse_cli import ui as ui_mod
    from muse_cli.errors import MuseError

    ui = ui_mod.set_current(ui_mod.UI(json=args.json))
    try:
        deploy_check.run(args.images or None, jobs=args.jobs)
    except MuseError as exc:
        ui.error(exc.message, exc.hint)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

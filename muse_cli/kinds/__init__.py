"""Job kinds: one module per kind, each the one definition its CLI command, `muse batch` lines
and HTTP routes call (see kinds/base.py). A new kind is a new module plus one line below."""

from __future__ import annotations

from muse_cli.kinds import analysis, audio, midi, song
from muse_cli.kinds.base import Kind, Outcome, Saved, build

KINDS: dict[str, Kind] = {kind.name: kind for kind in (midi.KIND, audio.KIND, song.KIND, analysis.KIND)}
"""What a batch line's `"kind"` can name (render runs from `muse render` and inside MIDI jobs)."""

__all__ = ["KINDS", "Kind", "Outcome", "Saved", "build"]

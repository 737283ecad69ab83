"""A render job (`muse render`): MIDI files to WAV/FLAC with a SoundFont or the built-in synth.

It runs on this machine only and reads MIDI files, so it is no batch line or HTTP route of its
own; MIDI jobs render through `render=` (muse_cli/music/render.py does the rendering).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from muse_cli.contracts import RenderRequest
from muse_cli.errors import InputError
from muse_cli.kinds.base import Kind, Saved
from muse_cli.output import Target, sidecar, staging_path, write_group

if TYPE_CHECKING:
    import pretty_midi

    from muse_cli.music.render import RenderInfo

SIDECAR = ".render.json"  # never the MIDI's own <stem>.json


class RenderKind(Kind[RenderRequest, "RenderInfo"]):
    name = "render"
    request_type = RenderRequest

    def check(self, request: RenderRequest) -> None:
        if request.soundfont is not None and not Path(request.soundfont).is_file():
            raise InputError(f"--soundfont {request.soundfont!r}: no such file")

    def inputs(self, files: list[Path], request: RenderRequest) -> list[tuple[Path, pretty_midi.PrettyMIDI]]:
        """Read and length-check every input before rendering any, so a bad file fails the call up front."""
        from muse_cli.music.midi import load_midi
        from muse_cli.music.render import check_length

        midis = [(path, load_midi(path)) for path in files]
        for path, pm in midis:
            check_length(pm, request, str(path))
        return midis

    def render(self, request: RenderRequest, path: Path, pm: pretty_midi.PrettyMIDI, target: Target,
               command: str) -> tuple[Saved, RenderInfo]:
        """Long pieces render block by block straight into a temporary beside the output."""
        from muse_cli.music.render import render_to_file

        start = time.perf_counter()
        staged = staging_path(target, f".{request.format}")
        try:
            info = render_to_file(pm, request, staged)
            record = sidecar(
                command=command, engine=info.renderer, model=request.soundfont if info.renderer == "fluidsynth" else "builtin",
                backend="local", request=request, seed=None, timings={"render_s": time.perf_counter() - start},
                metadata={"source": str(path), "duration": info.duration, "sample_rate": info.sample_rate},
            )
            paths = write_group(target, {f".{request.format}": staged}, record, sidecar_suffix=SIDECAR)
        finally:
            staged.unlink(missing_ok=True)
        return Saved(paths, {"source": str(path), "renderer": info.renderer}), info


KIND = RenderKind()

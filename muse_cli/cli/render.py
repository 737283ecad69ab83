"""`muse render`: MIDI to WAV/FLAC with a SoundFont (FluidSynth) or the built-in synthesizer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o

EXAMPLES = """\b
Examples:
  muse render etude.mid                          # -> etude.wav + etude.render.json
  muse render song.mid --soundfont piano.sf2 --format flac
  muse render *.mid --out-dir audio --mono --normalize peak
"""


@app.command("render", epilog=EXAMPLES)
@o.shared("output", "out_dir", "force", "json_out", "quiet", "debug")
def render(
    ctx: typer.Context,
    files: Annotated[List[Path], typer.Argument(help="MIDI file(s) to render.", show_default=False)],
    soundfont: Annotated[Optional[Path], typer.Option(help="SoundFont (.sf2) to render with FluidSynth.", show_default=False)] = None,
    audio_format: Annotated[Optional[str], typer.Option("--format", help="wav or flac (or the -o file's extension). [default: wav]", show_default=False)] = None,
    sample_rate: Annotated[int, typer.Option("--sample-rate", help="Output sample rate in Hz.")] = 44100,
    mono: Annotated[bool, typer.Option("--mono", help="Mono output (default stereo).")] = False,
    normalize: Annotated[str, typer.Option(help="loudness (-14 LUFS), peak, rms, clip or none.")] = "loudness",
    target_lufs: Annotated[float, typer.Option("--target-lufs", help="Loudness target for --normalize loudness.")] = -14.0,
    max_duration: Annotated[float, typer.Option("--max-duration", help="Longest piece to render, in seconds (up to 86400); a longer MIDI exits 2 before rendering.")] = 3600.0,
    *,
    shared: o.Shared,
) -> None:
    """Render MIDI files to audio. Writes <stem>.wav (or .flac) and a sidecar <stem>.render.json each.

    The sidecar has its own name so that it never takes the place of the MIDI's <stem>.json.
    """
    from muse_cli.cli import conflicts
    from muse_cli.errors import InputError
    from muse_cli.kinds.render import KIND
    from muse_cli.output import Target, names_file, output_format

    ui, output, out_dir, force = shared.ui, shared.output, shared.out_dir, shared.force
    audio_format = output_format(output, audio_format, ("wav", "flac"))
    output = conflicts.output_in_out_dir(ctx, output, out_dir)
    conflicts.needs(ctx, "--target-lufs", "target_lufs", "is the target of --normalize loudness", normalize == "loudness")
    request = KIND.request(
        soundfont=str(soundfont) if soundfont else None, format=audio_format, sample_rate=sample_rate,
        stereo=not mono, normalize=normalize, target_lufs=target_lufs, max_duration=max_duration,
    )
    if names_file(output) and len(files) > 1:
        raise InputError("-o/--output names one file: with several inputs use --out-dir")
    for path, pm in KIND.inputs(files, request):
        target = Target.plan(stem=path.stem, out_dir=out_dir or (None if output else path.parent), output=output, force=force)
        with ui.progress(f"rendering {path.name}"):
            saved, info = KIND.render(request, path, pm, target, "render")
        if info.notice:
            ui.notice(info.notice)
        ui.info(f"{saved.paths[0].name}: {info.duration:.1f} s rendered with {info.renderer}")
        ui.result(*saved.as_result())

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
    output: o.Output = None,
    out_dir: o.OutDir = None,
    force: o.Force = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Render MIDI files to audio. Writes <stem>.wav (or .flac) and a sidecar <stem>.render.json each.

    The sidecar has its own name so that it never takes the place of the MIDI's <stem>.json.
    """
    import time

    from muse_cli import jobs, ui as ui_mod
    from muse_cli.contracts import RenderRequest
    from muse_cli.errors import InputError
    from muse_cli.music.midi import load_midi
    from muse_cli.music.render import check_length, render_to_file
    from muse_cli.output import Target, names_file, output_format, sidecar, staging_path, write_group

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    audio_format = output_format(output, audio_format, ("wav", "flac"))
    from muse_cli.cli import conflicts

    output = conflicts.output_in_out_dir(ctx, output, out_dir)
    conflicts.needs(ctx, "--target-lufs", "target_lufs", "is the target of --normalize loudness", normalize == "loudness")
    request = jobs.build(
        RenderRequest,
        soundfont=str(soundfont) if soundfont else None, format=audio_format, sample_rate=sample_rate,
        stereo=not mono, normalize=normalize, target_lufs=target_lufs, max_duration=max_duration,
    )
    if soundfont is not None and not soundfont.is_file():
        raise InputError(f"--soundfont {str(soundfont)!r}: no such file")
    if names_file(output) and len(files) > 1:
        raise InputError("-o/--output names one file: with several inputs use --out-dir")
    # Read and check every input before rendering any, so a bad file fails the call up front.
    midis = [(path, load_midi(path)) for path in files]
    for path, pm in midis:
        check_length(pm, request, str(path))
    for path, pm in midis:
        target = Target.plan(stem=path.stem, out_dir=out_dir or (None if output else path.parent), output=output, force=force)
        start = time.perf_counter()
        # Long pieces render block by block straight into a temporary beside the output.
        staged = staging_path(target, f".{request.format}")
        try:
            with ui.progress(f"rendering {path.name}"):
                info = render_to_file(pm, request, staged)
            if info.notice:
                ui.notice(info.notice)
            elapsed = time.perf_counter() - start
            record = sidecar(
                command="render", engine=info.renderer, model=str(soundfont) if info.renderer == "fluidsynth" else "builtin",
                backend="local", request=request, seed=None, timings={"render_s": elapsed},
                metadata={"source": str(path), "duration": info.duration, "sample_rate": info.sample_rate},
            )
            paths = write_group(target, {f".{request.format}": staged}, record, sidecar_suffix=".render.json")
        finally:
            staged.unlink(missing_ok=True)
        ui.info(f"{paths[0].name}: {info.duration:.1f} s rendered with {info.renderer}")
        ui.result([str(paths[0])], {"source": str(path), "renderer": info.renderer, "outputs": [str(p) for p in paths]})

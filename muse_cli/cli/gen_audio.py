"""`muse gen audio`: text-to-audio with MusicGen, on Modal or in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from muse_cli.cli import gen
from muse_cli.cli import options as o

EXAMPLES = """\b
Examples:
  muse gen audio "jazz piano" -d 10                       # -> jazz-piano.wav + jazz-piano.json
  muse gen audio "lofi beat, rain" -d 90 --model medium   # windowed past 30 s
  muse gen audio "orchestral" --model melody --melody hum.wav
  muse gen audio "more of this" --continue clip.wav -d 20 --format flac
  muse gen audio "techno" -n 4 --seed 1 --json --backend local --model ./my-musicgen
"""


@gen.command("audio", epilog=EXAMPLES)
@o.shared(*o.GEN)
def gen_audio(
    ctx: typer.Context,
    prompt: Annotated[Optional[str], typer.Argument(help="What the music should be, in words.", show_default=False)] = None,
    duration: Annotated[float, typer.Option("-d", "--duration", help="Seconds of audio (1..300).")] = 10.0,
    model: Annotated[str, typer.Option("-m", "--model", help="small, medium, large, melody, melody-large, stereo-*, a hub id or a local path.")] = "small",
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (> 0). [default: 1.0]", show_default=False)] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Top-k sampling (0 = off). [default: 250]", show_default=False)] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling in [0, 1] (0 = off). [default: 0]", show_default=False)] = None,
    cfg: Annotated[Optional[float], typer.Option("--cfg", "--guidance", help="Classifier-free guidance. [default: 3.0]", show_default=False)] = None,
    extend_stride: Annotated[Optional[float], typer.Option("--extend-stride", help="Seconds each 30 s window advances past 30 s. [default: 18]", show_default=False)] = None,
    melody: Annotated[Optional[Path], typer.Option("--melody", help="Audio whose melody conditions generation (melody models).", show_default=False)] = None,
    continuation: Annotated[Optional[Path], typer.Option("--continue", help="Audio clip to continue.", show_default=False)] = None,
    decoder: Annotated[str, typer.Option(help="encodec, or mbd (MultiBandDiffusion, on Modal).")] = "encodec",
    audio_format: Annotated[Optional[str], typer.Option("--format", help="wav, flac or mp3 (or the -o file's extension). [default: wav]", show_default=False)] = None,
    float_wav: Annotated[bool, typer.Option("--float", help="32-bit float WAV instead of 16-bit.")] = False,
    normalize: Annotated[str, typer.Option(help="loudness (-14 LUFS), peak, rms, clip or none.")] = "loudness",
    target_lufs: Annotated[float, typer.Option("--target-lufs", help="Loudness target for --normalize loudness.")] = -14.0,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts-file", help="One prompt per line (- for stdin): a batch with these options as defaults (see muse batch).", show_default=False)] = None,
    *,
    shared: o.Shared,
) -> int | None:
    """Generate audio from a text prompt with MusicGen."""
    from muse_cli.backends import get_backend
    from muse_cli.cli import conflicts
    from muse_cli.kinds.audio import KIND, audio_input
    from muse_cli.output import Target, land_together, output_format

    ui, count, seed, output, out_dir, force, backend, precision = shared.ui, shared.count, shared.seed, shared.output, shared.out_dir, shared.force, shared.backend, shared.precision
    audio_format = output_format(output, audio_format, ("wav", "flac", "mp3"))
    output = conflicts.output_in_out_dir(ctx, output, out_dir)
    conflicts.needs(ctx, "--float", "float_wav", "writes 32-bit float WAV: it needs --format wav", (audio_format or "wav") == "wav")
    conflicts.needs(ctx, "--target-lufs", "target_lufs", "is the target of --normalize loudness", normalize == "loudness")
    conflicts.needs(ctx, "--extend-stride", "extend_stride", "applies past 30 s: give -d/--duration over 30", duration > 30)
    if prompts_file is not None:
        conflicts.not_with(ctx, "--prompts-file", {"force": "--force"}, "a batch never overwrites (rerun it to resume)")
    fields = dict(
        duration=duration, model=model, temperature=temperature, top_k=top_k, top_p=top_p,
        cfg_coef=cfg, extend_stride=extend_stride, count=count, seed=seed,
        melody=audio_input(melody, "--melody"), continuation=audio_input(continuation, "--continue"),
        decoder=decoder, format=audio_format, float_wav=float_wav, normalize=normalize, target_lufs=target_lufs,
        precision=precision,
    )
    conflicts.precision_on(backend, precision)
    if prompts_file is not None:
        from muse_cli.cli.batch import prompts_conflict, run_prompts

        prompts_conflict(prompt=prompt, output=output)
        return run_prompts(ui, "audio", prompts_file, fields, out_dir=out_dir, backend=backend)
    request = KIND.request(prompt=prompt, **fields)
    stem = request.prompt or (f"{continuation.stem}-continued" if continuation else "musicgen")
    target = Target.plan(stem=stem, out_dir=out_dir, output=output, force=force)
    chosen = get_backend(backend)
    KIND.ready(request, chosen)

    with ui.progress(f"generating {request.duration:g} s with musicgen {request.model}", total=None) as progress:
        outcome = KIND.run(request, chosen, progress)
    saved, _ = land_together(lambda: KIND.save(request, outcome, target, "gen audio"))
    for item in saved:  # all clips landed together, or none
        ui.info(f"{item.paths[0].name}: {item.summary['duration']:.1f} s, {item.summary['channels']} ch, seed {item.summary['seed']}")
        ui.result(*item.as_result())

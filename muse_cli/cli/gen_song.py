"""`muse gen song`: a full song with lyrics (ACE-Step), lyrics and tags from an LLM, cover art."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from muse_cli.cli import gen
from muse_cli.cli import options as o

EXAMPLES = """\b
Examples:
  muse gen song "an upbeat electronic dance track about summer nights"   # the LLM writes tags + lyrics
  muse gen song --tags "electronic rap, male vocals, 140BPM" --lyrics lyrics.txt
  muse gen song --tags "indie folk, acoustic guitar" --describe-lyrics "leaving home at dawn"
  muse gen song "ambient piano, rain" --instrumental -d 90 --no-cover
  cat lyrics.txt | muse gen song --tags "pop, female vocals" --lyrics - --format flac
"""


@gen.command("song", epilog=EXAMPLES)
@o.shared(*o.GEN)
def gen_song(
    ctx: typer.Context,
    description: Annotated[Optional[str], typer.Argument(help="What the song is: style, mood, subject.", show_default=False)] = None,
    lyrics: Annotated[Optional[str], typer.Option("--lyrics", help="Lyrics file with [verse]/[chorus]/[bridge] tags, or - for stdin.", show_default=False)] = None,
    tags: Annotated[Optional[str], typer.Option("--tags", help="Comma-separated style tags, e.g. 'electronic rap, 140BPM'.", show_default=False)] = None,
    describe_lyrics: Annotated[Optional[str], typer.Option("--describe-lyrics", metavar="TEXT", help="What the LLM's lyrics should be about.", show_default=False)] = None,
    instrumental: Annotated[bool, typer.Option("--instrumental", help="No vocals: lyrics become [instrumental].")] = False,
    duration: Annotated[float, typer.Option("-d", "--duration", help="Seconds (1..240).")] = 180.0,
    steps: Annotated[Optional[int], typer.Option(help="Diffusion steps (1..200). [default: 60]", show_default=False)] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Guidance scale. [default: 15]", show_default=False)] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="euler, heun or pingpong. [default: euler]", show_default=False)] = None,
    cfg_type: Annotated[Optional[str], typer.Option("--cfg-type", help="apg, cfg or cfg_star. [default: apg]", show_default=False)] = None,
    omega: Annotated[Optional[float], typer.Option(help="Granularity scale. [default: 10]", show_default=False)] = None,
    audio_format: Annotated[Optional[str], typer.Option("--format", help="wav, flac or mp3 (or the -o file's extension). [default: wav]", show_default=False)] = None,
    float_wav: Annotated[bool, typer.Option("--float", help="32-bit float WAV instead of 16-bit.")] = False,
    no_cover: Annotated[bool, typer.Option("--no-cover", help="Skip the cover art.")] = False,
    no_categories: Annotated[bool, typer.Option("--no-categories", help="Skip naming genre categories.")] = False,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts-file", help="One description per line (- for stdin): a batch with these options as defaults.", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed (-1 = random); the seed used is recorded.", show_default=False)] = None,
    *,
    shared: o.Shared,
) -> int | None:
    """Make a complete song: 48 kHz audio, cover art, lyrics and a sidecar with everything used."""
    from muse_cli.backends import get_backend
    from muse_cli.engines.base import derive_seed
    from muse_cli.errors import InputError
    from muse_cli.kinds.song import KIND
    from muse_cli.output import Target, output_format

    ui, count, output, out_dir, force, backend, precision = shared.ui, shared.count, shared.output, shared.out_dir, shared.force, shared.backend, shared.precision
    if count < 1 or count > 16:
        raise InputError(f"--count: must be 1..16 (got {count})")
    audio_format = output_format(output, audio_format, ("wav", "flac", "mp3"))
    from muse_cli.cli import conflicts

    output = conflicts.output_in_out_dir(ctx, output, out_dir)
    conflicts.needs(ctx, "--float", "float_wav", "writes 32-bit float WAV: it needs --format wav", (audio_format or "wav") == "wav")
    if prompts_file is not None:
        conflicts.not_with(ctx, "--prompts-file", {"force": "--force", "count": "--count"},
                           "one song per line (repeat a line for more; a batch never overwrites)")
    fields = dict(
        lyrics=_read_lyrics(lyrics), tags=tags, describe_lyrics=describe_lyrics, instrumental=instrumental,
        duration=duration, steps=steps, guidance=guidance, scheduler=scheduler, cfg_type=cfg_type, omega=omega,
        seed=seed, format=audio_format, float_wav=float_wav, cover=not no_cover, categories=not no_categories,
        precision=precision,
    )
    conflicts.precision_on(backend, precision)
    if prompts_file is not None:
        from muse_cli.cli.batch import prompts_conflict, run_prompts

        prompts_conflict(prompt=description, output=output)
        return run_prompts(ui, "song", prompts_file, fields, out_dir=out_dir, backend=backend, prompt_field="description")
    request = KIND.request(description=description, **fields)
    conflicts.needs(ctx, "--precision", "precision", "sets the lyrics LLM's weights, and this song runs no LLM stage "
                    "(tags given, lyrics given or --instrumental, and --no-categories)",
                    KIND.writes_text(request) or request.categories)
    target = Target.plan(stem=KIND.stem(request), out_dir=out_dir, output=output, force=force)
    chosen = get_backend(backend)
    KIND.ready(request, chosen)
    for index in range(count):
        one = request if count == 1 or request.seed < 0 else request.model_copy(update={"seed": derive_seed(request.seed, index)})
        with ui.progress(f"making a {one.duration:g} s song ({chosen.name})", total=100) as progress:
            outcome = KIND.run(one, chosen, progress)
        for warning in outcome.notices:
            ui.warn(warning)
        (item,) = KIND.save(one, outcome, target.numbered(index, count), "gen song")
        ui.info(f"{item.paths[0].name}: {outcome.result.duration:.0f} s, tags: {outcome.result.tags}")
        if outcome.result.categories:
            ui.info(f"categories: {', '.join(outcome.result.categories)}")
        ui.result(*item.as_result())
    return None


def _read_lyrics(source: str | None) -> str | None:
    """--lyrics FILE or - (stdin): the text, or a clear error before anything runs."""
    from muse_cli.errors import InputError

    if source is None:
        return None
    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise InputError(f"--lyrics {source!r}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--lyrics {source!r}: cannot read as UTF-8 text ({exc})") from None
    if not text.strip():
        raise InputError(f"--lyrics {source!r} is empty")
    return text

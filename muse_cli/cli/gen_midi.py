"""`muse gen midi`: text-to-MIDI with MIDI-LLM, or the built-in etude composer offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from muse_cli.cli import gen
from muse_cli.cli import options as o

EXAMPLES = """\b
Examples:
  muse gen midi --difficulty beginner                 # an etude, offline
  muse gen midi "a calm piano waltz in D minor"       # MIDI-LLM (Modal or local weights)
  muse gen midi --difficulty advanced --key F#m --time-signature 6/8 --render
  muse gen midi --engine etude -n 4 --seed 7 --out-dir etudes --json
"""


@gen.command("midi", epilog=EXAMPLES)
@o.shared(*o.GEN)
def gen_midi(
    ctx: typer.Context,
    prompt: Annotated[Optional[str], typer.Argument(help="What to compose, in words. Optional with structured options.", show_default=False)] = None,
    difficulty: Annotated[Optional[str], typer.Option(help="beginner, intermediate or advanced.", show_default=False)] = None,
    key: Annotated[Optional[str], typer.Option(help="Key, e.g. C, F#m, 'Bb major'.", show_default=False)] = None,
    tempo: Annotated[Optional[float], typer.Option(help="Tempo in BPM (20..300).", show_default=False)] = None,
    time_signature: Annotated[Optional[str], typer.Option("--time-signature", help="2/4, 3/4, 4/4 or 6/8.", show_default=False)] = None,
    bars: Annotated[Optional[int], typer.Option(help="Number of bars (etude; 1..256).", show_default=False)] = None,
    instrument: Annotated[str, typer.Option(help="General MIDI program name or number.")] = "piano",
    hands: Annotated[Optional[int], typer.Option(help="1 or 2 hands (etude).", show_default=False)] = None,
    style: Annotated[Optional[str], typer.Option(help="Style words added to the description, e.g. 'baroque'.", show_default=False)] = None,
    engine: Annotated[str, typer.Option(help="auto (MIDI-LLM when available, else etude), midi-llm or etude.")] = "auto",
    model: Annotated[Optional[str], typer.Option(help="MIDI-LLM hub id or local path.", show_default=False)] = None,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature (> 0). [default: 1.0]", show_default=False)] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling, in (0, 1]. [default: 0.98]", show_default=False)] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Most MIDI tokens to generate (3..8190). [default: 2046]", show_default=False)] = None,
    render: Annotated[bool, typer.Option("--render", help="Also render each MIDI to audio.")] = False,
    soundfont: Annotated[Optional[Path], typer.Option(help="SoundFont (.sf2) for --render through FluidSynth.", show_default=False)] = None,
    audio_format: Annotated[Optional[str], typer.Option("--format", help="Audio format for --render: wav or flac. [default: wav]", show_default=False)] = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts-file", help="One prompt per line (- for stdin): a batch with these options as defaults (see muse batch).", show_default=False)] = None,
    *,
    shared: o.Shared,
) -> int | None:
    """Compose MIDI from a prompt (MIDI-LLM) or structured options (etude composer offline)."""
    import time

    from muse_cli.backends import get_backend
    from muse_cli.cli import conflicts
    from muse_cli.contracts import RenderRequest
    from muse_cli.kinds import build
    from muse_cli.kinds.midi import KIND
    from muse_cli.output import Target, land_together, names_file, output_format

    ui, count, seed, output, out_dir, force, backend, precision = shared.ui, shared.count, shared.seed, shared.output, shared.out_dir, shared.force, shared.backend, shared.precision
    output_format(output, None, ("mid",))  # -o names the MIDI; --render's audio takes its stem
    output = conflicts.output_in_out_dir(ctx, output, out_dir)
    conflicts.needs(ctx, "--format", "audio_format", "is the format of the rendered audio: add --render", render or soundfont is not None)
    if engine == "etude":
        conflicts.not_with(ctx, "--engine etude", {"model": "--model", "temperature": "--temperature", "top_p": "--top-p", "max_tokens": "--max-tokens",
                            "precision": "--precision"},
                           "they are MIDI-LLM settings")
    if prompts_file is not None:
        conflicts.not_with(ctx, "--prompts-file", {"force": "--force"}, "a batch never overwrites (rerun it to resume)")
    fields = dict(
        engine=engine, model=model, difficulty=difficulty, key=key, tempo=tempo,
        time_signature=time_signature, bars=bars, instrument=instrument, hands=hands, style=style,
        count=count, seed=seed, temperature=temperature, top_p=top_p, max_tokens=max_tokens, precision=precision,
    )
    render_request = (
        build(RenderRequest, soundfont=str(soundfont.resolve()) if soundfont else None, format=audio_format)
        if render or soundfont
        else None
    )
    if soundfont is not None and not soundfont.is_file():
        from muse_cli.errors import InputError

        raise InputError(f"--soundfont {str(soundfont)!r}: no such file")
    conflicts.precision_on(backend, precision)
    if prompts_file is not None:
        from muse_cli.cli.batch import prompts_conflict, run_prompts

        prompts_conflict(prompt=prompt, output=output)
        defaults = {**fields, "render": render_request.model_dump() if render_request else None}
        return run_prompts(ui, "midi", prompts_file, defaults, out_dir=out_dir, backend=backend)
    request = build(KIND.request_type, prompt=prompt, **fields)  # checked by KIND.family, by engine
    folder = Target.plan(stem="muse", out_dir=out_dir, output=output, force=force)
    chosen = get_backend(backend)

    start = time.perf_counter()
    family, notice = KIND.family(request, chosen)
    if notice:
        ui.notice(notice)
    label = "composing" if family == "etude" else f"generating MIDI with MIDI-LLM ({chosen.name})"
    with ui.progress(label, total=request.count) as progress:
        outcome = KIND.run(request, chosen, progress)
    for note in outcome.notices:
        if note != notice:
            ui.notice(note)
    shown = len(outcome.notices)
    stem = folder.stem if names_file(output) else KIND.stem(request, outcome)
    target = Target(folder.folder, stem, force)
    saved, _ = land_together(lambda: KIND.save(  # every .mid, audio and sidecar, or none
        request, outcome, target, "gen midi", render=render_request, timings={"total_s": time.perf_counter() - start},
    ))
    for note in outcome.notices[shown:]:  # from rendering
        ui.notice(note)
    for item in saved:
        meta = item.summary["metadata"]
        ui.info(
            f"{item.paths[0].name}: {meta['noteCount']} notes, {meta['duration']:.1f} s, "
            f"{meta['key']}, {meta['tempo']:.0f} BPM ({outcome.result.engine}, seed {item.summary['seed']})"
        )
        ui.result(*item.as_result())


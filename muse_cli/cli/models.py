"""`muse models`: what models exist, what they cost, and getting weights where they are needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o

models = typer.Typer(
    help="List models with GPU and rough cost; pull, list and remove cached weights; convert and upload checkpoints.",
    invoke_without_command=True,
)
app.add_typer(models, name="models")


@models.callback()
def models_list(
    ctx: typer.Context,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """List every model: family, hub id, Modal GPU, rough cost per generated minute, cached here."""
    if ctx.invoked_subcommand is not None:
        return
    from muse_cli import ui as ui_mod
    from muse_cli.ops.catalog import MODELS

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    rows = [dict(entry.as_dict(), cached=_cached(entry.hub_id)) for entry in MODELS]
    if json_out:
        for row in rows:
            ui.print_json(row)
        return
    from rich.table import Table

    table = Table(title="muse models (cost: rough USD per generated minute on Modal)", title_justify="left")
    for column in ("name", "family", "hub id", "gpu", "~$/min", "cached", "notes"):
        table.add_column(column, no_wrap=column in ("name", "hub id"))
    for row in rows:
        table.add_row(
            row["name"], row["family"], row["hub_id"], row["gpu"], f"{row['usd_per_min']:.3f}",
            "yes" if row["cached"] else "-", row["notes"],
        )
    ui.rich(table)
    for row in rows:
        ui.stdout.write(f"{row['name']}\n")


def _cached(hub_id: str) -> bool:
    if hub_id.startswith("pypi:"):
        from muse_cli.music.transcribe import model_path

        return model_path() is not None
    if "/" not in hub_id:
        return hub_id == "built-in"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


@models.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name from `muse models` (e.g. small, midi-llm, transcription) or a hub id.")],
    force: Annotated[bool, typer.Option("--force", help="Download again even when a copy is already there.")] = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Download a model's weights for --backend local (Hub models into the Hugging Face cache)."""
    from muse_cli import ui as ui_mod
    from muse_cli.ops.catalog import by_name
    from muse_cli.errors import InputError, MuseError, RuntimeFailure

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    entry = by_name(name)
    hub_id = entry.hub_id if entry else name
    if entry is not None and entry.family == "transcription":
        _pull_transcription(ui, force)
        return
    if hub_id == "built-in":
        raise InputError(f"{name!r} is built in: nothing to download")
    if hub_id == "user-checkpoint":
        raise InputError(f"{name!r} has no public weights", hint="bring your own checkpoint: muse models upload piano FILE")
    if "/" not in hub_id:
        raise InputError(f"unknown model {name!r}: see `muse models` for names, or give a hub id like org/name")
    from muse_cli.ops import hub

    why = hub.why_offline()
    if why is not None:
        raise RuntimeFailure(f"cannot download {hub_id}: {why}", hint="connect to the internet, or use --backend modal")
    with ui.progress(f"downloading {hub_id}"):
        try:
            if entry is not None and entry.family == "musicgen":
                from muse_cli.engines.musicgen import pull  # only the weight files the engine loads

                path = str(pull(entry.name))
            else:
                from huggingface_hub import snapshot_download

                path = snapshot_download(hub_id)
        except MuseError:
            raise
        except Exception as exc:  # network, auth, missing repo: all end the same way for the user
            raise RuntimeFailure(
                f"could not download {hub_id}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="check the network (and HF_TOKEN for gated models), or use --backend modal",
            ) from None
    ui.result([path], {"model": name, "hub_id": hub_id, "path": path})


def _pull_transcription(ui, force: bool) -> None:
    """basic-pitch's nmp.onnx: the installed package's copy when there is one, else the verified download."""
    from muse_cli.ops import cache
    from muse_cli.music.transcribe import model_path

    present = model_path()
    if present is not None and not force:
        ui.info(f"the transcription model is already here: {present}")
    else:
        source = cache.transcription_source()
        with ui.progress("downloading the transcription model (basic-pitch 0.4.0 wheel)", total=source.size) as progress:
            present = cache.fetch_wheel_model(source, progress)
        ui.info(f"verified (sha256 {source.member_sha256[:12]}...) and saved: {present}")
    ui.result([str(present)], {"model": "transcription", "path": str(present), "sha256": cache.sha256_file(present)})


@models.command("list")
def models_cached(
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """What is cached on this machine: each model's name, size and folder (muse models rm NAME frees it)."""
    from muse_cli.ops import cache
    from muse_cli import ui as ui_mod

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    found = cache.entries()
    if json_out:
        for item in found:
            ui.print_json(item.as_dict())
        return
    from rich.table import Table

    table = Table(title=f"cached models ({cache.human_size(sum(i.size for i in found))} in all)", title_justify="left")
    for column in ("name", "kind", "size", "where"):
        table.add_column(column, no_wrap=column != "where", justify="right" if column == "size" else "left")
    for item in found:
        table.add_row(item.name, item.kind, cache.human_size(item.size), str(item.path))
    ui.rich(table)
    if not found:
        ui.info("nothing cached yet: muse models pull NAME downloads a model")
    for item in found:
        ui.stdout.write(f"{item.name}\t{item.size}\t{item.path}\n")


@models.command("rm")
def models_rm(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Cached model names as `muse models list` shows them.", show_default=False)],
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Remove without asking (needed when not on a terminal).")] = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Remove cached models by name, like `hf cache delete`: only the folders muse lists, nothing by pattern."""
    import sys

    from muse_cli.ops import cache
    from muse_cli import ui as ui_mod
    from muse_cli.errors import InputError

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    chosen = []
    for name in names:
        item = cache.find(name)
        if item is None:
            raise InputError(f"{name!r} is not cached: see `muse models list`")
        chosen.append(item)
    total = sum(i.size for i in chosen)
    if not yes:
        if json_out or not sys.stdin.isatty():
            raise InputError("muse models rm deletes files: add --yes to confirm when not on a terminal")
        import typer as _typer

        listed = ", ".join(f"{i.name} ({cache.human_size(i.size)})" for i in chosen)
        if not _typer.confirm(f"remove {listed}?", err=True):
            ui.info("nothing removed")
            return
    for item in chosen:
        cache.remove(item)
        ui.info(f"removed {item.name}: {cache.human_size(item.size)} freed ({item.path})")
        ui.result([str(item.path)], {**item.as_dict(), "removed": True})
    if len(chosen) > 1:
        ui.info(f"{cache.human_size(total)} freed in all")


@models.command("upload")
def models_upload(
    kind: Annotated[str, typer.Argument(help="What the checkpoint is for: piano.")],
    path: Annotated[Path, typer.Argument(help="Checkpoint file (.msgpack or .safetensors; pickle needs --trust-checkpoint).")],
    name: Annotated[Optional[str], typer.Option(help="Name on the Volume (default: the file name).", show_default=False)] = None,
    trust_checkpoint: o.TrustCheckpoint = False,
    force: o.Force = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Check a checkpoint here, then upload it to the muse weights Volume on Modal."""
    from muse_cli import ui as ui_mod

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    _check_piano_file(kind, path, "uploaded")
    from muse_cli.engines.piano import validate_checkpoint

    fmt = validate_checkpoint(path, trust=trust_checkpoint)  # wrong shapes or pickle: exit 2 before upload
    from muse_cli.backends.modal import upload_to_volume

    remote_path = upload_to_volume(path, f"piano/{name or path.name}", force=force)
    ui.info(f"uploaded {path.name} ({fmt}) to the muse-weights Volume at {remote_path}")
    ui.result([remote_path], {"kind": kind, "format": fmt, "volume_path": remote_path})


@models.command("convert")
def models_convert(
    kind: Annotated[str, typer.Argument(help="What the checkpoint is for: piano.")],
    source: Annotated[Path, typer.Argument(help="Checkpoint to read: pickle (needs --trust-checkpoint), Flax msgpack or safetensors.")],
    target: Annotated[Path, typer.Argument(help="File to write: .safetensors or .msgpack (the format follows the suffix).")],
    trust_checkpoint: o.TrustCheckpoint = False,
    force: o.Force = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Rewrite a checkpoint in a safe format, checked against its layout: unpickle once, then load safely.

    Example: muse models convert piano final_finetuned_model.pkl percepiano-ast.safetensors --trust-checkpoint
    """
    from muse_cli import ui as ui_mod

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    _check_piano_file(kind, source, "converted")
    from muse_cli.engines.piano import convert_checkpoint

    checkpoint, written = convert_checkpoint(source, target, trust=trust_checkpoint, force=force)
    c = checkpoint.config
    ui.info(f"converted {source.name} ({checkpoint.format}, {c.layout} layout, {c.depth} layers x {c.dim}) to {written}")
    ui.result([str(written)], {
        "kind": kind, "source": str(source), "source_format": checkpoint.format, "layout": c.layout,
        "path": str(written), "format": written.suffix.lstrip("."), "config": checkpoint.meta.to_dict(),
    })


def _check_piano_file(kind: str, path: Path, verb: str) -> None:
    """Only piano checkpoints are uploaded or converted, and the file must exist: exit 2 otherwise."""
    from muse_cli.errors import InputError

    if kind != "piano":
        raise InputError(f"unknown checkpoint kind {kind!r}: only 'piano' takes {verb} checkpoints")
    if not path.is_file():
        raise InputError(f"checkpoint {str(path)!r}: no such file")

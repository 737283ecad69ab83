"""`muse models`: what models exist, what they cost, and getting weights where they are needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from muse_cli.cli import app
from muse_cli.cli import options as o

models = typer.Typer(help="List models with GPU and rough cost; pull weights; convert and upload checkpoints.", invoke_without_command=True)
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
    from muse_cli.catalog import MODELS

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
    if "/" not in hub_id:
        return hub_id == "built-in"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


@models.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name from `muse models` (e.g. small, midi-llm) or a hub id.")],
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Download a model's weights into the Hugging Face cache for --backend local."""
    from muse_cli import ui as ui_mod
    from muse_cli.catalog import by_name
    from muse_cli.errors import InputError, MuseError, RuntimeFailure

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    entry = by_name(name)
    hub_id = entry.hub_id if entry else name
    if hub_id == "built-in":
        raise InputError(f"{name!r} is built in: nothing to download")
    if hub_id == "user-checkpoint":
        raise InputError(f"{name!r} has no public weights", hint="bring your own checkpoint: muse models upload piano FILE")
    if "/" not in hub_id:
        raise InputError(f"unknown model {name!r}: see `muse models` for names, or give a hub id like org/name")
    from muse_cli import hub

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


@models.command("upload")
def models_upload(
    kind: Annotated[str, typer.Argument(help="What the checkpoint is for: piano.")],
    path: Annotated[Path, typer.Argument(help="Checkpoint file (.msgpack or .safetensors; pickle needs --trust-checkpoint).")],
    name: Annotated[Optional[str], typer.Option(help="Name on the Volume (default: the file name).", show_default=False)] = None,
    trust_checkpoint: Annotated[bool, typer.Option("--trust-checkpoint", help="Allow a pickle checkpoint (runs code from the file!).")] = False,
    force: o.Force = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Check a checkpoint here, then upload it to the muse weights Volume on Modal."""
    from muse_cli import ui as ui_mod
    from muse_cli.errors import InputError

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    if kind != "piano":
        raise InputError(f"unknown checkpoint kind {kind!r}: only 'piano' takes uploaded checkpoints")
    if not path.is_file():
        raise InputError(f"checkpoint {str(path)!r}: no such file")
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
    trust_checkpoint: Annotated[bool, typer.Option("--trust-checkpoint", help="Allow a pickle checkpoint (runs code from the file!).")] = False,
    force: o.Force = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Rewrite a checkpoint in a safe format, checked against its layout: unpickle once, then load safely.

    Example: muse models convert piano final_finetuned_model.pkl percepiano-ast.safetensors --trust-checkpoint
    """
    from muse_cli import ui as ui_mod
    from muse_cli.errors import InputError

    ui = ui_mod.set_current(ui_mod.UI(json=json_out, quiet=quiet, debug=debug))
    if kind != "piano":
        raise InputError(f"unknown checkpoint kind {kind!r}: only 'piano' takes converted checkpoints")
    if not source.is_file():
        raise InputError(f"checkpoint {str(source)!r}: no such file")
    from muse_cli.engines.piano import convert_checkpoint

    checkpoint, written = convert_checkpoint(source, target, trust=trust_checkpoint, force=force)
    c = checkpoint.config
    ui.info(f"converted {source.name} ({checkpoint.format}, {c.layout} layout, {c.depth} layers x {c.dim}) to {written}")
    ui.result([str(written)], {
        "kind": kind, "source": str(source), "source_format": checkpoint.format, "layout": c.layout,
        "path": str(written), "format": written.suffix.lstrip("."), "config": checkpoint.meta.to_dict(),
    })

"""The muse command line: Typer commands that parse, call, and report.

Commands live one per module and import nothing heavy at module level, so `muse --help` stays
fast. Errors from every command are caught once, in `main`, and printed as one line.
"""

from __future__ import annotations

import sys

import typer

from muse_cli import __version__

from typer.core import TyperCommand, TyperGroup

# The order a newcomer meets the commands in: make, study, convert, scale out, set up, serve.
ORDER = ("gen", "analyze", "render", "batch", "models", "doctor", "deploy", "serve")


class _Ordered(TyperGroup):
    def list_commands(self, ctx):  # noqa: D102  (click's public hook for the listing order)
        names = list(self.commands)
        return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), names.index(n)))


app = typer.Typer(
    name="muse",
    cls=_Ordered,
    help="Generate and analyze music with real models, on Modal GPUs or on this machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help renderer alone would triple start-up time
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
)
gen = typer.Typer(help="Generate music: MIDI, audio, songs.", no_args_is_help=True, cls=_Ordered)
app.add_typer(gen, name="gen")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"muse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """muse: generate and analyze music. Results go to stdout, everything else to stderr.

    Exit codes: 0 ok, 1 runtime failure, 2 bad usage or input, 130 interrupted.
    """


def _register() -> None:
    # Each module adds its commands to `app` / `gen`; they import only typer at module level.
    from muse_cli.cli import analyze, batch, deploy, doctor, gen_audio, gen_midi, gen_song, models, render, serve  # noqa: F401


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map every failure to one line and an exit code."""
    sys.exit(int(run(argv if argv is not None else sys.argv[1:])))


def run(argv: list[str]) -> int:
    from muse_cli.errors import ExitCode, MuseError

    try:
        command = typer.main.get_command(app)
        humanize(command)
        rv = command(args=argv, prog_name="muse", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else ExitCode.OK
    except MuseError as exc:
        ui = _ui()
        if ui.debug:
            import traceback

            traceback.print_exc()
        ui.error(exc.message, exc.hint)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        done = _ui().finished
        # One line a script can rely on; what finished is already on stdout, complete.
        _ui().error(f"interrupted: {done} finished result{'s' if done != 1 else ''} listed on stdout, nothing half-written"
                    if done else "interrupted: nothing finished, nothing half-written")
        return ExitCode.INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        # A closed pipe (`muse ... | head`) is not an error of ours.
        return ExitCode.OK
    except Exception as exc:
        ui = _ui()
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            # `muse` or `muse gen` alone: the help, as it is, on stderr (stdout is for results).
            ui.stderr.write(ctx.get_help() + "\n")
            return ExitCode.USAGE
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            # Typer's usage errors (unknown option, missing argument): one line and where to look.
            where = f"{ctx.command_path} --help" if ctx is not None else "muse --help"
            ui.error(" ".join(exc.format_message().split()), f"see `{where}`")
            return ExitCode.USAGE if exc.exit_code == 2 else int(exc.exit_code)
        if ui.debug:
            import traceback

            traceback.print_exc()
        message = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ui.error(message, "rerun with --debug for the traceback, and report it")
        return ExitCode.FAILURE
    finally:
        ui_module = sys.modules.get("muse_cli.ui")
        if ui_module is not None:
            ui_module.release()


# Metavars people read: `--out-dir DIR`, not `--out-dir <path>`; by parameter name where the
# name says more than the type, else the name itself in capitals.
METAVARS = {
    "out_dir": "DIR", "storage_dir": "DIR", "output": "FILE", "soundfont": "FILE", "melody": "FILE",
    "continuation": "FILE", "lyrics": "FILE|-", "prompts_file": "FILE|-", "checkpoint": "FILE|NAME",
    "duration": "SECONDS", "max_duration": "SECONDS", "timeout": "SECONDS", "extend_stride": "SECONDS",
    "tempo": "BPM", "seed": "N", "count": "N", "concurrency": "N", "retries": "N", "bars": "N", "hands": "1|2",
    "steps": "N", "max_tokens": "N", "top_k": "K", "top_p": "P", "port": "PORT", "host": "ADDRESS",
    "time_signature": "N/N", "target_lufs": "LUFS", "minimum_note_length": "MS", "sample_rate": "HZ",
    "cors_origin": "ORIGIN", "image": "NAME", "model": "MODEL", "token_env": "VAR", "fmt": "FORMAT",
    "audio_format": "FORMAT", "default_model": "MODEL",
}


def _argument_name(param) -> str:
    name = (param.metavar or param.name.upper()).removesuffix("...")
    return name + ("..." if param.nargs != 1 else "")


class _Command(TyperCommand):
    """Usage and arguments as people write them: `FILE_OR_FOLDER...`, `[PROMPT]`, no type names."""

    def collect_usage_pieces(self, ctx):  # click's public hook for the usage line
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx, formatter):  # click's public hook for the argument and option lists
        args = [(_argument_name(p), p.help or "") for p in self.get_params(ctx)
                if p.param_type_name == "argument" and not p.hidden]
        opts = [r for p in self.get_params(ctx) if p.param_type_name == "option" for r in [p.get_help_record(ctx)] if r]
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


def humanize(command) -> None:
    """Person-readable metavars and usage for every command (walks the tree once, imports nothing)."""
    if type(command) is TyperCommand:
        command.__class__ = _Command
    for param in command.params:
        if param.metavar is not None:
            continue
        if param.param_type_name == "option" and not getattr(param, "is_flag", False):
            param.metavar = METAVARS.get(param.name, param.name.upper())
        elif param.param_type_name == "argument":
            param.metavar = param.name.upper() + ("..." if param.nargs == -1 else "")
    for sub in getattr(command, "commands", {}).values():
        humanize(sub)


def _ui():
    """The running command's UI (its --json/--quiet/--debug), imported only when there is an error."""
    from muse_cli import ui

    return ui.current()

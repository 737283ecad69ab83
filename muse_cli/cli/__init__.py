"""The muse command line: Typer commands that parse, call, and report.

Commands live one per module and import nothing heavy at module level, so `muse --help` stays
fast. Errors from every command are caught once, in `main`, and printed as one line.
"""

from __future__ import annotations

import sys

import typer

from muse_cli import __version__

app = typer.Typer(
    name="muse",
    help="Generate and analyze music with real models, on Modal GPUs or on this machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help renderer alone would triple start-up time
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)
gen = typer.Typer(help="Generate music: MIDI, audio, songs.", no_args_is_help=True)
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
        rv = app(args=argv, prog_name="muse", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else ExitCode.OK
    except MuseError as exc:
        ui = _ui()
        if ui.debug:
            import traceback

            traceback.print_exc()
        ui.error(exc.message, exc.hint)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _ui().error("interrupted")
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


def _ui():
    """The running command's UI (its --json/--quiet/--debug), imported only when there is an error."""
    from muse_cli import ui

    return ui.current()

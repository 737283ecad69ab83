"""Options that would be silently ignored are refused instead: exit 2, naming the conflict.

Which options the user typed (not defaults, not environment variables) comes from the command's
`typer.Context` (`get_parameter_source`), so `$MUSE_OUT_DIR` never conflicts with an explicit `-o`.
tests/test_options.py walks every command's options and holds each to this: it has an effect,
or the combination that would ignore it exits 2.
"""

from __future__ import annotations

import os
from pathlib import Path


def typed(ctx, param: str) -> bool:
    """Did the user give `param` (the function parameter's name) on the command line?"""
    source = ctx.get_parameter_source(param) if ctx is not None else None
    return source is not None and source.name in ("COMMANDLINE", "PROMPT")


def refuse(message: str) -> None:
    from muse_cli.errors import InputError

    raise InputError(message)


def needs(ctx, option: str, param: str, requirement: str, present: bool) -> None:
    """`option` means nothing unless `requirement` holds: refuse it alone."""
    if typed(ctx, param) and not present:
        refuse(f"{option} {requirement}")


def output_in_out_dir(ctx, output: str | None, out_dir: Path | None) -> str | Path | None:
    """-o FILE with --out-dir DIR: a relative FILE goes into DIR (as yt-dlp's -o inside -P).

    An absolute FILE and a typed --out-dir name two different places: refused. (An absolute FILE
    with only $MUSE_OUT_DIR set is fine: the environment is a default, -o the user's choice.)
    """
    if output is None or out_dir is None:
        return output
    out = Path(output).expanduser()
    if out.is_absolute():
        if typed(ctx, "out_dir"):
            refuse(f"-o/--output {str(output)!r} is an absolute path and --out-dir names another folder: give one of them")
        return out
    joined = str(Path(out_dir).expanduser() / out)
    return joined + os.sep if str(output).endswith(("/", os.sep)) else joined  # `-o takes/` stays a folder


def not_with(ctx, given: str, options: dict[str, str], why: str) -> None:
    """Refuse any of `options` ({param: "--flag"}) typed together with `given`."""
    clash = [flag for param, flag in options.items() if typed(ctx, param)]
    if clash:
        refuse(f"{' and '.join(clash)} {'does' if len(clash) == 1 else 'do'} not apply with {given}: {why}")


def precision_on(backend: str | None, precision: str) -> None:
    """--precision: a known name, and fp32 and int8 only where they run (refused for Modal before anything
    is sent: its GPUs run bf16)."""
    from muse_cli.backends import choose
    from muse_cli.engines.precision import check, check_remote

    check(precision)
    if choose(backend) == "modal":
        check_remote(precision)

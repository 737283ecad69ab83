"""Option types shared by every command: one name, one help text, everywhere."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

# A str, not a Path: Path("new/") drops the trailing slash that makes `-o new/` a folder.
Output = Annotated[Optional[str], typer.Option("-o", "--output", help="Output file; its stem names the sidecar, its extension the format. A trailing / names a folder.", show_default=False)]
OutDir = Annotated[Optional[Path], typer.Option("--out-dir", envvar="MUSE_OUT_DIR", help="Folder for outputs (created if missing). [env: MUSE_OUT_DIR]", show_default=False, show_envvar=False)]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing files instead of picking a free name.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed (0..4294967295); the seed used is always recorded.", show_default=False)]
Count = Annotated[int, typer.Option("-n", "--count", help="Number of results to generate.")]
Backend = Annotated[str, typer.Option("--backend", envvar="MUSE_BACKEND", help="auto (modal when Modal credentials exist, else local), modal or local. [env: MUSE_BACKEND]", show_envvar=False)]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object per result on stdout.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress or notes on stderr; only results and errors.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
TrustCheckpoint = Annotated[bool, typer.Option("--trust-checkpoint", help="Allow a pickle checkpoint (runs code from the file!).")]
Precision = Annotated[str, typer.Option("--precision", help="Model weights: auto (int8 on a CPU, bf16 on a GPU), fp32, bf16, or int8 (CPU only). Modal GPUs run auto/bf16.")]

SHARED = {
    "count": (Count, 1), "seed": (Seed, None), "output": (Output, None), "out_dir": (OutDir, None),
    "force": (Force, False), "backend": (Backend, "auto"), "precision": (Precision, "auto"), "json_out": (Json, False), "quiet": (Quiet, False),
    "debug": (Debug, False),
}
GEN = ("count", "seed", "output", "out_dir", "force", "backend", "precision", "json_out", "quiet", "debug")
"""The shared options of the three `gen` commands, in the order --help lists them."""


@dataclass(frozen=True)
class Shared:
    """The shared options a command was given, and its UI (already the current one)."""

    ui: Any
    count: int = 1
    seed: Optional[int] = None
    output: Optional[str] = None
    out_dir: Optional[Path] = None
    force: bool = False
    backend: str = "auto"
    precision: str = "auto"
    json_out: bool = False
    quiet: bool = False
    debug: bool = False


def shared(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared options `names`, each defined once above, after its own options.

    The command takes them as one keyword, `shared: Shared`, with its UI set up from --json,
    --quiet and --debug, so no command repeats the list or the UI set-up. A command that defines
    one of `names` itself (gen song's seed) keeps its own, in the shared option's place.
    """

    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(command, eval_str=True).parameters
        params = [p for name, p in own.items() if name not in names and name != "shared"]
        for name in names:
            annotation, default = SHARED[name]
            params.append(own.get(name) or inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default))
        keep = [name for name in names if name in own]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            from muse_cli import ui as ui_mod

            given = {name: kwargs.pop(name) for name in names if name not in keep}
            ui = ui_mod.set_current(ui_mod.UI(json=given.get("json_out", False), quiet=given.get("quiet", False),
                                              debug=given.get("debug", False)))
            return command(**kwargs, shared=Shared(ui, **given))

        run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params])
        return run

    return wrap

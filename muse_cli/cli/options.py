"""Option types shared by every command: one name, one help text, everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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

"""Does every Modal image resolve? `muse deploy --check` and scripts/check_images.py.

For each image in remote/images.py the pinned set is resolved by pip against the package index
for the image's Python on Linux x86_64 (`pip install --dry-run --report` with `--python-version`,
`--platform` and binary wheels only), the way the image build will resolve it, without building
anything. Reported per image: conflicts (pip's own explanation), pins with no binary wheel (built
here, on the same Python and architecture, to tell pure-Python source from "needs a compiler"),
packages from git (and whether pinned to a commit), and what `--no-deps` packages declare that the
image does not provide. Needs the package index; no Modal credentials.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_INDEX = "https://pypi.org/simple"
GLIBC_MINOR = 36
"""Modal's debian_slim is Debian bookworm (glibc 2.36): any manylinux tag up to 2_36 installs."""
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 4, -1)),
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64",
)
RESOLVE_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 600
MAX_BUILD_ROUNDS = 16
COMPILERS = frozenset({"build-essential", "gcc", "g++", "clang"})
_COMMIT = re.compile(r"@([0-9a-fA-F]{40})(?:#.*)?$")
_MISSING = re.compile(r"No matching distribution found for (.+?)(?:\s+\(from [^)]*\))?\s*$", re.MULTILINE)
_KEY_PACKAGES = ("torch", "transformers", "huggingface-hub", "diffusers", "vllm", "jax", "flax", "numpy", "fastapi")


@dataclass
class ImageReport:
    image: str
    python: str
    pins: int
    resolved: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    conflicts: list[str] = field(default_factory=list)  # pip's error lines
    built: list[dict[str, str]] = field(default_factory=list)  # {"requirement", "wheel", "kind"}
    git: list[dict[str, Any]] = field(default_factory=list)  # {"requirement", "commit", "pinned"}
    no_deps: list[dict[str, Any]] = field(default_factory=list)  # {"requirement", "unmet": [...]}
    unchecked_commands: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        needs_compiler = any(b["kind"] != "pure Python" for b in self.built)
        unpinned_git = any(not g["pinned"] for g in self.git)
        return not self.conflicts and not needs_compiler and not unpinned_git and bool(self.resolved)

    def key_versions(self) -> dict[str, str]:
        return {k: self.resolved[k] for k in _KEY_PACKAGES if k in self.resolved}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "resolved_count": len(self.resolved)}


def git_commit(requirement: str) -> str | None:
    """The 40-hex commit a `name @ git+URL@<commit>` requirement is pinned to, else None."""
    match = _COMMIT.search(requirement.strip())
    return match.group(1).lower() if match else None


def is_git(requirement: str) -> bool:
    return "git+" in requirement


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip_env() -> dict[str, str]:
    """Only the index the image build will use: no local wheel folders or mirrors from config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for keep in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


def _index_args(spec: Any) -> list[str]:
    args = ["--index-url", spec.index_url or DEFAULT_INDEX]
    if spec.extra_index_url:
        args += ["--extra-index-url", spec.extra_index_url]
    return args


def _target_args(python: str, extra_platforms: tuple[str, ...] = ()) -> list[str]:
    args = ["--python-version", python, "--implementation", "cp"]
    for platform in (*PLATFORMS, *extra_platforms):
        args += ["--platform", platform]
    return args


def _resolve(
    spec: Any, requirements: list[str], work: Path, *, no_deps: bool = False, find_links: Path | None = None,
    extra_platforms: tuple[str, ...] = (),
) -> tuple[dict[str, Any] | None, str]:
    """One pip dry run; (report or None, pip's stderr)."""
    report = work / f"report-{os.urandom(4).hex()}.json"
    cmd = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
        "--target", str(work / "target"), "--only-binary=:all:",
        *_target_args(spec.python, extra_platforms), *_index_args(spec),
    ]
    if no_deps:
        cmd.append("--no-deps")
    if find_links is not None:
        cmd += ["--find-links", str(find_links)]
    proc = subprocess.run(cmd + requirements, check=False, capture_output=True, text=True, env=_pip_env(), timeout=RESOLVE_TIMEOUT_S)
    if proc.returncode != 0 or not report.exists():
        return None, proc.stderr
    return json.loads(report.read_text()), proc.stderr


def _build_wheel(spec: Any, requirement: str, wheels: Path) -> tuple[str | None, str]:
    """Build `requirement` from source here (Linux x86_64 too) -> (wheel file name, error)."""
    before = set(wheels.glob("*.whl"))
    cmd = [
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-binary", ":all:",
        "--wheel-dir", str(wheels), *_index_args(spec), requirement,
    ]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=_pip_env(), timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"build took over {BUILD_TIMEOUT_S} s"
    new = sorted(set(wheels.glob("*.whl")) - before)
    if proc.returncode != 0 or not new:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if re.search(r"[A-Za-z]{3}", ln)]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines
        return None, (errors[-1] if errors else f"pip wheel exited {proc.returncode}")[:300]
    return new[0].name, ""


def _conflict_lines(stderr: str) -> list[str]:
    """pip's explanation of a failed resolution, without its generic advice."""
    keep = []
    for line in stderr.splitlines():
        text = line.strip()
        if not text or text.startswith(("WARNING:", "To fix this", "1. ", "2. ", "3. ", "To fix", "ERROR: ResolutionImpossible")):
            continue
        if text.startswith("[notice]") or "pip.pypa.io" in text or "Ignored the following versions" in text:
            continue
        keep.append(text)
    return keep


def _unmet(declared: list[str], resolved: dict[str, str]) -> list[str]:
    """Requirements a --no-deps package declares that the resolved image does not satisfy."""
    from packaging.requirements import InvalidRequirement, Requirement

    unmet = []
    for text in declared:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": "", "python_version": "3.11",
                                                               "sys_platform": "linux", "platform_system": "Linux",
                                                               "platform_machine": "x86_64"}):
            continue
        have = resolved.get(_canonical(req.name))
        if have is None or (req.specifier and not req.specifier.contains(have, prereleases=True)):
            unmet.append(f"{text} (image has {have or 'none'})")
    return unmet


def _resolve_building(
    spec: Any, requirements: list[str], work: Path, report: ImageReport, *, no_deps: bool = False
) -> dict[str, Any] | None:
    """Resolve; each pin pip finds no wheel for is built here and the resolve retried with it."""
    wheels = work / "wheels"
    wheels.mkdir(exist_ok=True)
    has_compiler = bool(COMPILERS & set(spec.apt))
    extra_platforms: tuple[str, ...] = ()
    for _ in range(MAX_BUILD_ROUNDS):
        resolved, stderr = _resolve(spec, requirements, work, no_deps=no_deps, find_links=wheels,
                                    extra_platforms=extra_platforms)
        if resolved is not None:
            return resolved
        missing = _MISSING.findall(stderr)
        if not missing:
            report.conflicts += _conflict_lines(stderr) or ["pip failed without an explanation"]
            return None
        requirement = missing[0].strip()
        wheel, error = _build_wheel(spec, requirement, wheels)
        if wheel is None:
            report.built.append({"requirement": requirement, "wheel": "", "kind": f"needs a compiler or fails to build: {error}"})
            report.conflicts += _conflict_lines(stderr)
            return None
        pure = wheel.endswith("-none-any.whl")
        kind = "pure Python" if pure else ("needs a compiler (image has one)" if has_compiler else "needs a compiler")
        report.built.append({"requirement": requirement, "wheel": wheel, "kind": kind})
        if not pure:
            extra_platforms = ("linux_x86_64",)  # the locally built wheel's tag
    report.conflicts.append(f"gave up after building {MAX_BUILD_ROUNDS} source distributions")
    return None


def check_image(spec: Any) -> ImageReport:
    import time

    started = time.monotonic()
    report = ImageReport(spec.name, spec.python, len(spec.every_pin))
    for req in spec.every_pin:
        if is_git(req):
            commit = git_commit(req)
            report.git.append({"requirement": req, "commit": commit, "pinned": commit is not None})
    report.unchecked_commands = [c for c in spec.commands if re.search(r"\bpip\b.*\binstall\b", c)]
    with tempfile.TemporaryDirectory(prefix=f"muse-check-{spec.name}-") as tmp:
        work = Path(tmp)
        # A git requirement cannot be resolved from the index; with its deps pinned in the image and
        # itself under no_deps (as ACE-Step is), nothing is left unresolved.
        resolved = _resolve_building(spec, [r for r in spec.all_packages if not is_git(r)], work, report)
        if resolved is not None:
            report.resolved = {_canonical(i["metadata"]["name"]): i["metadata"]["version"]
                               for i in resolved.get("install", [])}
            for req in spec.no_deps:
                entry: dict[str, Any] = {"requirement": req, "unmet": []}
                if not is_git(req):
                    nd = _resolve_building(spec, [req], work, report, no_deps=True)
                    for item in (nd or {}).get("install", []):
                        report.resolved.setdefault(_canonical(item["metadata"]["name"]), item["metadata"]["version"])
                        entry["unmet"] = _unmet(item["metadata"].get("requires_dist") or [], report.resolved)
                report.no_deps.append(entry)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def check_images(
    names: list[str] | None = None, jobs: int = 4, on_done: Callable[[ImageReport], None] | None = None
) -> list[ImageReport]:
    """Check the named images (default: all), `jobs` at a time; reports in declaration order."""
    from muse_cli.ops.deploy import _import_remote
    from muse_cli.errors import InputError

    _import_remote()
    from remote.images import IMAGES

    chosen = list(IMAGES) if not names else names
    unknown = [n for n in chosen if n not in IMAGES]
    if unknown:
        raise InputError(f"unknown image {unknown[0]!r}: choose from {', '.join(IMAGES)}")

    def one(name: str) -> ImageReport:
        result = check_image(IMAGES[name])
        if on_done is not None:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, chosen))


def render(report: ImageReport) -> Any:
    """A rich table for one image."""
    from rich.table import Table

    status = "[green]resolves[/green]" if report.ok else "[bold red]FAILS[/bold red]"
    table = Table(title=f"image {report.image} (Python {report.python}, linux x86_64): {status}",
                  title_justify="left", show_header=True)
    table.add_column("check")
    table.add_column("result", overflow="fold")
    versions = ", ".join(f"{k} {v}" for k, v in report.key_versions().items())
    table.add_row("pins", str(report.pins))
    table.add_row("resolved", f"{len(report.resolved)} packages" + (f" ({versions})" if versions else ""))
    table.add_row("conflicts", "\n".join(report.conflicts) or "none")
    table.add_row("no binary wheel", "\n".join(f"{b['requirement']}: {b['kind']}" for b in report.built) or "none")
    table.add_row("from git", "\n".join(
        f"{g['requirement'].split(' @ ')[0]}: " + (f"pinned to commit {g['commit'][:12]}" if g["pinned"] else "NOT pinned to a commit")
        for g in report.git) or "none")
    table.add_row("--no-deps", "\n".join(
        f"{n['requirement'].split(' @ ')[0]}: " + ("declared deps all met" if not n["unmet"] else
                                                  f"{len(n['unmet'])} declared deps overridden: " + "; ".join(n["unmet"]))
        for n in report.no_deps) or "none")
    if report.unchecked_commands:
        table.add_row("not checked", "\n".join(report.unchecked_commands))
    table.add_row("time", f"{report.seconds:.0f} s")
    return table


def run(names: list[str] | None = None, jobs: int = 4) -> list[ImageReport]:
    """The command: tables (or JSON) through the current UI; raises when any image fails."""
    from muse_cli import ui as ui_mod
    from muse_cli.errors import RuntimeFailure

    ui = ui_mod.current()
    with ui.progress("resolving every image's pins against the package index"):
        reports = check_images(names, jobs=jobs)
    if ui.json:
        ui.print_json({"images": [r.as_dict() for r in reports], "ok": all(r.ok for r in reports)})
    else:
        for r in reports:
            ui.rich(render(r))
    failed = [r.image for r in reports if not r.ok]
    if failed:
        raise RuntimeFailure(f"{len(failed)} image(s) would not build: {', '.join(failed)}",
                             hint="fix the pins in remote/ and run muse deploy --check again")
    return reports

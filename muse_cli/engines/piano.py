"""The piano perceptual model: PercePiano's 19 dimensions from log-mel segments.

Three parts, usable apart:
- `preprocess` turns audio into 128x128 log-mel segments (librosa, runs on the caller's machine, so
  only the segments travel to the GPU);
- checkpoint reading and `validate_checkpoint` (numpy and safetensors; flax only for msgpack files);
- `PianoEngine`, which runs the Flax Audio Spectrogram Transformer of `piano_ast` on a loaded
  checkpoint. No trained weights are public, so there is no default download: without a checkpoint
  `load()` fails with a hint, and nothing ever scores with weights that were not loaded.

jax, flax and librosa are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from muse_cli.contracts import PIANO_DIMENSIONS, PIANO_SEGMENT_SHAPE, PianoRequest, PianoResult
from muse_cli.errors import InputError, RuntimeFailure, Unavailable
from muse_cli.progress import ProgressFn, null_progress

SAMPLE_RATE = 22050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS, SEGMENT_FRAMES = PIANO_SEGMENT_SHAPE
TOP_DB = 80.0
DEFAULT_HOP_FRAMES = 32

DEFAULT_CHECKPOINT = "percepiano-ast"
"""Name looked up in the checkpoint folders (the Volume's piano/ folder on Modal)."""

CHECKPOINT_SUFFIXES = (".msgpack", ".safetensors")
Format = Literal["msgpack", "safetensors", "pickle"]

NO_CHECKPOINT_HINT = (
    "no trained piano weights are public: give your own checkpoint (Flax msgpack or safetensors) "
    "with --checkpoint PATH, or upload it once with `muse models upload piano PATH`; see docs/piano-model.md"
)


# ------------------------------------------------------------------------------ preprocessing


def log_mel(audio: np.ndarray, sr: int) -> np.ndarray:
    """[n_mels, frames] float32 log-mel in dB relative to the piece's loudest bin (0 dB), floor -80 dB."""
    import librosa

    mono = _mono(audio, sr)
    if sr != SAMPLE_RATE:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=SAMPLE_RATE)
    peak = float(np.abs(mono).max())
    if peak > 0:  # CrescendAI's dataset code peak-normalises before the mel (percepiano_dataset.py line 188)
        mono = mono / peak
    power = librosa.feature.melspectrogram(
        y=mono, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, power=2.0
    )
    if float(power.max()) <= 1e-10:
        # power_to_db(ref=max) would call pure silence 0 dB (the loudest level): give it the floor.
        return np.full(power.shape, -TOP_DB, dtype=np.float32)
    return librosa.power_to_db(power, ref=np.max, top_db=TOP_DB).astype(np.float32)


def segment(mel: np.ndarray, hop_frames: int = DEFAULT_HOP_FRAMES) -> np.ndarray:
    """Cut [n_mels, frames] into [n, n_mels, 128] windows starting every hop_frames frames.

    Exactly as CrescendAI's dataset code makes the segments its model was trained on
    (piano-perception-transformer, src/datasets/percepiano_dataset.py, `_create_segments`, lines
    247-268): whole windows only, starting at 0, hop, 2 hop, ... while they fit, so the last
    frames after the last whole window (less than one hop) are not scored; a piece shorter than one
    segment gives one segment padded at the end with 0.0 (its `np.pad(..., mode="constant")`).
    """
    if not 1 <= hop_frames <= SEGMENT_FRAMES:
        raise InputError(f"hop_frames must be 1..{SEGMENT_FRAMES}, got {hop_frames}")
    frames = mel.shape[1]
    if frames < SEGMENT_FRAMES:
        padded = np.pad(mel, ((0, 0), (0, SEGMENT_FRAMES - frames)), mode="constant")
        return np.ascontiguousarray(padded[None], dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(mel, SEGMENT_FRAMES, axis=1)[:, ::hop_frames]
    return np.ascontiguousarray(windows.transpose(1, 0, 2), dtype=np.float32)


def preprocess(audio: np.ndarray, sr: int, hop_frames: int = DEFAULT_HOP_FRAMES) -> np.ndarray:
    """Audio (mono, or [channels, samples] / [samples, channels]) -> [n, 128 mels, 128 frames] float32."""
    return segment(log_mel(audio, sr), hop_frames)


def segment_starts(n_segments: int, hop_frames: int = DEFAULT_HOP_FRAMES) -> np.ndarray:
    """Start time in seconds of each segment."""
    return np.arange(n_segments) * (hop_frames * HOP_LENGTH / SAMPLE_RATE)


def make_request(audio: np.ndarray, sr: int, hop_frames: int = DEFAULT_HOP_FRAMES, **options: Any) -> PianoRequest:
    """The PianoRequest for a piece of audio (options: batch_size, per_segment)."""
    segments = preprocess(audio, sr, hop_frames)
    return PianoRequest(
        segments=segments.astype("<f4").tobytes(), n_segments=len(segments), hop_frames=hop_frames, **options
    )


def _mono(audio: np.ndarray, sr: int) -> np.ndarray:
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise InputError(f"sample rate must be a positive integer, got {sr!r}")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=int(np.argmin(x.shape)))  # channels are the short axis
    if x.ndim != 1:
        raise InputError(f"audio must be mono or [channels, samples], got shape {np.shape(audio)}")
    if x.size == 0:
        raise InputError("audio is empty")
    if not np.isfinite(x).all():
        raise InputError("audio contains NaN or infinite samples")
    return x


# ------------------------------------------------------------------------------ architecture


@dataclass(frozen=True)
class ASTConfig:
    """Shape of muse's own AST layout; every field is read back from a checkpoint's shapes."""

    patch: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    head_hidden: int = 256
    n_outputs: int = len(PIANO_DIMENSIONS)

    layout: ClassVar[str] = "muse"

    @property
    def n_patches(self) -> int:
        return (N_MELS // self.patch) * (SEGMENT_FRAMES // self.patch)


CRESCENDAI_HEAD_DIM = 64
"""Width of one attention head in CrescendAI's AST: `MultiHeadAttention.head_dim = 64`, which its
`TransformerBlock` never overrides (src/models/ast_transformer.py lines 83 and 145-149), so the
query width is heads x 64 whatever the embedding width."""

CRESCENDAI_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timing", ("Timing_Stable_Unstable",)),
    ("dynamics_articulation", (
        "Articulation_Short_Long", "Articulation_Soft_cushioned_Hard_solid",
        "Dynamic_Sophisticated/mellow_Raw/crude", "Dynamic_Little_dynamic_range_Large_dynamic_range",
    )),
    ("expression_emotion", (
        "Music_Making_Fast_paced_Slow_paced", "Music_Making_Flat_Spacious", "Music_Making_Disproportioned_Balanced",
        "Music_Making_Pure_Dramatic/expressive", "Emotion_&_Mood_Optimistic/pleasant_Dark",
        "Emotion_&_Mood_Low_Energy_High_Energy", "Emotion_&_Mood_Honest_Imaginative",
        "Interpretation_Unsatisfactory/doubtful_Convincing",
    )),
    ("timbre_pedal", (
        "Pedal_Sparse/dry_Saturated/wet", "Pedal_Clean_Blurred", "Timbre_Even_Colorful", "Timbre_Shallow_Rich",
        "Timbre_Bright_Dark", "Timbre_Soft_Loud",
    )),
)
"""CrescendAI's default perceptual groups (src/models/ast_transformer.py lines 220-246). Checkpoints are
read by their parameter names, so a model trained with other groups loads too."""


@dataclass(frozen=True)
class CrescendAIConfig:
    """Shape of CrescendAI's AudioSpectrogramTransformer (Jai-Dhiman/piano-perception-transformer,
    src/models/ast_transformer.py), read back from a checkpoint's parameter names and shapes."""

    patch: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    head_hidden: int = 256  # GroupedMultiTaskHead.hidden_dim; its second layer is half as wide
    groups: tuple[tuple[str, tuple[str, ...]], ...] = CRESCENDAI_GROUPS

    layout: ClassVar[str] = "crescendai"

    @property
    def n_patches(self) -> int:
        return (N_MELS // self.patch) * (SEGMENT_FRAMES // self.patch)


Config = ASTConfig | CrescendAIConfig

MUSE_MARKER = "patch_embed/kernel"
CRESCENDAI_MARKER = "patch_embedding/patch_projection/kernel"


def param_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """Every parameter of the layout's Flax model as "a/b/c" -> shape (checked against flax in the tests)."""
    if isinstance(config, CrescendAIConfig):
        return _crescendai_shapes(config)
    c = config
    head_dim = c.dim // c.heads
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embed/kernel": (c.patch, c.patch, 1, c.dim),
        "patch_embed/bias": (c.dim,),
        "pos_embed": (1, c.n_patches, c.dim),
    }
    for i in range(c.depth):
        b = f"block_{i}"
        for ln in ("ln1", "ln2"):
            shapes[f"{b}/{ln}/scale"] = (c.dim,)
            shapes[f"{b}/{ln}/bias"] = (c.dim,)
        for proj in ("query", "key", "value"):
            shapes[f"{b}/attn/{proj}/kernel"] = (c.dim, c.heads, head_dim)
            shapes[f"{b}/attn/{proj}/bias"] = (c.heads, head_dim)
        shapes[f"{b}/attn/out/kernel"] = (c.heads, head_dim, c.dim)
        shapes[f"{b}/attn/out/bias"] = (c.dim,)
        shapes[f"{b}/mlp_in/kernel"] = (c.dim, c.mlp_dim)
        shapes[f"{b}/mlp_in/bias"] = (c.mlp_dim,)
        shapes[f"{b}/mlp_out/kernel"] = (c.mlp_dim, c.dim)
        shapes[f"{b}/mlp_out/bias"] = (c.dim,)
    shapes.update({
        "norm/scale": (c.dim,),
        "norm/bias": (c.dim,),
        "head_hidden/kernel": (c.dim, c.head_hidden),
        "head_hidden/bias": (c.head_hidden,),
        "head_out/kernel": (c.head_hidden, c.n_outputs),
        "head_out/bias": (c.n_outputs,),
    })
    return shapes


def _crescendai_shapes(c: CrescendAIConfig) -> dict[str, tuple[int, ...]]:
    # Module and parameter names as flax gives them to CrescendAI's modules: PatchEmbedding, PositionalEncoding2D,
    # TransformerBlock, MultiHeadAttention, the final LayerNorm and GroupedMultiTaskHead (ast_transformer.py
    # lines 50, 73, 98-122, 144-158, 185-194, 251-275).
    width = c.heads * CRESCENDAI_HEAD_DIM
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embedding/patch_projection/kernel": (c.patch * c.patch, c.dim),
        "patch_embedding/patch_projection/bias": (c.dim,),
        "pos_encoding/pos_embedding": (1, c.n_patches, c.dim),
    }
    for i in range(c.depth):
        b = f"transformer_block_{i}"
        for ln in ("layernorm1", "layernorm2"):
            shapes[f"{b}/{ln}/scale"] = (c.dim,)
            shapes[f"{b}/{ln}/bias"] = (c.dim,)
        for proj in ("query", "key", "value"):
            shapes[f"{b}/attention/{proj}/kernel"] = (c.dim, width)
            shapes[f"{b}/attention/{proj}/bias"] = (width,)
        shapes[f"{b}/attention/output_projection/kernel"] = (width, c.dim)
        shapes[f"{b}/attention/output_projection/bias"] = (c.dim,)
        shapes[f"{b}/mlp_dense1/kernel"] = (c.dim, c.mlp_dim)
        shapes[f"{b}/mlp_dense1/bias"] = (c.mlp_dim,)
        shapes[f"{b}/mlp_dense2/kernel"] = (c.mlp_dim, c.dim)
        shapes[f"{b}/mlp_dense2/bias"] = (c.dim,)
    shapes["layer_norm/scale"] = (c.dim,)
    shapes["layer_norm/bias"] = (c.dim,)
    half = c.head_hidden // 2
    for group, dims in c.groups:
        shapes[f"task_heads/{group}_shared_1/kernel"] = (c.dim, c.head_hidden)
        shapes[f"task_heads/{group}_shared_1/bias"] = (c.head_hidden,)
        shapes[f"task_heads/{group}_shared_2/kernel"] = (c.head_hidden, half)
        shapes[f"task_heads/{group}_shared_2/bias"] = (half,)
        for dim in dims:
            shapes[f"task_heads/{group}_{dim}_output/kernel"] = (half, 1)
            shapes[f"task_heads/{group}_{dim}_output/bias"] = (1,)
    return shapes


def infer_config(flat: dict[str, np.ndarray], where: str = "checkpoint") -> Config:
    """Tell the layout from the parameter names, read its shape off the parameters, then require the
    whole tree to match it."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in flat:
            raise InputError(
                f"{where} has no parameter {key!r}: not a muse or CrescendAI piano AST checkpoint (see docs/piano-model.md)"
            )
        return tuple(flat[key].shape)

    if CRESCENDAI_MARKER in flat:
        config: Config = _crescendai_config(flat, shape, where)
    elif MUSE_MARKER not in flat:
        raise InputError(
            f"{where} has no parameter {MUSE_MARKER!r} (muse layout) or {CRESCENDAI_MARKER!r} (CrescendAI layout): "
            "not a piano AST checkpoint (see docs/piano-model.md)"
        )
    else:
        config = _muse_config(flat, shape, where)
    expected = param_shapes(config)
    missing = sorted(set(expected) - set(flat))
    extra = sorted(set(flat) - set(expected))
    if missing:
        raise InputError(f"{where}: missing {len(missing)} parameters for a {config.depth}-layer model, first {missing[0]!r}")
    if extra:
        raise InputError(f"{where}: {len(extra)} parameters the architecture does not have, first {extra[0]!r}")
    for key, want in expected.items():
        got = tuple(flat[key].shape)
        if got != want:
            raise InputError(f"{where}: parameter {key!r} has shape {got}; the architecture needs {want}")
        if flat[key].dtype.kind != "f" and str(flat[key].dtype) != "bfloat16":
            raise InputError(f"{where}: parameter {key!r} has dtype {flat[key].dtype}; need floating point")
    return config


def _muse_config(flat, shape, where: str) -> ASTConfig:
    kernel = shape(MUSE_MARKER)
    if len(kernel) != 4 or kernel[0] != kernel[1] or kernel[2] != 1 or N_MELS % kernel[0]:
        raise InputError(f"{where}: patch_embed/kernel has shape {kernel}; need (p, p, 1, dim) with p dividing {N_MELS}")
    depth = 0
    while f"block_{depth}/ln1/scale" in flat:
        depth += 1
    if depth == 0:
        shape("block_0/ln1/scale")
    query = shape("block_0/attn/query/kernel")
    if len(query) != 3:
        raise InputError(f"{where}: block_0/attn/query/kernel has shape {query}; need (dim, heads, head_dim)")
    config = ASTConfig(
        patch=kernel[0],
        dim=kernel[3],
        depth=depth,
        heads=query[1],
        mlp_dim=shape("block_0/mlp_in/kernel")[-1],
        head_hidden=shape("head_hidden/kernel")[-1],
        n_outputs=shape("head_out/kernel")[-1],
    )
    if config.n_outputs != len(PIANO_DIMENSIONS):
        raise InputError(
            f"{where}: head_out gives {config.n_outputs} outputs; the PercePiano model needs {len(PIANO_DIMENSIONS)}"
        )
    return config


def _crescendai_config(flat, shape, where: str) -> CrescendAIConfig:
    kernel = shape(CRESCENDAI_MARKER)
    patch = math.isqrt(kernel[0]) if len(kernel) == 2 else 0
    if len(kernel) != 2 or patch * patch != kernel[0] or N_MELS % patch:
        raise InputError(
            f"{where}: {CRESCENDAI_MARKER} has shape {kernel}; need (p*p, dim) with p dividing {N_MELS}"
        )
    depth = 0
    while f"transformer_block_{depth}/layernorm1/scale" in flat:
        depth += 1
    if depth == 0:
        shape("transformer_block_0/layernorm1/scale")
    width = shape("transformer_block_0/attention/query/kernel")[-1]
    if width % CRESCENDAI_HEAD_DIM:
        raise InputError(
            f"{where}: attention width {width} is not a whole number of {CRESCENDAI_HEAD_DIM}-wide heads"
        )
    groups = sorted(k[len("task_heads/"):-len("_shared_1/kernel")] for k in flat
                    if k.startswith("task_heads/") and k.endswith("_shared_1/kernel"))
    if not groups:
        raise InputError(f"{where}: no task_heads/<group>_shared_1 layer: not a CrescendAI grouped head")
    members: dict[str, list[str]] = {g: [] for g in groups}
    for dim in PIANO_DIMENSIONS:
        owners = [g for g in groups if f"task_heads/{g}_{dim}_output/kernel" in flat]
        if len(owners) != 1:
            what = "no" if not owners else f"{len(owners)}"
            raise InputError(f"{where}: {what} task_heads/<group>_{dim}_output layer; need exactly one per dimension")
        members[owners[0]].append(dim)
    return CrescendAIConfig(
        patch=patch,
        dim=kernel[1],
        depth=depth,
        heads=width // CRESCENDAI_HEAD_DIM,
        mlp_dim=shape("transformer_block_0/mlp_dense1/kernel")[-1],
        head_hidden=shape(f"task_heads/{groups[0]}_shared_1/kernel")[-1],
        groups=tuple((g, tuple(members[g])) for g in groups),
    )


# ------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointMeta:
    """What shapes cannot say, from the checkpoint itself or a `<stem>.json` next to it."""

    output: Literal["sigmoid", "linear"] = "sigmoid"
    scale: tuple[float, float] | None = None
    input_mean: float = 0.0
    input_std: float = 1.0

    @classmethod
    def parse(cls, data: Any, where: str, default_output: str = "sigmoid") -> "CheckpointMeta":
        """`default_output` applies when the config names none: "linear" for CrescendAI's layout, whose
        head is trained on the raw labels with no squashing (src/train_ast.py line 207, an MSE)."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: config must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"output", "scale", "input_mean", "input_std"})
        if unknown:
            raise InputError(f"{where}: unknown config key {unknown[0]!r} (allowed: output, scale, input_mean, input_std)")
        output = data.get("output", default_output)
        if output not in ("sigmoid", "linear"):
            raise InputError(f"{where}: output must be 'sigmoid' or 'linear', got {output!r}")
        scale = data.get("scale")
        if scale is not None:
            if not (isinstance(scale, (list, tuple)) and len(scale) == 2 and all(_finite(v) for v in scale)
                    and scale[0] < scale[1]):
                raise InputError(f"{where}: scale must be [low, high] with low < high, got {scale!r}")
            scale = (float(scale[0]), float(scale[1]))
        mean, std = data.get("input_mean", 0.0), data.get("input_std", 1.0)
        if not _finite(mean) or not _finite(std) or std <= 0:
            raise InputError(f"{where}: input_mean must be finite and input_std > 0, got {mean!r}, {std!r}")
        return cls(output=output, scale=scale, input_mean=float(mean), input_std=float(std))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"output": self.output, "input_mean": self.input_mean, "input_std": self.input_std}
        if self.scale is not None:
            data["scale"] = list(self.scale)
        return data


@dataclass
class Checkpoint:
    path: Path
    format: Format
    params: dict[str, np.ndarray]  # flat "a/b/c" -> array
    meta: CheckpointMeta
    config: Config
    sha256: str = ""

    @property
    def model_id(self) -> str:
        return f"{self.path.name}@{self.sha256[:12]}"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def detect_format(path: Path) -> Format:
    """The checkpoint format from the file's first bytes (never its name: a renamed pickle stays a pickle)."""
    with open(path, "rb") as f:
        head = f.read(16)
    size = path.stat().st_size
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        raise InputError(f"{path}: a zip archive (PyTorch .pt?) is not a supported checkpoint; convert it to safetensors")
    if len(head) >= 9:
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return "msgpack"
    raise InputError(f"{path}: not a Flax msgpack, safetensors or pickle checkpoint")


def _flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = np.asarray(value)
    return flat


def _path(key: str) -> list[str]:
    """"a/b/c" -> its tree path. CrescendAI's head layers are named after PercePiano dimensions, some of
    which hold "/" themselves ("task_heads/timbre_pedal_Pedal_Sparse/dry_Saturated/wet_output/kernel"):
    under task_heads/ the layer name is everything between the first and the last "/"."""
    if key.startswith("task_heads/") and key.count("/") > 2:
        layer, leaf = key[len("task_heads/"):].rsplit("/", 1)
        return ["task_heads", layer, leaf]
    return key.split("/")


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = _path(key)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _params_of(tree: Any, where: str) -> tuple[Any, Any]:
    """The parameter tree and any embedded config in a restored file: {"params": ..., "config": ...} or bare."""
    if hasattr(tree, "params") and not hasattr(tree, "items"):  # a pickled TrainState-like object
        tree = {"params": tree.params}
    if not hasattr(tree, "items"):
        raise InputError(f"{where}: holds a {type(tree).__name__}, not a parameter tree")
    config = tree.get("config") if "config" in tree else None
    # CrescendAI pickles {"params": state.params, "loss": ..., "epoch": ...} where state.params is what
    # model.init returned, itself {"params": ...} (colab_training.py lines 262-264, ast_transformer.py line 330).
    while "params" in tree and hasattr(tree["params"], "items"):
        tree = tree["params"]
    return tree, config


def _read(path: Path, fmt: Format, trust: bool) -> tuple[dict[str, np.ndarray], Any]:
    where = str(path)
    if fmt == "pickle":
        if not trust:
            raise InputError(
                f"{where} is a pickle, which can run arbitrary code when loaded; convert it to msgpack or "
                "safetensors, or pass --trust-checkpoint if you made the file yourself"
            )
        import pickle

        with open(path, "rb") as f:
            tree, config = _params_of(pickle.load(f), where)  # noqa: S301 - the user vouched for this file
        return _flatten(tree), config
    if fmt == "msgpack":
        from flax.serialization import msgpack_restore

        try:
            restored = msgpack_restore(path.read_bytes())
        except Exception as exc:  # msgpack raises a zoo of types for damaged files
            raise InputError(f"{where}: cannot read as Flax msgpack ({type(exc).__name__}: {exc})") from None
        tree, config = _params_of(restored, where)
        return _flatten(tree), config
    from safetensors import safe_open

    try:
        flat = {}
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                flat[key] = f.get_tensor(key)
    except Exception as exc:
        raise InputError(f"{where}: cannot read as safetensors ({type(exc).__name__}: {exc})") from None
    if flat and not any("/" in k for k in flat):  # dotted names; CrescendAI's need "/" (its names hold dots' place)
        flat = {k.replace(".", "/"): v for k, v in flat.items()}
    flat = {k.removeprefix("params/"): v for k, v in flat.items()}
    config = None
    if "muse_piano" in metadata:
        try:
            config = json.loads(metadata["muse_piano"])
        except json.JSONDecodeError:
            raise InputError(f"{where}: metadata muse_piano is not valid JSON") from None
    return flat, config


def read_checkpoint(path: str | Path, trust: bool = False) -> Checkpoint:
    """Load, check against the architecture, and describe a checkpoint file. Bad files raise InputError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist or is not a file")
    fmt = detect_format(path)
    flat, embedded = _read(path, fmt, trust)
    config = infer_config(flat, str(path))
    default_output = "linear" if config.layout == "crescendai" else "sigmoid"
    sidecar = path.with_suffix(".json")
    if sidecar != path and sidecar.is_file():
        try:
            embedded = json.loads(sidecar.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{sidecar}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        meta = CheckpointMeta.parse(embedded, str(sidecar), default_output)
    else:
        meta = CheckpointMeta.parse(embedded if embedded is not None else {}, str(path), default_output)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return Checkpoint(path, fmt, flat, meta, config, digest.hexdigest())


def validate_checkpoint(path: str | Path, trust: bool = False) -> str:
    """The checkpoint's format ("msgpack", "safetensors", "pickle") if it loads and fits the architecture.

    For `muse models upload piano PATH`: raises InputError naming what is wrong otherwise.
    """
    return read_checkpoint(path, trust).format


def checkpoint_bytes(params: Any, format: Literal["msgpack", "safetensors"] = "msgpack",
                     meta: CheckpointMeta | None = None) -> bytes:
    """A parameter tree (nested dict or flat "a/b/c" dict) as the bytes of a muse piano checkpoint file."""
    flat = _flatten(params) if any(hasattr(v, "items") for v in params.values()) else dict(params)
    flat = {k.removeprefix("params/"): np.asarray(v, dtype=np.float32) for k, v in flat.items()}
    meta = meta or CheckpointMeta()
    if format == "safetensors":
        from safetensors.numpy import save

        return save(flat, metadata={"muse_piano": json.dumps(meta.to_dict())})
    if format == "msgpack":
        from flax.serialization import msgpack_serialize

        return msgpack_serialize({"params": _unflatten(flat), "config": meta.to_dict()})
    raise InputError(f"checkpoint format must be msgpack or safetensors, got {format!r}")


def save_checkpoint(params: Any, path: str | Path, format: Literal["msgpack", "safetensors"] = "msgpack",
                    meta: CheckpointMeta | None = None) -> Path:
    """Write a parameter tree (nested dict or flat "a/b/c" dict) as a muse piano checkpoint."""
    path = Path(path)
    path.write_bytes(checkpoint_bytes(params, format, meta))
    return path


def convert_checkpoint(
    source: str | Path, target: str | Path, trust: bool = False, force: bool = False
) -> tuple[Checkpoint, Path]:
    """Read and check `source` (any format; pickle only with trust), write it safely to `target`.

    The format comes from target's suffix (.safetensors or .msgpack); the checkpoint config (output
    mapping, input scaling) is embedded, so the one file is all `muse models upload piano` needs.
    Nothing is written unless the source loads and fits its layout. An existing target is replaced
    only with force; otherwise a free name is chosen (`name-2.safetensors`). Returns the written path.
    """
    from muse_cli.output import write_file

    target = Path(target).expanduser()
    formats = {".safetensors": "safetensors", ".msgpack": "msgpack"}
    if target.suffix not in formats:
        raise InputError(f"{target}: the converted checkpoint must end in .safetensors or .msgpack")
    if not target.parent.is_dir():
        raise InputError(f"{target}: folder {target.parent} does not exist")
    checkpoint = read_checkpoint(source, trust)
    if target.resolve() == checkpoint.path.resolve():
        raise InputError(f"{target} is the checkpoint being converted: choose another name")
    data = checkpoint_bytes(checkpoint.params, formats[target.suffix], checkpoint.meta)  # type: ignore[arg-type]
    return checkpoint, write_file(target, data, force=force)


def checkpoint_dirs() -> list[Path]:
    """Where checkpoint names are looked up locally: $MUSE_PIANO_DIR, then muse's cache (~/.cache/muse/piano)."""
    from muse_cli.ops.cache import cache_dir

    dirs = [Path(os.environ["MUSE_PIANO_DIR"]).expanduser()] if os.environ.get("MUSE_PIANO_DIR") else []
    return dirs + [cache_dir() / "piano"]


def resolve_checkpoint(model: str, dirs: list[Path] | None = None) -> Path:
    """A checkpoint path from a path or a name; RuntimeFailure with the how-to hint when there is none."""
    given = Path(model).expanduser()
    if given.is_file():
        return given
    if given.is_absolute() or os.sep in model:
        raise Unavailable(f"no piano model checkpoint at {given}", hint=NO_CHECKPOINT_HINT)
    folders = checkpoint_dirs() if dirs is None else dirs
    for folder in folders:
        for candidate in (folder / model, *(folder / f"{model}{s}" for s in CHECKPOINT_SUFFIXES)):
            if candidate.is_file():
                return candidate
    where = ", ".join(str(f) for f in folders) or "no folder"
    raise Unavailable(f"no piano model checkpoint named {model!r} (looked in {where})", hint=NO_CHECKPOINT_HINT)


# ------------------------------------------------------------------------------------ engine


class PianoEngine:
    """PercePiano perceptual scores from log-mel segments, with a user-supplied checkpoint.

    `model` is a checkpoint path or a name looked up in `dirs` (default `checkpoint_dirs()`).
    `trust=True` allows pickle checkpoints. Scores come only from a checkpoint that `load()` read and
    checked; before that, or after a failed load, `generate` raises.
    """

    name = "piano"

    def __init__(self, model: str = DEFAULT_CHECKPOINT, *, trust: bool = False, dirs: list[Path] | None = None):
        self.model = model
        self.trust = trust
        self.dirs = dirs
        self.model_id = model
        self.device = "cpu"
        self.checkpoint: Checkpoint | None = None
        self.load_s = 0.0
        self._forward: Any = None
        self._params: Any = None
        self._failure: Exception | None = None

    @property
    def loaded(self) -> bool:
        return self._forward is not None

    def load(self) -> None:
        start = time.perf_counter()
        try:
            checkpoint = read_checkpoint(resolve_checkpoint(self.model, self.dirs), self.trust)
        except (InputError, RuntimeFailure) as exc:
            self._failure = exc
            raise
        import jax
        import jax.numpy as jnp

        from muse_cli.engines.piano_ast import make_forward

        self._params = jax.device_put(_unflatten({k: jnp.asarray(v, jnp.float32) for k, v in checkpoint.params.items()}))
        self._forward = make_forward(checkpoint.config, checkpoint.meta)
        checkpoint.params = {}  # the device copy is the one in use; don't hold the file twice
        self.checkpoint = checkpoint
        self.model_id = checkpoint.model_id
        self.device = "gpu" if jax.default_backend() in ("gpu", "cuda", "rocm") else jax.default_backend()
        self._failure = None
        self.load_s = time.perf_counter() - start

    def generate(self, request: PianoRequest, progress: ProgressFn = null_progress) -> PianoResult:
        if self._forward is None or self.checkpoint is None:
            if self._failure is not None:
                raise self._failure
            raise Unavailable("piano model checkpoint is not loaded", hint=NO_CHECKPOINT_HINT)
        segments = np.frombuffer(request.segments, dtype="<f4").reshape(request.n_segments, *PIANO_SEGMENT_SHAPE)
        if not np.isfinite(segments).all():
            raise InputError("segments contain NaN or infinite values")
        start = time.perf_counter()
        n = request.n_segments
        batch = min(request.batch_size, 1 << (n - 1).bit_length())  # one compiled shape per request size class
        outputs = []
        progress(0, n)
        for lo in range(0, n, batch):
            chunk = segments[lo:lo + batch]
            if len(chunk) < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - len(chunk), *PIANO_SEGMENT_SHAPE), np.float32)])
            out = np.asarray(self._forward(self._params, chunk), dtype=np.float64)
            outputs.append(out[: min(batch, n - lo)])
            progress(min(lo + batch, n), n)
        scores = np.concatenate(outputs)
        if not np.isfinite(scores).all():
            raise RuntimeFailure("the piano model produced NaN or infinite scores", hint="check the checkpoint")
        meta = self.checkpoint.meta
        return PianoResult(
            engine=self.name,
            model=self.model_id,
            device=self.device,
            dimensions=list(PIANO_DIMENSIONS),
            mean=scores.mean(axis=0).tolist(),
            spread=scores.std(axis=0).tolist(),
            per_segment=scores.tolist() if request.per_segment else None,
            n_segments=n,
            hop_frames=request.hop_frames,
            output=meta.output,
            scale=(0.0, 1.0) if meta.output == "sigmoid" else meta.scale,
            timings={"load_s": round(self.load_s, 4), "inference_s": round(time.perf_counter() - start, 4)},
        )

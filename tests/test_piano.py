"""The piano perceptual model: preprocessing, the Flax AST, checkpoint loading and the Modal class.

A tiny model of the real architecture (32-d, 2 layers, 2 heads) is saved to a temp folder and loaded
through the same path as a real checkpoint.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("jax")
pytest.importorskip("flax")
pytest.importorskip("librosa")
pytest.importorskip("safetensors")

from muse_cli.contracts import PIANO_DIMENSIONS, PROTOCOL_VERSION, PianoRequest  # noqa: E402
from muse_cli.engines import piano  # noqa: E402
from muse_cli.engines.piano import (  # noqa: E402
    ASTConfig,
    CheckpointMeta,
    PianoEngine,
    param_shapes,
    preprocess,
    read_checkpoint,
    save_checkpoint,
    segment,
    validate_checkpoint,
)
from muse_cli.errors import InputError, RuntimeFailure  # noqa: E402

TINY = ASTConfig(dim=32, depth=2, heads=2, mlp_dim=64, head_hidden=16)
SR = 22050


@pytest.fixture(scope="module")
def flat():
    # Random values for every parameter of the real tree; shapes are checked against flax below.
    rng = np.random.default_rng(1)
    return {k: (rng.normal(0, 0.3, s) + (k.endswith("/scale"))).astype(np.float32)
            for k, s in param_shapes(TINY).items()}


@pytest.fixture(scope="module")
def params(flat):
    return piano._unflatten(flat)


@pytest.fixture(scope="module")
def apply():
    import jax

    from muse_cli.engines.piano_ast import AST

    return jax.jit(lambda params, x: AST(TINY).apply({"params": params}, x))


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory, params):
    folder = tmp_path_factory.mktemp("piano")
    save_checkpoint(params, folder / "tiny.msgpack")
    save_checkpoint(params, folder / "tiny.safetensors", "safetensors")
    return folder


@pytest.fixture(scope="module")
def segments():
    rng = np.random.default_rng(0)
    return rng.uniform(-80, 0, size=(5, 128, 128)).astype(np.float32)


@pytest.fixture(scope="module")
def engine(ckpt_dir):
    e = PianoEngine(str(ckpt_dir / "tiny.msgpack"))
    e.load()
    return e


def request_of(segments: np.ndarray, **kw) -> PianoRequest:
    return PianoRequest(segments=segments.astype("<f4").tobytes(), n_segments=len(segments), **kw)


# ------------------------------------------------------------------------------ architecture


@pytest.mark.parametrize("config", [TINY, ASTConfig(), ASTConfig(patch=8, dim=48, depth=1, heads=3)])
def test_param_shapes_match_flax(config):
    import jax

    from muse_cli.engines.piano_ast import init_params

    tree = jax.eval_shape(lambda: init_params(config))
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    shapes = {"/".join(p.key for p in path): leaf.shape for path, leaf in leaves}
    assert shapes == param_shapes(config)
    if config == ASTConfig():
        assert 80e6 < sum(int(np.prod(s)) for s in shapes.values()) < 90e6  # AST-base size


def test_forward_shapes_and_output_mapping(params, segments, apply):
    from muse_cli.engines.piano_ast import make_forward

    raw = np.asarray(apply(params, segments))
    assert raw.shape == (5, len(PIANO_DIMENSIONS))
    scores = np.asarray(make_forward(TINY, CheckpointMeta())(params, segments))
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-raw)), rtol=1e-5, atol=1e-6)
    assert ((scores > 0) & (scores < 1)).all()


def test_infer_config_reads_any_size(flat):
    assert piano.infer_config(flat) == TINY


# ----------------------------------------------------------------------------- preprocessing


def test_pure_tone_lands_in_its_mel_band():
    import librosa

    t = np.arange(int(SR * 4)) / SR
    mel = piano.log_mel(0.5 * np.sin(2 * np.pi * 1000 * t), SR)
    assert mel.dtype == np.float32 and mel.shape == (128, 1 + len(t) // 512)
    assert mel.max() == 0.0 and mel.min() >= -80.0
    centers = librosa.mel_frequencies(n_mels=130, fmin=0, fmax=SR / 2)[1:-1]
    band = int(np.argmax(mel[:, 10:-10].mean(axis=1)))
    assert abs(band - int(np.argmin(np.abs(centers - 1000)))) <= 1
    assert mel[100:, 10:-10].mean() < -60  # far above the tone: near the floor


def test_segments_every_hop_and_padding():
    """CrescendAI's _create_segments: whole windows only; a short piece is zero-padded (0.0, not -80)."""
    mel = np.random.default_rng(1).uniform(-80, 0, size=(128, 300)).astype(np.float32)
    segs = segment(mel, 32)
    assert segs.shape == (6, 128, 128)  # starts 0..160; frames after 288 are in no whole window
    for i in range(6):
        np.testing.assert_array_equal(segs[i], mel[:, 32 * i:32 * i + 128])
    short = segment(mel[:, :100], 32)
    assert short.shape == (1, 128, 128)
    np.testing.assert_array_equal(short[0][:, :100], mel[:, :100])
    assert (short[0][:, 100:] == 0.0).all()
    assert segment(mel[:, :128], 32).shape == (1, 128, 128)
    # A 3-minute piece: 7752 frames -> 239 segments.
    assert segment(np.zeros((128, 1 + 180 * SR // 512), np.float32), 32).shape[0] == 239


def test_short_stereo_and_resampled_audio():
    t = np.arange(SR // 2) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    mono = preprocess(tone, SR)
    assert mono.shape == (1, 128, 128)
    assert (mono[0][:, 30:] == 0.0).all()  # 0.5 s is 22 frames; the rest is CrescendAI's zero padding
    np.testing.assert_allclose(preprocess(np.stack([tone, tone]), SR), mono, atol=1e-4)
    np.testing.assert_allclose(preprocess(np.stack([tone, tone], axis=1), SR), mono, atol=1e-4)
    t44 = np.arange(44100 // 2) / 44100
    resampled = preprocess(0.3 * np.sin(2 * np.pi * 440 * t44), 44100)
    assert resampled.shape == (1, 128, 128)
    assert np.argmax(resampled[0][:, 5:15].mean(axis=1)) == np.argmax(mono[0][:, 5:15].mean(axis=1))
    silent = preprocess(np.zeros(SR), SR)[0]  # 1 s: 44 frames at the -80 dB floor, then padding
    assert (silent[:, :44] == -80).all() and (silent[:, 44:] == 0.0).all()


def test_level_does_not_change_the_log_mel():
    """Peak-normalised before the mel, as CrescendAI's dataset code: a quiet take is not floored differently."""
    t = np.arange(SR * 3) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-t)).astype(np.float32)
    np.testing.assert_allclose(piano.log_mel(tone * 1e-4, SR), piano.log_mel(tone, SR), atol=1e-3)


@pytest.mark.parametrize("audio, sr", [(np.zeros(0), SR), (np.full(100, np.nan), SR),
                                       (np.zeros((2, 2, 10)), SR), (np.zeros(100), 0)])
def test_bad_audio_rejected(audio, sr):
    with pytest.raises(InputError):
        preprocess(audio, sr)


def test_bad_hop_rejected():
    with pytest.raises(InputError, match="hop_frames"):
        segment(np.zeros((128, 200), np.float32), 0)


def test_request_size_checked(segments):
    with pytest.raises(ValidationError, match="bytes"):
        PianoRequest(segments=segments.tobytes()[:-4], n_segments=5)
    assert piano.make_request(np.zeros(SR), SR).n_segments == 1


# ------------------------------------------------------------------------------- checkpoints


def test_round_trip_msgpack_and_safetensors(ckpt_dir, engine, params, segments):
    from muse_cli.engines.piano_ast import make_forward

    direct = np.asarray(make_forward(TINY, CheckpointMeta())(params, segments))
    assert validate_checkpoint(ckpt_dir / "tiny.msgpack") == "msgpack"
    assert validate_checkpoint(ckpt_dir / "tiny.safetensors") == "safetensors"
    from_msgpack = engine.generate(request_of(segments, per_segment=True))
    other = PianoEngine(str(ckpt_dir / "tiny.safetensors"))
    other.load()
    from_safetensors = other.generate(request_of(segments, per_segment=True))
    np.testing.assert_allclose(np.array(from_msgpack.per_segment), direct, rtol=1e-6, atol=1e-7)
    assert from_msgpack.per_segment == from_safetensors.per_segment
    assert from_msgpack.model.startswith("tiny.msgpack@") and from_msgpack.device == "cpu"


def test_safetensors_with_dotted_names(tmp_path, flat, engine, segments):
    from safetensors.numpy import save_file

    save_file({k.replace("/", "."): v for k, v in flat.items()}, str(tmp_path / "dots.safetensors"))
    e = PianoEngine(str(tmp_path / "dots.safetensors"))
    e.load()
    assert e.generate(request_of(segments)).mean == engine.generate(request_of(segments)).mean


def _mutated(flat, key, value=None):
    out = dict(flat)
    if value is None:
        del out[key]
    else:
        out[key] = value
    return out


@pytest.mark.parametrize("change, message", [
    (lambda f: _mutated(f, "block_1/mlp_in/kernel", np.zeros((32, 65), np.float32)), "block_1/mlp_in/kernel"),
    (lambda f: _mutated(f, "block_0/attn/out/bias"), "missing"),
    (lambda f: _mutated(f, "head_out/kernel", np.zeros((16, 18), np.float32)), "19"),
    (lambda f: _mutated(f, "extra/kernel", np.zeros(3, np.float32)), "extra/kernel"),
    (lambda f: _mutated(f, "patch_embed/kernel"), "patch_embed/kernel"),
    (lambda f: _mutated(f, "pos_embed", np.zeros((1, 63, 32), np.float32)), "pos_embed"),
])
@pytest.mark.parametrize("fmt", ["safetensors", "msgpack"])
def test_wrong_tree_rejected(tmp_path, flat, change, message, fmt):
    path = save_checkpoint(change(flat), tmp_path / f"bad.{fmt}", fmt)
    with pytest.raises(InputError, match=message):
        validate_checkpoint(path)
    with pytest.raises(InputError):
        PianoEngine(str(path)).load()


def test_pickle_needs_trust(tmp_path, flat, engine, segments):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"params": piano._unflatten(flat)}, protocol=4))
    disguised = tmp_path / "model.msgpack"
    disguised.write_bytes(path.read_bytes())
    for p in (path, disguised):
        with pytest.raises(InputError, match="trust-checkpoint"):
            validate_checkpoint(p)
        with pytest.raises(InputError, match="trust-checkpoint"):
            PianoEngine(str(p)).load()
    assert validate_checkpoint(path, trust=True) == "pickle"
    trusted = PianoEngine(str(path), trust=True)
    trusted.load()
    assert trusted.generate(request_of(segments)).mean == engine.generate(request_of(segments)).mean


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello, this is not a model")
    with pytest.raises(InputError, match="not a Flax msgpack"):
        validate_checkpoint(junk)
    with pytest.raises(InputError, match="does not exist"):
        validate_checkpoint(tmp_path / "absent.msgpack")


def test_sidecar_config(tmp_path, params, engine, segments, apply):
    path = save_checkpoint(params, tmp_path / "lin.safetensors", "safetensors",
                           CheckpointMeta(output="linear", scale=(1, 7), input_mean=-40, input_std=40))
    e = PianoEngine(str(path))
    e.load()
    result = e.generate(request_of(segments, per_segment=True))
    assert result.output == "linear" and result.scale == (1.0, 7.0)
    expected = np.asarray(apply(params, (segments + 40) / 40))
    np.testing.assert_allclose(result.per_segment, expected, rtol=1e-4, atol=1e-5)
    sigmoid = engine.generate(request_of(segments))
    assert sigmoid.output == "sigmoid" and sigmoid.scale == (0.0, 1.0)
    assert result.mean != sigmoid.mean
    (tmp_path / "lin.json").write_text('{"output": "sigmoid"}')  # the sidecar wins over embedded config
    assert read_checkpoint(path).meta.output == "sigmoid"
    (tmp_path / "lin.json").write_text('{"outptu": "linear"}')
    with pytest.raises(InputError, match="outptu"):
        validate_checkpoint(path)


# ------------------------------------------------------------------------------------ engine


def test_missing_checkpoint_never_scores(tmp_path, segments):
    e = PianoEngine("percepiano-ast", dirs=[tmp_path])
    with pytest.raises(RuntimeFailure) as info:
        e.load()
    assert "muse models upload piano" in info.value.hint
    with pytest.raises(RuntimeFailure):
        e.generate(request_of(segments))
    with pytest.raises(RuntimeFailure, match="not loaded"):
        PianoEngine(str(tmp_path / "x.msgpack")).generate(request_of(segments))
    with pytest.raises(RuntimeFailure, match="no piano model checkpoint at"):
        PianoEngine(str(tmp_path / "x.msgpack")).load()


def test_name_resolves_in_folders(ckpt_dir):
    assert piano.resolve_checkpoint("tiny", [ckpt_dir]) == ckpt_dir / "tiny.msgpack"
    assert piano.resolve_checkpoint("tiny.safetensors", [ckpt_dir]) == ckpt_dir / "tiny.safetensors"


def test_aggregation_batches_and_progress(engine, segments):
    calls = []
    batched = engine.generate(request_of(segments, batch_size=2, per_segment=True),
                              progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]
    per = np.array(batched.per_segment)
    assert per.shape == (5, 19) and batched.dimensions == list(PIANO_DIMENSIONS)
    np.testing.assert_allclose(batched.mean, per.mean(axis=0))
    np.testing.assert_allclose(batched.spread, per.std(axis=0))
    whole = engine.generate(request_of(segments, per_segment=True))
    np.testing.assert_allclose(whole.per_segment, batched.per_segment, rtol=1e-5)
    assert engine.generate(request_of(segments)).per_segment is None


def test_nan_segments_rejected(engine, segments):
    bad = segments.copy()
    bad[2, 3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        engine.generate(request_of(bad))


# ------------------------------------------------------------------------------------- Modal


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_modal_class_local(ckpt_dir, engine, segments):
    pytest.importorskip("modal")
    from remote.piano import PianoModel

    payload = {"protocol": PROTOCOL_VERSION, "request": request_of(segments).model_dump(mode="python")}
    reply = PianoModel(model=str(ckpt_dir / "tiny.safetensors")).generate.local(payload)
    assert reply["result"]["mean"] == engine.generate(request_of(segments)).mean
    events = list(PianoModel(model=str(ckpt_dir / "absent.msgpack")).generate_stream.local(payload))
    assert events[-1]["error"]["type"] == "unavailable"
    assert "muse models upload piano" in events[-1]["error"]["hint"]
    pkl = ckpt_dir / "model.pkl"
    pkl.write_bytes(pickle.dumps({"params": {}}, protocol=4))
    refused = PianoModel(model=str(pkl)).generate.local(payload)
    assert refused["error"]["type"] == "input"


# ------------------------------------------------------------------- CrescendAI's own layout
# The tree below is written from CrescendAI's src/models/ast_transformer.py (Jai-Dhiman/piano-perception-
# transformer): module names, Dense shapes, 64-wide heads, the four default groups. The forward pass is a
# plain numpy transcription of the same network, independent of muse's flax module.

CRESCENDAI_GROUPS = {
    "timing": ["Timing_Stable_Unstable"],
    "dynamics_articulation": ["Articulation_Short_Long", "Articulation_Soft_cushioned_Hard_solid",
                              "Dynamic_Sophisticated/mellow_Raw/crude", "Dynamic_Little_dynamic_range_Large_dynamic_range"],
    "expression_emotion": ["Music_Making_Fast_paced_Slow_paced", "Music_Making_Flat_Spacious",
                           "Music_Making_Disproportioned_Balanced", "Music_Making_Pure_Dramatic/expressive",
                           "Emotion_&_Mood_Optimistic/pleasant_Dark", "Emotion_&_Mood_Low_Energy_High_Energy",
                           "Emotion_&_Mood_Honest_Imaginative", "Interpretation_Unsatisfactory/doubtful_Convincing"],
    "timbre_pedal": ["Pedal_Sparse/dry_Saturated/wet", "Pedal_Clean_Blurred", "Timbre_Even_Colorful",
                     "Timbre_Shallow_Rich", "Timbre_Bright_Dark", "Timbre_Soft_Loud"],
}
C_DIM, C_DEPTH, C_HEADS, C_MLP, C_HIDDEN = 32, 2, 2, 64, 16


@pytest.fixture(scope="module")
def crescendai_tree():
    rng = np.random.default_rng(5)

    def dense(n_in, n_out, scale=0.3):
        return {"kernel": rng.normal(0, scale / np.sqrt(n_in) * 4, (n_in, n_out)).astype(np.float32),
                "bias": rng.normal(0, 0.1, (n_out,)).astype(np.float32)}

    def norm():
        return {"scale": (1 + rng.normal(0, 0.1, C_DIM)).astype(np.float32),
                "bias": rng.normal(0, 0.1, C_DIM).astype(np.float32)}

    width = C_HEADS * 64
    tree = {
        "patch_embedding": {"patch_projection": dense(256, C_DIM, 0.05)},
        "pos_encoding": {"pos_embedding": rng.normal(0, 0.02, (1, 64, C_DIM)).astype(np.float32)},
        "layer_norm": norm(),
        "task_heads": {},
    }
    for i in range(C_DEPTH):
        tree[f"transformer_block_{i}"] = {
            "layernorm1": norm(), "layernorm2": norm(),
            "attention": {"query": dense(C_DIM, width), "key": dense(C_DIM, width), "value": dense(C_DIM, width),
                          "output_projection": dense(width, C_DIM)},
            "mlp_dense1": dense(C_DIM, C_MLP), "mlp_dense2": dense(C_MLP, C_DIM),
        }
    for group, dims in CRESCENDAI_GROUPS.items():
        tree["task_heads"][f"{group}_shared_1"] = dense(C_DIM, C_HIDDEN)
        tree["task_heads"][f"{group}_shared_2"] = dense(C_HIDDEN, C_HIDDEN // 2)
        for dim in dims:
            tree["task_heads"][f"{group}_{dim}_output"] = dense(C_HIDDEN // 2, 1)
    return tree


def numpy_crescendai(tree, segments):
    """CrescendAI's AudioSpectrogramTransformer at inference, in float64 numpy: {dimension: [n]}."""
    x = segments.astype(np.float64).transpose(0, 2, 1)  # [n, time, freq], the layout it was trained on
    n = len(x)
    x = x.reshape(n, 8, 16, 8, 16).transpose(0, 1, 3, 2, 4).reshape(n, 64, 256)

    def dense(h, p):
        return h @ p["kernel"].astype(np.float64) + p["bias"]

    def layer_norm(h, p):
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        return (h - mu) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]

    def gelu_tanh(h):  # flax.linen.gelu's default, approximate=True
        return 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))

    x = dense(x, tree["patch_embedding"]["patch_projection"]) + tree["pos_encoding"]["pos_embedding"]
    for i in range(C_DEPTH):
        block = tree[f"transformer_block_{i}"]
        att = block["attention"]
        h = layer_norm(x, block["layernorm1"])
        q, k, v = (dense(h, att[name]).reshape(n, 64, C_HEADS, 64).transpose(0, 2, 1, 3) for name in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / 8.0
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        x = x + dense((weights @ v).transpose(0, 2, 1, 3).reshape(n, 64, C_HEADS * 64), att["output_projection"])
        h = gelu_tanh(dense(layer_norm(x, block["layernorm2"]), block["mlp_dense1"]))
        x = x + dense(h, block["mlp_dense2"])
    pooled = layer_norm(x, tree["layer_norm"]).mean(axis=1)
    heads, out = tree["task_heads"], {}
    for group, dims in CRESCENDAI_GROUPS.items():
        h = np.maximum(dense(pooled, heads[f"{group}_shared_1"]), 0)
        h = np.maximum(dense(h, heads[f"{group}_shared_2"]), 0)
        for dim in dims:
            out[dim] = dense(h, heads[f"{group}_{dim}_output"])[:, 0]
    return out


@pytest.fixture(scope="module")
def crescendai_files(tmp_path_factory, crescendai_tree):
    """The model saved the three ways: CrescendAI's own pickle, Flax msgpack, and safetensors via convert."""
    import jax.numpy as jnp
    from flax.serialization import to_bytes

    folder = tmp_path_factory.mktemp("crescendai")
    as_jax = {"params": {"params": __import__("jax").tree_util.tree_map(jnp.asarray, crescendai_tree)}}
    # colab_training.py: pickle.dump({"params": state.params, "loss": ..., "epoch": ...}), state.params = model.init(...)
    (folder / "final_finetuned_model.pkl").write_bytes(pickle.dumps({**as_jax, "loss": 0.0123, "epoch": 9}))
    (folder / "numpy_params.pkl").write_bytes(pickle.dumps({"params": crescendai_tree}))
    (folder / "model.msgpack").write_bytes(to_bytes({"params": crescendai_tree}))  # flax.serialization of the tree
    return folder


def test_crescendai_layout_detected_from_names(crescendai_files):
    checkpoint = read_checkpoint(crescendai_files / "model.msgpack")
    c = checkpoint.config
    assert isinstance(c, piano.CrescendAIConfig) and c.layout == "crescendai"
    assert (c.patch, c.dim, c.depth, c.heads, c.mlp_dim, c.head_hidden) == (16, C_DIM, C_DEPTH, C_HEADS, C_MLP, C_HIDDEN)
    assert {g: list(d) for g, d in c.groups} == CRESCENDAI_GROUPS
    assert checkpoint.meta.output == "linear"  # raw outputs unless the checkpoint's own config says otherwise


def test_crescendai_flax_module_has_the_upstream_names(crescendai_tree):
    import jax

    from muse_cli.engines.piano_ast import init_params

    config = read_checkpoint_config(crescendai_tree)
    tree = jax.eval_shape(lambda: init_params(config))
    ours = {"/".join(p.key for p in path): leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
    theirs = piano._flatten(crescendai_tree)
    assert ours == {k: v.shape for k, v in theirs.items()} == param_shapes(config)


def read_checkpoint_config(tree):
    return piano.infer_config(piano._flatten(tree))


def test_crescendai_base_size():
    config = piano.CrescendAIConfig()
    assert 80e6 < sum(int(np.prod(s)) for s in param_shapes(config).values()) < 95e6


@pytest.mark.parametrize("name", ["final_finetuned_model.pkl", "numpy_params.pkl", "model.msgpack", "converted"])
def test_crescendai_scores_equal_an_independent_forward(name, crescendai_files, crescendai_tree, run_cli):
    rng = np.random.default_rng(3)
    segs = rng.uniform(-80, 0, size=(6, 128, 128)).astype(np.float32)
    if name == "converted":
        code, out, err = run_cli("models", "convert", "piano", str(crescendai_files / "final_finetuned_model.pkl"),
                                 str(crescendai_files / "percepiano-ast.safetensors"), "--trust-checkpoint", "--json")
        assert code == 0, err
        import json

        record = json.loads(out)
        assert record["layout"] == "crescendai" and record["source_format"] == "pickle"
        path = crescendai_files / "percepiano-ast.safetensors"
        assert record["path"] == str(path) and validate_checkpoint(path) == "safetensors"
    else:
        path = crescendai_files / name
    engine = PianoEngine(str(path), trust=path.suffix == ".pkl")
    engine.load()
    result = engine.generate(request_of(segs, per_segment=True))
    expected = numpy_crescendai(crescendai_tree, segs)
    assert result.dimensions == list(PIANO_DIMENSIONS) and result.output == "linear" and result.scale is None
    per = np.array(result.per_segment)
    for i, dim in enumerate(PIANO_DIMENSIONS):
        np.testing.assert_allclose(per[:, i], expected[dim], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(result.mean[i], expected[dim].mean(), rtol=1e-4, atol=1e-4)
    assert np.ptp(per, axis=0).max() > 1e-3, "segments differ, so the per-segment check means something"


def test_crescendai_pickle_still_needs_trust(crescendai_files, run_cli, tmp_path):
    pkl = crescendai_files / "final_finetuned_model.pkl"
    with pytest.raises(InputError, match="trust-checkpoint"):
        PianoEngine(str(pkl)).load()
    code, out, err = run_cli("models", "convert", "piano", str(pkl), str(tmp_path / "out.safetensors"))
    assert code == 2 and "trust-checkpoint" in err and not (tmp_path / "out.safetensors").exists()


def test_convert_rejects_bad_targets_before_writing(crescendai_files, run_cli, tmp_path):
    pkl = str(crescendai_files / "final_finetuned_model.pkl")
    code, _, err = run_cli("models", "convert", "piano", pkl, str(tmp_path / "out.pt"), "--trust-checkpoint")
    assert code == 2 and ".safetensors or .msgpack" in err
    code, _, err = run_cli("models", "convert", "piano", pkl, str(tmp_path / "no" / "out.msgpack"), "--trust-checkpoint")
    assert code == 2 and "does not exist" in err
    mine = tmp_path / "keep.safetensors"
    mine.write_bytes(b"the user's own file")
    code, out, _ = run_cli("models", "convert", "piano", pkl, str(mine), "--trust-checkpoint")
    assert code == 0 and mine.read_bytes() == b"the user's own file"
    assert out.strip() == str(tmp_path / "keep-2.safetensors")
    assert read_checkpoint(tmp_path / "keep-2.safetensors").config.layout == "crescendai"
    code, out, _ = run_cli("models", "convert", "piano", pkl, str(tmp_path / "keep.msgpack"), "--trust-checkpoint")
    assert code == 0 and read_checkpoint(tmp_path / "keep.msgpack").format == "msgpack"


def test_crescendai_head_missing_a_dimension_is_refused(tmp_path, crescendai_tree):
    import copy

    from flax.serialization import to_bytes

    tree = copy.deepcopy(crescendai_tree)
    del tree["task_heads"]["timbre_pedal_Pedal_Clean_Blurred_output"]
    path = tmp_path / "broken.msgpack"
    path.write_bytes(to_bytes({"params": tree}))
    with pytest.raises(InputError, match="Pedal_Clean_Blurred"):
        validate_checkpoint(path)

"""The Audio Spectrogram Transformers behind the piano perceptual model (Flax linen): two layouts.

- `AST`, muse's own: 16x16 conv patches of a [128 mels, 128 frames] segment -> learned position
  embeddings -> pre-norm blocks (flax attention, exact GELU) -> mean over patches -> a small head.
- `CrescendAIAST`, the network of CrescendAI (Jai-Dhiman/piano-perception-transformer,
  src/models/ast_transformer.py), module for module and name for name, so its checkpoints load as
  they are: input [batch, time, freq], time-major flattened 16x16 patches into a Dense
  `patch_projection`, query/key/value/output_projection Dense layers, tanh GELU, a final LayerNorm
  and the mean over patches, then a grouped head with one Dense(1) per dimension, raw outputs.

Only imported on the path that runs the model; parameter names and shapes are listed without flax in
`piano.param_shapes`, which is what checkpoints are checked against.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from muse_cli.contracts import PIANO_DIMENSIONS
from muse_cli.engines.piano import (
    CRESCENDAI_HEAD_DIM,
    N_MELS,
    SEGMENT_FRAMES,
    ASTConfig,
    CheckpointMeta,
    Config,
    CrescendAIConfig,
)


class Block(nn.Module):
    dim: int
    heads: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.LayerNorm(epsilon=1e-6, name="ln1")(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads, name="attn")(h)
        h = nn.LayerNorm(epsilon=1e-6, name="ln2")(x)
        h = nn.gelu(nn.Dense(self.mlp_dim, name="mlp_in")(h), approximate=False)
        return x + nn.Dense(self.dim, name="mlp_out")(h)


class AST(nn.Module):
    """[batch, 128 mels, 128 frames] -> [batch, n_outputs] raw head outputs."""

    config: ASTConfig

    @nn.compact
    def __call__(self, mels: jax.Array) -> jax.Array:
        c = self.config
        x = nn.Conv(c.dim, (c.patch, c.patch), strides=(c.patch, c.patch), padding="VALID",
                    name="patch_embed")(mels[..., None])
        x = x.reshape(x.shape[0], -1, c.dim)
        x = x + self.param("pos_embed", nn.initializers.normal(stddev=0.02), (1, c.n_patches, c.dim))
        for i in range(c.depth):
            x = Block(c.dim, c.heads, c.mlp_dim, name=f"block_{i}")(x)
        x = nn.LayerNorm(epsilon=1e-6, name="norm")(x).mean(axis=1)
        x = nn.gelu(nn.Dense(c.head_hidden, name="head_hidden")(x), approximate=False)
        return nn.Dense(c.n_outputs, name="head_out")(x)


# ------------------------------------------------------------------ CrescendAI's layout
# Line numbers: src/models/ast_transformer.py of Jai-Dhiman/piano-perception-transformer (d752624).


class _CrescendAIPatches(nn.Module):
    """PatchEmbedding (lines 17-52): [batch, time, freq] -> time-major patches, each flattened
    (time within patch, then freq) -> Dense `patch_projection`."""

    patch: int
    dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, f = x.shape
        p = self.patch
        x = x.reshape(b, t // p, p, f // p, p).transpose(0, 1, 3, 2, 4).reshape(b, (t // p) * (f // p), p * p)
        return nn.Dense(self.dim, name="patch_projection")(x)


class _CrescendAIPositions(nn.Module):
    """PositionalEncoding2D (lines 55-77): one learned `pos_embedding` [1, patches, dim], added."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.param("pos_embedding", nn.initializers.normal(stddev=0.02), (1, *x.shape[1:]))


class _CrescendAIAttention(nn.Module):
    """MultiHeadAttention (lines 80-124): heads of 64, softmax(q k^T / sqrt(64)) v, `output_projection`."""

    heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, d = x.shape
        width, hd = self.heads * CRESCENDAI_HEAD_DIM, CRESCENDAI_HEAD_DIM

        def split(y: jax.Array) -> jax.Array:
            return y.reshape(b, n, self.heads, hd).transpose(0, 2, 1, 3)

        q = split(nn.Dense(width, name="query")(x))
        k = split(nn.Dense(width, name="key")(x))
        v = split(nn.Dense(width, name="value")(x))
        weights = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(hd), axis=-1)
        attended = (weights @ v).transpose(0, 2, 1, 3).reshape(b, n, width)
        return nn.Dense(d, name="output_projection")(attended)


class _CrescendAIBlock(nn.Module):
    """TransformerBlock (lines 127-162): pre-LayerNorm (flax default eps 1e-6), residuals, and
    `nn.gelu` with flax's default approximate=True, the tanh form (line 156)."""

    heads: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + _CrescendAIAttention(self.heads, name="attention")(nn.LayerNorm(epsilon=1e-6, name="layernorm1")(x))
        h = nn.LayerNorm(epsilon=1e-6, name="layernorm2")(x)
        h = nn.gelu(nn.Dense(self.mlp_dim, name="mlp_dense1")(h), approximate=True)
        return x + nn.Dense(x.shape[-1], name="mlp_dense2")(h)


class _CrescendAIHeads(nn.Module):
    """GroupedMultiTaskHead (lines 165-197): per group Dense `<g>_shared_1` -> ReLU -> `<g>_shared_2`
    (half as wide) -> ReLU, then one Dense(1) `<g>_<dimension>_output` per dimension. Returned as
    [batch, 19] in PIANO_DIMENSIONS order (upstream returns a dict keyed by the same names)."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]
    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        out: dict[str, jax.Array] = {}
        for group, dims in self.groups:
            h = nn.relu(nn.Dense(self.hidden, name=f"{group}_shared_1")(x))
            h = nn.relu(nn.Dense(self.hidden // 2, name=f"{group}_shared_2")(h))
            for dim in dims:
                out[dim] = nn.Dense(1, name=f"{group}_{dim}_output")(h)[..., 0]
        return jnp.stack([out[dim] for dim in PIANO_DIMENSIONS], axis=-1)


class CrescendAIAST(nn.Module):
    """AudioSpectrogramTransformer (lines 200-309) at inference (no dropout): [batch, 128 mels, 128 frames]
    muse segments are transposed to its [batch, time, freq] input; returns raw [batch, 19] outputs."""

    config: CrescendAIConfig

    @nn.compact
    def __call__(self, mels: jax.Array) -> jax.Array:
        c = self.config
        x = mels.transpose(0, 2, 1)
        x = _CrescendAIPatches(c.patch, c.dim, name="patch_embedding")(x)
        x = _CrescendAIPositions(name="pos_encoding")(x)
        for i in range(c.depth):
            x = _CrescendAIBlock(c.heads, c.mlp_dim, name=f"transformer_block_{i}")(x)
        x = nn.LayerNorm(epsilon=1e-6, name="layer_norm")(x).mean(axis=1)
        return _CrescendAIHeads(c.groups, c.head_hidden, name="task_heads")(x)


def model_for(config: Config) -> nn.Module:
    return CrescendAIAST(config) if isinstance(config, CrescendAIConfig) else AST(config)


def init_params(config: Config, seed: int = 0) -> dict[str, Any]:
    """Freshly initialised parameters: for tests, benchmarks and the start of training, never for scores."""
    example = jnp.zeros((1, N_MELS, SEGMENT_FRAMES), jnp.float32)  # shapes for init
    return jax.jit(model_for(config).init)(jax.random.PRNGKey(seed), example)["params"]


@lru_cache(maxsize=8)
def make_forward(config: Config, meta: CheckpointMeta) -> Callable[[Any, Any], jax.Array]:
    """A jitted forward(params, segments) -> scores: input scaling and output mapping per the checkpoint.

    Cached per architecture and mapping, so engines loading same-shaped checkpoints share compilations;
    the parameters are an argument, never baked into the function.
    """
    model = model_for(config)
    mean, std, sigmoid = meta.input_mean, meta.input_std, meta.output == "sigmoid"

    @jax.jit
    def forward(params: Any, segments: jax.Array) -> jax.Array:
        raw = model.apply({"params": params}, (segments - mean) / std)
        return jax.nn.sigmoid(raw) if sigmoid else raw

    return forward

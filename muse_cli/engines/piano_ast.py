"""The Audio Spectrogram Transformer behind the piano perceptual model (Flax linen).

16x16 patches of a 128-mel x 128-frame log-mel segment -> learned position embeddings -> pre-norm
transformer blocks -> mean over patches -> a small head to the 19 PercePiano dimensions. Only
imported on the path that runs the model; parameter names and shapes are listed without flax in
`piano.param_shapes`, which is what checkpoints are checked against.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from muse_cli.engines.piano import ASTConfig, CheckpointMeta, N_MELS, SEGMENT_FRAMES


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


def init_params(config: ASTConfig, seed: int = 0) -> dict[str, Any]:
    """Freshly initialised parameters: for tests, benchmarks and the start of training, never for scores."""
    example = jnp.zeros((1, N_MELS, SEGMENT_FRAMES), jnp.float32)  # shapes for init
    return jax.jit(AST(config).init)(jax.random.PRNGKey(seed), example)["params"]


@lru_cache(maxsize=8)
def make_forward(config: ASTConfig, meta: CheckpointMeta) -> Callable[[Any, Any], jax.Array]:
    """A jitted forward(params, segments) -> scores: input scaling and output mapping per the checkpoint.

    Cached per architecture and mapping, so engines loading same-shaped checkpoints share compilations;
    the parameters are an argument, never baked into the function.
    """
    model = AST(config)
    mean, std, sigmoid = meta.input_mean, meta.input_std, meta.output == "sigmoid"

    @jax.jit
    def forward(params: Any, segments: jax.Array) -> jax.Array:
        raw = model.apply({"params": params}, (segments - mean) / std)
        return jax.nn.sigmoid(raw) if sigmoid else raw

    return forward

"""Benchmark: the piano AST forward pass over a whole piece (real 768-d / 12-layer config).

Random weights, because only the speed is measured (no score is produced or reported). Counts the
segments a piece of --seconds gives at one every --hop frames, times preprocessing of a synthetic
piece of that length, the first batch (includes jit compilation) and the steady state.

    .venv/bin/python benchmarks/bench_piano_ast.py --seconds 180
    JAX_PLATFORMS=cuda python benchmarks/bench_piano_ast.py --batch-size 64   # on a GPU host
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="piece length")
    parser.add_argument("--hop", type=int, default=32, help="frames between segment starts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="parameter/activation dtype for the timing (the engine uses float32)")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from muse_cli.engines.piano import SAMPLE_RATE, ASTConfig, CheckpointMeta, preprocess
    from muse_cli.engines.piano_ast import init_params, make_forward

    rng = np.random.default_rng(0)
    t = np.arange(int(args.seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 261.6 * t) * np.exp(-(t % 0.5) * 4) + 0.01 * rng.standard_normal(t.size))
    start = time.perf_counter()
    segments = preprocess(audio.astype(np.float32), SAMPLE_RATE, args.hop)
    preprocess_s = time.perf_counter() - start
    n = len(segments)

    config = ASTConfig()
    params = init_params(config, seed=0)
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    forward = make_forward(config, CheckpointMeta())
    batch = args.batch_size

    def run_all() -> None:
        for lo in range(0, n, batch):
            chunk = segments[lo:lo + batch]
            if len(chunk) < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - len(chunk), 128, 128), np.float32)])
            jax.block_until_ready(forward(params, jnp.asarray(chunk, dtype)))

    start = time.perf_counter()
    jax.block_until_ready(forward(params, jnp.asarray(segments[:batch], dtype) if n >= batch
                                  else jnp.zeros((batch, 128, 128), dtype)))
    compile_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    run_all()
    total_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

    print(json.dumps({
        "device": str(jax.devices()[0]),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "piece_s": args.seconds,
        "segments": n,
        "hop_frames": args.hop,
        "batch_size": batch,
        "dtype": args.dtype,
        "params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
        "preprocess_s": round(preprocess_s, 3),
        "first_batch_s_incl_compile": round(compile_s, 3),
        "forward_total_s": round(total_s, 3),
        "segments_per_s": round(n / total_s, 2),
        "forward_cpu_s": round(cpu_s, 3),  # process CPU time: tells a busy host from a slow model
    }))


if __name__ == "__main__":
    main()

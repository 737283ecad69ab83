"""Median time to decode one full MIDI-LLM sample (2046 AMT tokens = 682 notes) to PrettyMIDI.

    .venv/bin/python benchmarks/bench_amt_decode.py [--runs 200]

Target: under 5 ms. Measures a clean stream (the constrained path) and a malformed one (unconstrained
sampling: stray tokens force the realigning scan).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from muse_cli.music import amt


def clean_stream(rng: np.random.Generator, n_tokens: int) -> list[int]:
    n = n_tokens // 3
    onset = np.minimum(np.cumsum(rng.choice([0, 0, 5, 10, 25], n)), amt.MAX_TIME - 1)
    dur = rng.integers(1, 200, n)
    instr = rng.choice([0, 24, 33, 128], n)
    pitch = rng.integers(30, 90, n)
    out = np.stack([amt.TIME_OFFSET + onset, amt.DUR_OFFSET + dur, amt.NOTE_OFFSET + 128 * instr + pitch], 1)
    return out.ravel().tolist()


def malformed_stream(rng: np.random.Generator, n_tokens: int) -> list[int]:
    tokens = clean_stream(rng, n_tokens)
    for i in rng.choice(len(tokens), 40, replace=False):
        tokens[i] = int(rng.integers(0, amt.VOCAB_SIZE))
    return tokens[:n_tokens]


def bench(tokens: list[int], runs: int) -> float:
    amt.decode(tokens)  # warm imports
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        amt.decode_with_stats(tokens)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=2046)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for name, make in (("clean", clean_stream), ("malformed", malformed_stream)):
        tokens = make(rng, args.tokens)
        _, stats = amt.decode_with_stats(tokens)
        ms = bench(tokens, args.runs)
        print(f"{name:10s} {len(tokens)} tokens  {stats.notes} notes  {stats.skipped} skipped  "
              f"median {ms:.2f} ms over {args.runs} runs")


if __name__ == "__main__":
    main()

"""MusicGen decoder speed: plain `generate()` against the engine's fast path, on real-size models.

Random weights of the real musicgen-small / musicgen-large architectures (configs built here, no
download), batch 1 with classifier-free guidance, as the engine runs them. Reports decoder steps
(tokens) per second and the real-time factor: seconds of audio per second of compute (50 steps
make 1 s of audio). Runs on CUDA when present, else CPU.

    python benchmarks/bench_musicgen.py                    # small, a few dozen steps
    python benchmarks/bench_musicgen.py --models small,large --steps 8
    python benchmarks/bench_musicgen.py --variants plain,fast --steps 1500   # a full 30 s window

Variants:
  plain     transformers' own sampling (do_sample=True), float32, dynamic KV cache
  engine    the engine's seeded sampler, float32, dynamic cache (what CPU users get)
  bf16      engine sampler, bfloat16 weights (float16 on GPUs without bf16)
  static    bf16 + static KV cache
  fast      bf16 + static KV cache + torch.compile (what `fast=True` does on CUDA)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FRAME_RATE = 50


def configs(size: str):
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        T5Config,
    )

    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)  # t5-base
    audio = EncodecConfig(
        sampling_rate=32000, audio_channels=1, num_filters=64, hidden_size=128, codebook_size=2048, codebook_dim=128,
        upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2], num_lstm_layers=2, normalize=False,
        chunk_length_s=None, overlap=None, use_causal_conv=False,
    )
    layers, hidden, heads = {"small": (24, 1024, 16), "medium": (48, 1536, 24), "large": (48, 2048, 32)}[size]
    decoder = MusicgenDecoderConfig(
        vocab_size=2048, num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, ffn_dim=4 * hidden,
        num_codebooks=4, audio_channels=1, pad_token_id=2048, bos_token_id=2048,
    )
    return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def build(size: str, device: str):
    import torch
    from transformers import MusicgenForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):
        model = MusicgenForConditionalGeneration(configs(size)).eval()
    g = model.generation_config
    g.decoder_start_token_id = g.pad_token_id = g.bos_token_id = 2048
    return model


def run_variant(model, variant: str, steps: int, device: str) -> dict:
    import torch
    from transformers import LogitsProcessorList

    from muse_cli.engines.musicgen_windows import SeededSampler

    half = torch.bfloat16 if device == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    dtype = torch.float32 if variant in {"plain", "engine"} else half
    model.to(dtype=dtype)
    model.audio_encoder.to(dtype=torch.float32)
    ids = torch.tensor([[100, 200, 300, 400, 500, 600, 1] + [0] * 25], device=device)  # padded to 32 like fast mode
    mask = (ids != 0).long()
    kwargs: dict = {"input_ids": ids, "attention_mask": mask, "max_new_tokens": steps, "guidance_scale": 3.0}
    if variant == "plain":
        kwargs.update(do_sample=True, top_k=250)
    else:
        sampler = SeededSampler([1], 4, temperature=1.0, top_k=250, top_p=0.0, guidance=3.0, step_offset=0)
        kwargs.update(
            do_sample=False, logits_processor=LogitsProcessorList([sampler]), temperature=None, top_k=None, top_p=None
        )
    if variant in {"static", "fast"}:
        kwargs["cache_implementation"] = "static"
    if variant == "static":
        kwargs["disable_compile"] = True
    if variant == "fast" and device == "cpu":
        from transformers import CompileConfig

        config = CompileConfig()
        config._compile_all_devices = True  # transformers compiles only on accelerators unless told
        kwargs["compile_config"] = config
    timings = []
    for attempt in range(2):  # the first call pays for warm-up (and compilation)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        if variant != "plain":  # generate appends its guidance processor to the list: a fresh one per call
            sampler = SeededSampler([1], 4, temperature=1.0, top_k=250, top_p=0.0, guidance=3.0, step_offset=0)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        with torch.inference_mode():
            model.generate(**kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    seconds = timings[-1]
    return {
        "variant": variant, "dtype": str(dtype).replace("torch.", ""), "steps": steps,
        "first_call_s": round(timings[0], 2), "s": round(seconds, 3), "tokens_per_s": round(steps / seconds, 2),
        "rtf": round(steps / FRAME_RATE / seconds, 3),
    }


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="small", help="comma list of small, medium, large")
    parser.add_argument("--variants", default="plain,engine,bf16,static,fast")
    parser.add_argument("--steps", type=int, default=0, help="decoder steps per run (default: 40 CPU, 1500 CUDA)")
    parser.add_argument("--large-steps", type=int, default=0, help="steps for large (default: 6 CPU)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for size in args.models.split(","):
        steps = args.steps or (1500 if device == "cuda" else 40)
        if size == "large" and device == "cpu":
            steps = args.large_steps or min(steps, 6)
        model = build(size, device)
        for variant in args.variants.split(","):
            try:
                row = run_variant(model, variant, steps, device)
            except Exception as exc:  # noqa: BLE001 -- report a variant that does not run here, keep measuring the others
                row = {"variant": variant, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
            row.update(model=size, device=device if device == "cpu" else torch.cuda.get_device_name(0))
            rows.append(row)
            print(json.dumps(row) if args.json else _fmt(row), flush=True)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    if device == "cuda":
        for size, goal in (("small", 5.0), ("large", 20.0)):
            best = [r for r in rows if r.get("model") == size and "tokens_per_s" in r]
            if best:
                secs = 1500 / max(r["tokens_per_s"] for r in best)
                print(f"30 s from {size}: {secs:.1f} s of decoding (goal <= {goal:.0f} s)")


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:6} {row['variant']:7} failed: {row['error']}"
    return (
        f"{row['model']:6} {row['variant']:7} {row['dtype']:9} {row['steps']:5d} steps  "
        f"{row['tokens_per_s']:8.2f} tok/s  RTF {row['rtf']:6.3f}  (first call {row['first_call_s']} s)"
    )


if __name__ == "__main__":
    main()

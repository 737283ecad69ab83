"""Decoding speed of the real MIDI-LLM architecture (Llama 3.2 1B + AMT vocabulary), random weights.

    .venv/bin/python benchmarks/bench_midi_llm.py [--tokens 64] [--batch 1 4] [--compile]

For each batch size: transformers `generate` with the dynamic cache, with a static cache, with a
static cache + torch.compile (--compile; on CUDA a static cache compiles on its own), and muse's own
constrained sampling loop (MidiLLMEngine's transformers runtime). Prints tokens/s per sample and in
total. CUDA in bf16 when present, else CPU in fp32. Nothing is downloaded: weights are random, which
does not change the speed of a dense model.
"""

from __future__ import annotations

import argparse
import time

import torch


def real_config():
    from transformers import LlamaConfig

    from muse_cli.engines.midi_llm import TEXT_VOCAB_SIZE

    return LlamaConfig(
        vocab_size=TEXT_VOCAB_SIZE + 55030,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        bos_token_id=128000,
        eos_token_id=None,
        pad_token_id=None,
    )


def build_model(device: str, dtype: torch.dtype):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(real_config()).to(dtype)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model.eval()


def prompt(device: str, batch: int) -> torch.Tensor:
    from muse_cli.engines.midi_llm import START_ID

    ids = [128000] + list(range(1000, 1040)) + [START_ID]  # the real prompt is about 40 text tokens
    return torch.tensor([ids] * batch, device=device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_generate(model, device: str, batch: int, tokens: int, **kwargs) -> float:
    ids = prompt(device, batch)
    args = dict(do_sample=True, temperature=1.0, top_p=0.98, max_new_tokens=tokens, min_new_tokens=tokens,
                pad_token_id=0, **kwargs)
    with torch.inference_mode():
        model.generate(ids, **{**args, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up (and compile)
        sync(device)
        t0 = time.perf_counter()
        out = model.generate(ids, **args)
        sync(device)
    assert out.shape[1] - ids.shape[1] == tokens
    return time.perf_counter() - t0


def time_engine(model, device: str, batch: int, tokens: int) -> float:
    from muse_cli.contracts import MidiRequest
    from muse_cli.engines.midi_llm import MidiLLMEngine

    engine = MidiLLMEngine("benchmark", runtime="transformers", device=device)
    engine._model = model  # the benchmark's random model stands in for loaded weights
    ids = prompt("cpu", 1)[0].tolist()
    request = MidiRequest(prompt="benchmark", count=batch, max_tokens=tokens)
    seeds = list(range(batch))
    engine._sample_transformers(ids, seeds, request.model_copy(update={"max_tokens": 3}), lambda d, t: None)
    sync(device)
    t0 = time.perf_counter()
    engine._sample_transformers(ids, seeds, request, lambda d, t: None)
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per sample (a multiple of 3)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--compile", action="store_true", help="also time a static cache + torch.compile")
    parser.add_argument("--skip", nargs="*", default=[], help="variants to leave out: dynamic static engine")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t0 = time.perf_counter()
    model = build_model(device, dtype)
    params = sum(p.numel() for p in model.parameters()) / 1e9
    print(f"device {device} {dtype}  threads {torch.get_num_threads()}  params {params:.2f} B  "
          f"built in {time.perf_counter() - t0:.1f} s  torch {torch.__version__}", flush=True)

    variants = {
        "dynamic": lambda b: time_generate(model, device, b, args.tokens),
        # On CUDA transformers compiles a static cache by itself; keep the plain static run uncompiled.
        "static": lambda b: time_generate(model, device, b, args.tokens, cache_implementation="static",
                                          disable_compile=True),
        "engine": lambda b: time_engine(model, device, b, args.tokens - args.tokens % 3),
    }
    if args.compile:
        from transformers import CompileConfig

        config = CompileConfig(mode="reduce-overhead" if device == "cuda" else "default")
        config._compile_all_devices = True  # transformers only auto-compiles on accelerators
        variants["static+compile"] = lambda b: time_generate(model, device, b, args.tokens,
                                                             cache_implementation="static", compile_config=config)
    for batch in args.batch:
        for name, run in variants.items():
            if name in args.skip:
                continue
            n = args.tokens - args.tokens % 3 if name == "engine" else args.tokens
            try:
                seconds = run(batch)
            except Exception as exc:  # a variant that does not run here is reported, not fatal
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                print(f"batch {batch}  {name:15s} failed: {reason}", flush=True)
                continue
            print(f"batch {batch}  {name:15s} {n} tokens in {seconds:6.2f} s  "
                  f"{n / seconds:7.2f} tok/s per sample  {batch * n / seconds:7.2f} tok/s total", flush=True)


if __name__ == "__main__":
    main()

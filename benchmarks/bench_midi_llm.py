"""Decoding speed and memory of the real MIDI-LLM architecture (Llama 3.2 1B + AMT vocabulary), random weights.

    .venv/bin/python benchmarks/bench_midi_llm.py [--tokens 24] [--batch 1 4] [--variants generate,muse-fp32,muse-int8]

The random model is saved once, in bfloat16 like the published checkpoint, with a small word-level
tokenizer, to a temporary folder; each variant then runs in its own process that loads it, so each
gets its own load time and memory figures:

  generate          transformers `generate` in float32 (bf16 on CUDA), dynamic KV cache, sampling with
                    temperature 1 and top_p 0.98, with muse's structure constraint (AmtConstraint) as its
                    logits processor: the baseline
  generate-static   the same with a static cache (on CUDA transformers compiles it)
  generate-compile  static cache + torch.compile (--compile)
  muse-fp32 / muse-bf16 / muse-int8
                    MidiLLMEngine's transformers runtime at that --precision: loaded through the engine
                    (int8 quantizes at load), then its own constrained sampling loop

Prints tokens/s (total over the batch) and the speed-up over `generate` at the same batch size, the
load time, the process's peak RSS, its peak anonymous memory and its RSS at the end (procmem.py says
why there are three). CUDA: bf16, and muse-int8 is refused (a CPU setting). Nothing is downloaded:
random weights do not change the speed of a dense model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # procmem

CPU_VARIANTS = "generate,muse-fp32,muse-int8"
CUDA_VARIANTS = "generate,generate-static,muse-bf16"


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


def save_checkpoint(folder: Path) -> Path:
    """The random real-size model in bf16 (as published) with a tokenizer that has a begin-of-text."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = build_model("cpu", torch.bfloat16)
    model.save_pretrained(folder)
    vocab = {"<unk>": 0, "<|begin_of_text|>": 128000}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", unk_token="<unk>").save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------ in the child process


def time_generate(model, device: str, batch: int, tokens: int, **kwargs) -> float:
    from transformers import LogitsProcessorList

    from muse_cli.engines.midi_llm import AmtConstraint

    ids = prompt(device, batch)

    def args(n: int) -> dict:
        constraint = AmtConstraint(batch, device=device, prompt_len=ids.shape[1])  # the structure, as muse samples
        return dict(do_sample=True, temperature=1.0, top_p=0.98, max_new_tokens=n, min_new_tokens=n, pad_token_id=0,
                    logits_processor=LogitsProcessorList([constraint]), **kwargs)

    with torch.inference_mode():
        model.generate(ids, **args(3))  # warm-up (and compile)
        sync(device)
        t0 = time.perf_counter()
        out = model.generate(ids, **args(tokens))
        sync(device)
    assert out.shape[1] - ids.shape[1] == tokens
    return time.perf_counter() - t0


def time_engine(engine, device: str, batch: int, tokens: int) -> float:
    from muse_cli.contracts import MidiRequest

    ids = prompt("cpu", 1)[0].tolist()
    request = MidiRequest(prompt="benchmark", count=batch, max_tokens=tokens, precision=engine.precision_request)
    seeds = list(range(batch))
    engine._sample_transformers(ids, seeds, request.model_copy(update={"max_tokens": 3}), lambda d, t: None)
    sync(device)
    t0 = time.perf_counter()
    engine._sample_transformers(ids, seeds, request, lambda d, t: None)
    sync(device)
    return time.perf_counter() - t0


def child(variant: str, folder: str, batches: list[int], tokens: int) -> dict:
    from transformers.utils import logging as hf_logging

    from procmem import self_memory

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    if variant.startswith("generate"):
        from transformers import AutoModelForCausalLM

        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
        model.generation_config.eos_token_id = None
        extra: dict = {}
        if variant in ("generate-static", "generate-compile"):
            extra["cache_implementation"] = "static"
        if variant == "generate-static":
            extra["disable_compile"] = True
        if variant == "generate-compile":
            from transformers import CompileConfig

            config = CompileConfig(mode="reduce-overhead" if device == "cuda" else "default")
            config._compile_all_devices = True  # transformers only auto-compiles on accelerators
            extra["compile_config"] = config
        run = lambda b, n: time_generate(model, device, b, n, **extra)  # noqa: E731
        n_of = lambda n: n  # noqa: E731
    else:
        from muse_cli.engines.midi_llm import MidiLLMEngine

        engine = MidiLLMEngine(folder, runtime="transformers", device=device, precision=variant.removeprefix("muse-"))
        engine.load()
        run = lambda b, n: time_engine(engine, device, b, n)  # noqa: E731
        n_of = lambda n: n - n % 3  # noqa: E731
    load_s = time.perf_counter() - t0
    loaded = self_memory()
    row: dict = {"variant": variant, "device": device, "threads": torch.get_num_threads(), "load_s": round(load_s, 1),
                 "rss_after_load_mb": loaded["rss_mb"]}
    for batch in batches:
        n = n_of(tokens)
        seconds = run(batch, n)
        row[f"tok_s_b{batch}"] = round(batch * n / seconds, 2)
    row.update(self_memory())
    return row


# ------------------------------------------------------------------------------ the parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=24, help="new tokens per sample (a multiple of 3)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--variants", default="", help=f"comma list (default: {CPU_VARIANTS} on CPU, {CUDA_VARIANTS} on CUDA)")
    parser.add_argument("--compile", action="store_true", help="also time a static cache + torch.compile")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads in each child")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.batch, args.tokens)))
        return

    from procmem import run_measured

    device = "cuda" if torch.cuda.is_available() else "cpu"
    variants = [v for v in (args.variants or (CUDA_VARIANTS if device == "cuda" else CPU_VARIANTS)).split(",") if v]
    if args.compile and "generate-compile" not in variants:
        variants.append("generate-compile")
    root = Path(tempfile.mkdtemp(prefix="muse-bench-midi-llm-"))
    try:
        t0 = time.perf_counter()
        folder = save_checkpoint(root / "midi-llm-random")
        print(f"device {device}  torch {torch.__version__}  random 1.35 B checkpoint (bf16) saved in "
              f"{time.perf_counter() - t0:.0f} s; {args.tokens} tokens per sample", flush=True)
        rows = []
        for variant in variants:
            argv = [sys.executable, __file__, "--child", variant, "--folder", str(folder), "--tokens", str(args.tokens),
                    "--batch", *map(str, args.batch)]
            if args.threads:
                argv += ["--threads", str(args.threads)]
            m = run_measured(argv, {**os.environ, "HF_HUB_OFFLINE": "1"})
            if m.exit:
                print(f"{variant:16s} failed (exit {m.exit}): {m.stderr.strip().splitlines()[-1][:200] if m.stderr.strip() else ''}")
                continue
            row = json.loads(m.stdout.strip().splitlines()[-1])
            row.update(peak_rss_mb=m.peak_rss_mb, peak_anon_mb=m.peak_anon_mb, wall_s=m.wall_s)
            base = next((r for r in rows if r["variant"] == "generate"), None)
            for batch in args.batch:
                if base and f"tok_s_b{batch}" in base:
                    row[f"speedup_b{batch}"] = round(row[f"tok_s_b{batch}"] / base[f"tok_s_b{batch}"], 2)
            rows.append(row)
            print(json.dumps(row) if args.json else _fmt(row, args.batch), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _fmt(row: dict, batches: list[int]) -> str:
    speed = "  ".join(
        f"batch {b}: {row[f'tok_s_b{b}']:6.2f} tok/s" + (f" (x{row[f'speedup_b{b}']:.1f})" if f"speedup_b{b}" in row else "")
        for b in batches
    )
    return (f"{row['variant']:16s} {speed}  load {row['load_s']:5.1f} s  peak RSS {row['peak_rss_mb']:6.0f} MB  "
            f"peak anonymous {row['peak_anon_mb']:6.0f} MB  RSS at the end {row['rss_mb']:6.0f} MB")


if __name__ == "__main__":
    main()

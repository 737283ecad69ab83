"""MusicGen speed: plain `generate()` against muse at each precision, on real-size models.

Random weights of the real musicgen-small / -medium / -large architectures (configs built here, no
download), batch 1 with classifier-free guidance 3, as the engine runs them. Reports decoder steps
(tokens) per second, the real-time factor (seconds of audio per second of compute; 50 steps make 1 s
of audio) and the speed-up over plain `generate()`. Runs on CUDA when present, else CPU.

    python benchmarks/bench_musicgen.py                    # small, a few dozen steps, CPU variants
    python benchmarks/bench_musicgen.py --models small,medium --steps 20 --threads 2
    python benchmarks/bench_musicgen.py --variants plain,fast --steps 1500   # CUDA: a full 30 s window
    python benchmarks/bench_musicgen.py --end-to-end 10    # also `muse gen audio -d 10` as a whole process

Variants (default: plain,engine,int8 on a CPU; plain,engine,bf16,static,fast on CUDA):
  plain     transformers' own sampling (do_sample=True, top_k 250), float32, dynamic KV cache
  engine    the engine's seeded sampler, float32, dynamic cache (--precision fp32)
  int8      engine sampler, the decoder quantized as the engine does it (--precision int8, CPU only;
            auto on a CPU)
  bf16      engine sampler, bfloat16 weights (float16 on GPUs without bf16) (--precision bf16)
  static    bf16 + static KV cache
  fast      bf16 + static KV cache + torch.compile (what auto does on CUDA)

--end-to-end SECONDS saves a random-weight musicgen-small (with a T5 tokenizer stand-in: a word-level
tokenizer over t5-base's vocabulary size) to a temporary folder and times `muse gen audio PROMPT
--backend local --model FOLDER -d SECONDS --precision P` for fp32 and int8 as separate processes:
load, text encoding, decoding and EnCodec, and the peak resident memory of each process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # procmem

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

    from muse_cli.engines.musicgen import quantize_decoder
    from muse_cli.engines.musicgen_windows import SeededSampler, codes_only

    half = torch.bfloat16 if device == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    dtype = torch.float32 if variant in {"plain", "engine", "int8"} else half
    model.to(dtype=dtype)
    model.audio_encoder.to(dtype=torch.float32)
    if variant == "int8":  # irreversible: main() runs it last
        quantize_decoder(model)
    ids = torch.tensor([[100, 200, 300, 400, 500, 600, 1] + [0] * 25], device=device)  # padded to 32 like fast mode
    mask = (ids != 0).long()
    kwargs: dict = {"input_ids": ids, "attention_mask": mask, "max_new_tokens": steps, "guidance_scale": 3.0}
    if variant == "plain":
        kwargs.update(do_sample=True, top_k=250)
    else:
        kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
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
        clock = StepClock()  # generate appends its guidance processor to the list: fresh processors per call
        processors = [clock]
        if variant != "plain":
            processors.insert(0, SeededSampler([1], 4, temperature=1.0, top_k=250, top_p=0.0, guidance=3.0, step_offset=0))
        kwargs["logits_processor"] = LogitsProcessorList(processors)
        with torch.inference_mode(), codes_only(model):  # EnCodec is not the decoder: the end-to-end run has it
            model.generate(**kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    seconds = timings[-1]
    # Decoder steps per second: on a CPU, the steady rate between the first and the last step (without the
    # text encoder and the prompt's prefill, which happen once per window); on CUDA the call as a whole
    # (1500 steps make those negligible, and timing steps would need a synchronisation each).
    steady = clock.rate() if device == "cpu" and steps >= 3 else steps / seconds
    return {
        "variant": variant, "dtype": "int8" if variant == "int8" else str(dtype).replace("torch.", ""), "steps": steps,
        "first_call_s": round(timings[0], 2), "s": round(seconds, 3), "tokens_per_s": round(steady, 2),
        "rtf": round(steady / FRAME_RATE, 3),
    }


class StepClock:
    """A logits processor that only notes when each decoder step reaches it."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        self.times.append(time.perf_counter())
        return scores

    def rate(self) -> float:
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="small", help="comma list of small, medium, large")
    parser.add_argument("--variants", default="", help="comma list (default: plain,engine,int8 on CPU; see above)")
    parser.add_argument("--steps", type=int, default=0, help="decoder steps per run (default: 40 CPU, 1500 CUDA)")
    parser.add_argument("--large-steps", type=int, default=0, help="steps for medium and large (default: 10 / 6 CPU)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--end-to-end", type=float, default=0, metavar="SECONDS",
                        help="also time `muse gen audio -d SECONDS` at fp32 and int8 as whole processes (CPU)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    default = "plain,engine,int8" if device == "cpu" else "plain,engine,bf16,static,fast"
    variants = [v for v in (args.variants or default).split(",") if v]
    if "int8" in variants:  # quantizing is irreversible: last
        variants = [v for v in variants if v != "int8"] + ["int8"]
    print(f"device {device}  threads {torch.get_num_threads()}  torch {torch.__version__}", flush=True)
    rows = []
    for size in args.models.split(","):
        steps = args.steps or (1500 if device == "cuda" else 40)
        if size in ("medium", "large") and device == "cpu":
            steps = args.large_steps or min(steps, 10 if size == "medium" else 6)
        model = build(size, device)
        for variant in variants:
            try:
                row = run_variant(model, variant, steps, device)
            except Exception as exc:  # noqa: BLE001 -- report a variant that does not run here, keep measuring the others
                row = {"variant": variant, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
            row.update(model=size, device=device if device == "cpu" else torch.cuda.get_device_name(0))
            plain = next((r for r in rows if r.get("model") == size and r.get("variant") == "plain" and "s" in r), None)
            if plain and "tokens_per_s" in row:
                row["speedup"] = round(row["tokens_per_s"] / plain["tokens_per_s"], 2)
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
    if args.end_to_end:
        for row in end_to_end(args.end_to_end, args.threads):
            print(json.dumps(row) if args.json else
                  f"muse gen audio -d {row['seconds']:g} --precision {row['precision']:5}  {row['wall_s']:7.1f} s  "
                  f"RTF {row['rtf']:.3f}  peak RSS {row['peak_rss_mb']:6.0f} MB  peak anonymous {row['peak_anon_mb']:6.0f} MB  "
                  f"RSS at the end {row['final_rss_mb']:6.0f} MB"
                  f"  (exit {row['exit']}){'  ' + row['stderr'] if 'stderr' in row else ''}", flush=True)


def save_small(folder: Path) -> Path:
    """A random-weight real-size musicgen-small saved like a checkpoint (config, weights, tokenizer)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    model = build("small", "cpu")
    g = model.generation_config
    g.pad_token_id = g.bos_token_id = g.decoder_start_token_id = 2048
    g.do_sample, g.guidance_scale, g.top_k, g.max_length = True, 3.0, 250, 1500
    with torch.no_grad():  # EnCodec codebooks start at zero (learnt by k-means): random ones make sound
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.copy_(torch.randn_like(layer.codebook.embed))
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    model.save_pretrained(folder)
    words = ["calm", "lofi", "beat", "with", "rain", "jazz", "piano", "drums"]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                            model_max_length=512).save_pretrained(folder)
    return folder


def end_to_end(seconds: float, threads: int) -> list[dict]:
    """`muse gen audio` as a whole process per precision: wall time, real-time factor, memory."""
    import os
    import shutil
    import tempfile

    from procmem import run_measured

    root = Path(tempfile.mkdtemp(prefix="muse-bench-"))
    rows = []
    try:
        folder = save_small(root / "musicgen-small-random")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        muse = Path(sys.executable).with_name("muse")
        command = [str(muse)] if muse.exists() else [sys.executable, "-m", "muse_cli"]
        for precision in ("fp32", "int8"):
            argv = [*command, "gen", "audio", "calm lofi beat with rain", "--backend", "local", "--model", str(folder),
                    "-d", f"{seconds:g}", "--seed", "1", "--precision", precision, "--out-dir", str(root / "out"), "--json"]
            m = run_measured(argv, env)
            row = {"seconds": seconds, "precision": precision, "wall_s": m.wall_s, "rtf": round(seconds / m.wall_s, 3),
                   "peak_rss_mb": m.peak_rss_mb, "peak_anon_mb": m.peak_anon_mb, "final_rss_mb": m.final_rss_mb,
                   "exit": m.exit}
            if m.exit:
                row["stderr"] = m.stderr.strip()[-300:]
            rows.append(row)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _fmt(row: dict) -> str:
    if "error" in row:
        return f"{row['model']:6} {row['variant']:7} failed: {row['error']}"
    speedup = f"  x{row['speedup']:.2f} plain" if "speedup" in row else ""
    return (
        f"{row['model']:6} {row['variant']:7} {row['dtype']:9} {row['steps']:5d} steps  "
        f"{row['tokens_per_s']:8.2f} tok/s  RTF {row['rtf']:6.3f}  (first call {row['first_call_s']} s){speedup}"
    )


if __name__ == "__main__":
    main()

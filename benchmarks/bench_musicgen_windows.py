"""What decoding once saves on a windowed MusicGen request: EnCodec work and total time, before and after.

Before issue 13, every window's `generate()` also decoded its whole batch (context + new frames, up to
30 s per clip) with EnCodec, and the engine threw that audio away and decoded every clip again at the
end. Now `musicgen_windows.codes_only` hands each window's codes back undecoded: EnCodec runs once per
clip. The language model's work is the same before and after.

Random weights of the real musicgen-small architecture (benchmarks/bench_musicgen.py's configs: t5-base,
the 24-layer decoder, the 32 kHz EnCodec), no download. A real 60 s request is 3,009 decoder steps,
which a shared 2-core CPU cannot run in minutes, so the parts are measured apart and added up:

1. `window decode`: EnCodec decoding one window's batch, [1, n, 4, 1500] codes (30 s per clip), as
   transformers' generate() does at its end (`audio_encoder.decode(output_ids, audio_scales)`);
   before: once per window, after: never.
2. `final decode`: the engine's own decode, one clip at a time over the whole request; same before and
   after.
3. `LM step`: one decoder step for n clips with classifier-free guidance (batch 2n), the engine's
   seeded sampler, float32, measured over --steps steps and multiplied by the request's steps.
4. A check that the saving is real on the real call: `model.generate` with --context frames of
   context and a few new steps, with and without `codes_only`; the difference is generate()'s own
   decode of context + new frames.

    python benchmarks/bench_musicgen_windows.py                       # 60 s, -n 1 and -n 4
    python benchmarks/bench_musicgen_windows.py --duration 70 --clips 1,4,16 --steps 6
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FRAME_RATE = 50
WINDOW_FRAMES = 1500


def timed(fn, repeat: int = 1) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import torch
    from transformers import LogitsProcessorList

    from bench_musicgen import build
    from muse_cli.engines import musicgen_windows as mw

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of audio per clip (more than 30: windows)")
    parser.add_argument("--clips", default="1,4", help="comma list of -n values")
    parser.add_argument("--steps", type=int, default=8, help="decoder steps timed per -n value")
    parser.add_argument("--context", type=int, default=250, help="context frames for the real-call check (0: skip)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build("small", device)
    codec = model.audio_encoder
    new_frames = math.ceil(args.duration * FRAME_RATE)
    plan = mw.plan_windows(new_frames, 0, FRAME_RATE, 18.0, 4)
    windows = len(plan.windows)
    ids = torch.tensor([[100, 200, 300, 400, 500, 600, 1]], device=device)
    rows = []

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for n in [int(c) for c in args.clips.split(",")]:
        gen = torch.Generator().manual_seed(n)
        window_codes = torch.randint(0, 2048, (1, n, 4, WINDOW_FRAMES), generator=gen).to(device)
        clip_codes = torch.randint(0, 2048, (1, 1, 4, plan.frames), generator=gen).to(device)
        with torch.inference_mode():
            window_decode = timed(lambda: (codec.decode(window_codes, [None] * n), sync()))
            one_clip = timed(lambda: (codec.decode(clip_codes, [None]), sync()))
            sampler = mw.SeededSampler(list(range(n)), 4, temperature=1.0, top_k=250, top_p=0.0, guidance=3.0, step_offset=0)
            kwargs = dict(
                input_ids=ids.expand(n, -1), attention_mask=torch.ones_like(ids).expand(n, -1), do_sample=False,
                guidance_scale=3.0, temperature=None, top_k=None, top_p=None,
            )
            with mw.codes_only(model):
                model.generate(**kwargs, max_new_tokens=2, logits_processor=LogitsProcessorList([sampler]))  # warm-up
                sampler = mw.SeededSampler(list(range(n)), 4, temperature=1.0, top_k=250, top_p=0.0, guidance=3.0, step_offset=0)
                lm = timed(lambda: (model.generate(**kwargs, max_new_tokens=args.steps,
                                                   logits_processor=LogitsProcessorList([sampler])), sync()))
        step_s = lm / args.steps
        lm_total = step_s * plan.steps
        final = one_clip * n
        # Every window's generate() decoded context + new frames for the whole batch: up to 30 s per clip.
        window_frames = [w.context + w.new for w in plan.windows]
        wasted = sum(window_decode * f / WINDOW_FRAMES for f in window_frames)
        before, after = lm_total + wasted + final, lm_total + final
        row = {
            "model": "small (random weights)", "device": device, "threads": torch.get_num_threads(), "clips": n,
            "duration_s": args.duration, "windows": windows, "steps": plan.steps,
            "encodec_seconds_decoded_before": round(n * (sum(window_frames) + plan.frames) / FRAME_RATE, 1),
            "encodec_seconds_decoded_after": round(n * plan.frames / FRAME_RATE, 1),
            "window_decode_30s_batch_s": round(window_decode, 2), "final_decode_s": round(final, 2),
            "lm_step_s": round(step_s, 3), "lm_total_s": round(lm_total, 1),
            "decode_before_s": round(wasted + final, 1), "decode_after_s": round(final, 1),
            "total_before_s": round(before, 1), "total_after_s": round(after, 1),
            "saved_pct": round(100 * (before - after) / before, 1),
        }
        rows.append(row)
        print(json.dumps(row) if args.json else _fmt(row), flush=True)

    if args.context:
        context = torch.randint(0, 2048, (4, args.context), generator=torch.Generator().manual_seed(0)).to(device)
        check = {}
        for label, scope in (("generate, decoding", None), ("generate, codes_only", mw.codes_only)):
            sampler = mw.SeededSampler([0], 4, temperature=1.0, top_k=250, top_p=0.0, guidance=3.0, step_offset=0)
            call = dict(input_ids=ids, attention_mask=torch.ones_like(ids), decoder_input_ids=context, do_sample=False,
                        guidance_scale=3.0, temperature=None, top_k=None, top_p=None, max_new_tokens=7,
                        logits_processor=LogitsProcessorList([sampler]))
            with torch.inference_mode():
                if scope is None:
                    check[label] = timed(lambda: (model.generate(**call), sync()))
                else:
                    with scope(model):
                        check[label] = timed(lambda: (model.generate(**call), sync()))
        row = {"check": f"one real generate() call, {args.context} context frames + 7 steps, -n 1",
               **{k: round(v, 2) for k, v in check.items()},
               "its_own_decode_s": round(check["generate, decoding"] - check["generate, codes_only"], 2)}
        print(json.dumps(row) if args.json else "  ".join(f"{k}: {v}" for k, v in row.items()), flush=True)


def _fmt(row: dict) -> str:
    return (
        f"-n {row['clips']}: {row['duration_s']:.0f} s, {row['windows']} windows, {row['steps']} steps | EnCodec decodes "
        f"{row['encodec_seconds_decoded_before']} s of audio before, {row['encodec_seconds_decoded_after']} s after | "
        f"decode {row['decode_before_s']} s -> {row['decode_after_s']} s | LM {row['lm_total_s']} s "
        f"({row['lm_step_s']} s/step) | total {row['total_before_s']} s -> {row['total_after_s']} s "
        f"({row['saved_pct']}% saved)"
    )


if __name__ == "__main__":
    main()

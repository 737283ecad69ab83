"""Smoke run at real size: each engine loads its real architecture (random weights) and serves one request.

    .venv/bin/python benchmarks/smoke_real_size.py                     # every case that fits here
    .venv/bin/python benchmarks/smoke_real_size.py --only musicgen-small piano --json
    .venv/bin/python benchmarks/smoke_real_size.py --cpu-small         # CPU: the small stand-ins too

What the Modal classes do, minus Modal: a random-initialised model of the real configuration is
saved to a temporary folder, the engine loads it by path through its normal loading code, and one
request goes through `remote.common.serve`, the body of every deployed `generate` method. Each
case runs in its own process, so the peak memory is that case's: GPU memory from
torch.cuda.max_memory_allocated (JAX: the device's peak_bytes_in_use) on a GPU, else peak RSS.

Cases: MusicGen small and large, MIDI-LLM (Llama 3.2 1B + AMT vocabulary), the piano AST, and the
lyrics LLM at Qwen2-7B size. On a CPU-only host the cases too large for it are skipped with the
reason; --cpu-small adds same-architecture smaller stand-ins (Qwen2 0.5B for the lyrics LLM).
Random weights make noise, not music: only loading, shapes, the wire protocol and timings are real.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

GIB = 1024**3


# ------------------------------------------------------------------------------------- builders


def build_musicgen(size: str, folder: Path) -> None:
    import torch
    from bench_musicgen import (
        configs,  # the real small/large configs, shared with the speed benchmark
    )
    from tiny_musicgen import tiny_tokenizer
    from transformers import (
        EncodecFeatureExtractor,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(configs(size)).eval()
    for layer in model.audio_encoder.quantizer.layers:  # k-means codebooks start at zero
        layer.codebook.embed.copy_(torch.randn_like(layer.codebook.embed))
        layer.codebook.embed_avg.copy_(layer.codebook.embed)
    g = model.generation_config
    g.decoder_start_token_id = g.pad_token_id = g.bos_token_id = 2048
    g.do_sample, g.guidance_scale, g.top_k, g.max_length = True, 3.0, 250, 1500
    model.save_pretrained(folder)
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0)
    MusicgenProcessor(feature_extractor=extractor, tokenizer=tiny_tokenizer()).save_pretrained(folder)


def build_midi_llm(folder: Path) -> None:
    import torch
    from bench_midi_llm import real_config
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from muse_cli.engines.midi_llm import PROMPT_PREFIX

    vocab = {"<unk>": 0}
    for word in (PROMPT_PREFIX + " a calm piano piece").split():
        vocab.setdefault(word, len(vocab))
    vocab["<|begin_of_text|>"] = 128000
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    model = LlamaForCausalLM(real_config()).to(torch.bfloat16)
    model.generation_config.eos_token_id = None
    model.save_pretrained(folder)


def build_qwen(folder: Path, size: str) -> None:
    import torch
    from tiny_song_models import build_tiny_chat_llm
    from transformers import Qwen2Config, Qwen2ForCausalLM

    build_tiny_chat_llm(folder, sections=True)  # chat-template tokenizer; the model is replaced below
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    shapes = {  # Qwen2-7B / Qwen2.5-7B and Qwen2.5-0.5B shapes; vocabulary: the tokenizer's
        "7b": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
               "num_key_value_heads": 4, "tie_word_embeddings": False},
        "0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                 "num_key_value_heads": 2, "tie_word_embeddings": True},
    }[size]
    old = json.loads((folder / "config.json").read_text())
    config = Qwen2Config(vocab_size=vocab, max_position_embeddings=32768, rope_theta=1e6,
                         bos_token_id=old["bos_token_id"], pad_token_id=old["pad_token_id"],
                         eos_token_id=old["eos_token_id"], **shapes)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)


def build_piano(folder: Path) -> Path:
    from muse_cli.engines.piano import ASTConfig, save_checkpoint
    from muse_cli.engines.piano_ast import init_params

    path = folder / "ast-random.msgpack"
    save_checkpoint(init_params(ASTConfig(), seed=0), path)
    return path


# ------------------------------------------------------------------------------------ the cases


def _musicgen(size: str) -> dict[str, Any]:
    def build(folder: Path) -> str:
        build_musicgen(size, folder)
        return str(folder)

    def load(path: str) -> Any:
        from muse_cli.engines.musicgen import MusicGenEngine

        engine = MusicGenEngine(path)
        engine.load()
        return engine

    def request(path: str) -> tuple[Any, dict]:
        from muse_cli.contracts import AudioRequest

        return AudioRequest, {"prompt": "calm jazz piano", "duration": 2.0, "seed": 1, "model": path}

    return {"build": build, "load": load, "request": request, "torch": True}


def _midi_llm() -> dict[str, Any]:
    def build(folder: Path) -> str:
        build_midi_llm(folder)
        return str(folder)

    def load(path: str) -> Any:
        from muse_cli.engines.midi_llm import MidiLLMEngine

        engine = MidiLLMEngine(path, runtime="transformers")  # vLLM is the Modal image's runtime
        engine.load()
        return engine

    def request(path: str) -> tuple[Any, dict]:
        from muse_cli.contracts import MidiRequest

        return MidiRequest, {"prompt": "a calm piano piece", "engine": "midi-llm", "seed": 1, "max_tokens": 60, "model": path}

    return {"build": build, "load": load, "request": request, "torch": True}


def _lyrics(size: str) -> dict[str, Any]:
    def build(folder: Path) -> str:
        build_qwen(folder, size)
        return str(folder)

    def load(path: str) -> Any:
        from muse_cli.engines.lyrics import LyricsEngine

        engine = LyricsEngine(path)
        engine.load()
        return engine

    def request(path: str) -> tuple[Any, dict]:
        from muse_cli.contracts import LyricsRequest

        return LyricsRequest, {"task": "tags", "description": "summer synth-pop", "seed": 1, "max_new_tokens": 32}

    return {"build": build, "load": load, "request": request, "torch": True}


def _piano() -> dict[str, Any]:
    def build(folder: Path) -> str:
        return str(build_piano(folder))

    def load(path: str) -> Any:
        from muse_cli.engines.piano import PianoEngine

        engine = PianoEngine(path)
        engine.load()
        return engine

    def request(path: str) -> tuple[Any, dict]:
        import numpy as np

        from muse_cli.contracts import PianoRequest
        from muse_cli.engines.piano import SAMPLE_RATE, make_request

        t = np.arange(int(30 * SAMPLE_RATE)) / SAMPLE_RATE
        audio = (0.3 * np.sin(2 * np.pi * 261.6 * t) * np.exp(-(t % 0.5) * 4)).astype(np.float32)
        return PianoRequest, make_request(audio, SAMPLE_RATE).model_dump(mode="python")

    return {"build": build, "load": load, "request": request, "torch": False}


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "musicgen-small": lambda: _musicgen("small"),
    "musicgen-large": lambda: _musicgen("large"),
    "midi-llm": _midi_llm,
    "piano-ast": _piano,
    "lyrics-qwen2-7b": lambda: _lyrics("7b"),
    "lyrics-qwen2.5-0.5b": lambda: _lyrics("0.5b"),
}
GPU_ONLY = {
    "musicgen-large": "3.3B parameters: float32 on CPU needs ~14 GB and minutes per second of audio",
    "lyrics-qwen2-7b": "7.6B parameters: 15 GB in bfloat16, more than this host can spare next to the build",
}
CPU_SMALL = {"lyrics-qwen2.5-0.5b"}


# ------------------------------------------------------------------------------------- one case


def _peak(torch_case: bool) -> dict[str, Any]:
    import resource

    info: dict[str, Any] = {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)}
    if torch_case:
        import torch

        if torch.cuda.is_available():
            info["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
    else:
        try:
            import jax

            device = jax.devices()[0]
            stats = device.memory_stats() if device.platform == "gpu" else None
            if stats:
                info["peak_gpu_gib"] = round(stats.get("peak_bytes_in_use", 0) / GIB, 2)
        except (RuntimeError, AttributeError):  # a CPU JAX has no memory stats
            info["peak_gpu_gib"] = None
    return info


def run_case(name: str, stage: str, path: str) -> dict[str, Any]:
    case = CASES[name]()
    if stage == "build":
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        model_path = case["build"](folder)
        return {"model_path": model_path, "build_s": round(time.perf_counter() - start, 1)}
    from remote import common

    start = time.perf_counter()
    engine = case["load"](path)
    load_s = time.perf_counter() - start
    request_cls, fields = case["request"](path)
    from muse_cli.contracts import PROTOCOL_VERSION

    payload = {"protocol": PROTOCOL_VERSION, "request": fields}
    start = time.perf_counter()
    reply = common.serve(engine, request_cls, payload)
    request_s = time.perf_counter() - start
    out: dict[str, Any] = {"load_s": round(load_s, 1), "request_s": round(request_s, 1),
                           "device": str(getattr(engine, "device", "?")), **_peak(case["torch"])}
    if "error" in reply:
        out["error"] = reply["error"]
    else:
        out["reply"] = _summary(reply["result"])
    return out


def _summary(result: dict[str, Any]) -> str:
    if "clips" in result:
        clip = result["clips"][0]
        return f"{clip['duration']:.2f} s of audio at {clip['sample_rate']} Hz"
    if "samples" in result:
        return f"{len(result['samples'][0]['midi'])} bytes of MIDI"
    if "scores" in result or "n_segments" in result:
        return f"{result.get('n_segments', '?')} segments scored"
    if "task" in result:
        text = result.get("tags") or result.get("lyrics") or ""
        return f"{result['task']}: {len(text)} characters of (random) text"
    return ", ".join(sorted(result))[:80]


def _child(name: str, stage: str, path: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name, stage, path]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{stage} took over {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-3:]
        return {"error": f"{stage} exited {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        name, stage, path = sys.argv[2:5]
        print(json.dumps(run_case(name, stage, path)), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--cpu-small", action="store_true", help="also run the smaller stand-ins")
    parser.add_argument("--json", action="store_true", help="one JSON object per case on stdout")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per stage")
    args = parser.parse_args()

    import torch

    gpu = torch.cuda.is_available()
    names = args.only or [n for n in CASES if n not in CPU_SMALL or args.cpu_small or not gpu]
    rows = []
    for name in names:
        row: dict[str, Any] = {"case": name, "host": torch.cuda.get_device_name(0) if gpu else "cpu"}
        if not gpu and name in GPU_ONLY and not args.only:
            row["skipped"] = GPU_ONLY[name]
        else:
            with tempfile.TemporaryDirectory(prefix=f"muse-smoke-{name}-") as tmp:
                built = _child(name, "build", tmp, args.timeout)
                row.update(built)
                if "error" not in built:
                    row.update(_child(name, "serve", built["model_path"], args.timeout))
        row.pop("model_path", None)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(_line(row), flush=True)
    return 0 if all("error" not in r for r in rows) else 1


def _line(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"{row['case']:<22} skipped: {row['skipped']}"
    if "error" in row and "load_s" not in row:
        return f"{row['case']:<22} FAILED: {row['error']}"
    mem = f"peak GPU {row['peak_gpu_gib']} GiB" if "peak_gpu_gib" in row else f"peak RSS {row['peak_rss_gib']} GiB"
    outcome = f"error {row['error']}" if "error" in row else row.get("reply", "")
    return (f"{row['case']:<22} on {row['device']:<6} build {row['build_s']:>6.1f} s  load {row['load_s']:>6.1f} s  "
            f"request {row['request_s']:>6.1f} s  {mem}  -> {outcome}")


if __name__ == "__main__":
    sys.exit(main())

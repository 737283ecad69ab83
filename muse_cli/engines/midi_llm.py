"""MIDI-LLM: text-to-MIDI with Llama 3.2 1B whose vocabulary is extended by the AMT music tokens.

Two runtimes serve the same requests:
- transformers (local, CPU or GPU): our own sampling loop with a per-sample random generator and
  `AmtConstraint`, which only lets the model write well-formed AMT triples, so every sample decodes
  with zero skipped tokens;
- vLLM (the Modal deployment): fast batched sampling restricted to the music ids only; its rare
  malformed triples are dropped and counted by the tolerant decoder.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Literal

from muse_cli.contracts import MidiRequest, MidiResult, MidiSample
from muse_cli.ops import hub
from muse_cli.engines.base import derive_seed, resolve_seed
from muse_cli.errors import InputError, RuntimeFailure
from muse_cli.music import amt
from muse_cli.progress import ProgressFn, null_progress

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "slseanwu/MIDI-LLM_Llama-3.2-1B"
TEXT_VOCAB_SIZE = 128256  # Llama 3 text ids; music token t is model id TEXT_VOCAB_SIZE + t
MIDI_FIRST_ID = TEXT_VOCAB_SIZE
MIDI_END_ID = TEXT_VOCAB_SIZE + amt.AUTOREGRESS  # exclusive: the ids the reference lets the model sample
START_ID = TEXT_VOCAB_SIZE + amt.AUTOREGRESS  # 183282 ends every prompt
PROMPT_PREFIX = "You are a world-class composer. Please compose some music according to the following description: "
MAX_SIMULTANEOUS_NOTES = 64  # the reference rejects samples with more notes than this at one time
MAX_MELODIC_INSTRUMENTS = 15  # a MIDI file has 16 channels, one of them reserved for drums
MAX_MODEL_LEN = 10240  # vLLM context: the longest prompt we expect plus max_tokens' upper bound
HEAD_ROWS = amt.REST + 1  # AMT tokens 0..REST: all that AmtConstraint ever lets the transformers runtime sample
PULL_HINT = "run: muse models pull midi-llm"

Runtime = Literal["auto", "transformers", "vllm"]


# ------------------------------------------------------------------------------------ prompt


def check_request(request: MidiRequest) -> None:
    """MIDI-LLM needs something to go on: a prompt or at least one musical option the user set.

    `instrument` has a default, so it alone does not count.
    """
    if request.prompt is None and all(
        v is None for v in (request.difficulty, request.key, request.tempo, request.style, request.time_signature)
    ):
        raise InputError(
            "MIDI-LLM needs a prompt or at least one of --difficulty, --key, --tempo, --style, --time-signature"
        )


def _instrument_words(name: str) -> str:
    """GM name as people say it, like MidiCaps captions: 'Acoustic Grand Piano' -> 'piano'."""
    from muse_cli.music.instruments import parse_instrument

    program = parse_instrument(name).program
    if program < 3:
        return "piano"
    words = name.lower().split()
    if words and words[-1].isdigit():  # 'string ensemble 1' -> 'string ensemble'
        words = words[:-1]
    return " ".join(words).replace("(", "").replace(")", "")


def _options_sentence(request: MidiRequest, with_instrument: bool) -> str:
    words = [w for w in (request.difficulty, request.style) if w]
    if with_instrument:
        words.append(_instrument_words(request.instrument))
    head = " ".join(words + ["piece"])
    article = "An" if head[0].lower() in "aeiou" else "A"
    tail = ""
    if request.key:
        tail += f" in {request.key}"
    if request.time_signature:
        tail += f" with a {request.time_signature} time signature"
    if request.tempo is not None:
        tail += f" at {request.tempo:g} BPM"
    return f"{article} {head}{tail}."


def describe(request: MidiRequest) -> str:
    """The description MIDI-LLM is prompted with: the user's prompt, then the options they set.

    Without a prompt the options become one sentence ("A beginner piano piece in C major at
    80 BPM."). With one, the instrument is added only when it is not the default piano, so a prompt
    about guitars is not contradicted by a default the user never chose. bars and hands only guide
    the etude composer.
    """
    check_request(request)
    from muse_cli.music.instruments import parse_instrument

    if request.prompt is None:
        return _options_sentence(request, with_instrument=True)
    extra_instrument = parse_instrument(request.instrument).program != 0
    has_options = extra_instrument or any(
        v is not None for v in (request.difficulty, request.key, request.tempo, request.style, request.time_signature)
    )
    if not has_options:
        return request.prompt
    text = request.prompt if request.prompt[-1] in ".!?" else request.prompt + "."
    return f"{text} {_options_sentence(request, with_instrument=extra_instrument)}"


def prompt_ids(tokenizer: Any, description: str) -> list[int]:
    """begin-of-text + the encoded instruction + the AMT AUTOREGRESS flag, as the model was trained."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise RuntimeFailure("the MIDI-LLM tokenizer has no begin-of-text token", hint=PULL_HINT)
    text_ids = tokenizer(PROMPT_PREFIX + description + " ", add_special_tokens=False)["input_ids"]
    return [int(bos), *map(int, text_ids), START_ID]


def token_budget(request: MidiRequest) -> int:
    """Tokens to sample: max_tokens rounded down to whole triples, so no sample ends mid-note."""
    return request.max_tokens - request.max_tokens % 3


def vllm_sampling_kwargs(request: MidiRequest, seed: int) -> dict[str, Any]:
    """Arguments of one vLLM SamplingParams: one request per sample, so each seed reproduces alone."""
    return {
        "n": 1,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": token_budget(request),
        "seed": seed,
        # MIDI-LLM's own set (its midi_llm/utils.py line 53), anticipated controls included:
        # amt.decode plays those as notes, as anticipation's events_to_midi does (docs/midi-llm.md).
        "allowed_token_ids": list(range(MIDI_FIRST_ID, MIDI_END_ID)),
    }


# -------------------------------------------------------------------------------- constraint


class AmtConstraint:
    """Which AMT tokens may come next, per batch row, so that samples are well-formed music.

    Every triple is (time, duration, note or REST): the time is an onset no earlier than the
    previous one (arrival-time order, as the reference tokenizer writes them) and late enough that
    no more than 64 notes ever sound at once; a REST comes only with duration 0; at most 15 melodic
    instruments plus drums, so the result fits the channels of a MIDI file. A row whose next onset
    would have to pass 100 s (the vocabulary's last time) is finished.

    `window()` gives the token range allowed at the current step (all rows are at the same position
    in their triple) and a per-row mask over it; `advance(tokens)` takes the sampled AMT tokens.
    Called as `constraint(input_ids, scores)` it is also a transformers LogitsProcessor over model ids.
    """

    def __init__(self, batch: int, device: Any = "cpu", prompt_len: int | None = None):
        import torch

        self.batch = batch
        self.device = torch.device(device)
        self.step = 0
        self.prompt_len = prompt_len
        self.onset = torch.zeros(batch, dtype=torch.long, device=self.device)
        self.dur = torch.zeros(batch, dtype=torch.long, device=self.device)
        # The 64 latest note ends per row (ticks; a zero-length note occupies one tick); -1 = empty.
        self.ends = torch.full((batch, MAX_SIMULTANEOUS_NOTES), -1, dtype=torch.long, device=self.device)
        self.instruments = torch.zeros(batch, amt.MAX_INSTR, dtype=torch.bool, device=self.device)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=self.device)
        self._times = torch.arange(amt.MAX_TIME, device=self.device)
        self._durs = torch.arange(amt.MAX_DUR, device=self.device)

    @property
    def phase(self) -> int:
        return self.step % 3

    def window(self) -> tuple[int, int, "torch.Tensor"]:
        """(first, end, mask[batch, end - first]): allowed AMT tokens first..end-1 for each row.

        Rows that are finished get an all-true mask (their samples are ignored), so sampling never
        sees a row with nothing allowed.
        """
        import torch

        if self.phase == 0:
            earliest = torch.maximum(self.onset, self.ends.min(dim=1).values)
            mask = self._times[None, :] >= earliest[:, None]
            self.finished |= ~mask.any(dim=1)
            first, end = amt.TIME_OFFSET, amt.TIME_OFFSET + amt.MAX_TIME
        elif self.phase == 1:
            mask = torch.ones(self.batch, amt.MAX_DUR, dtype=torch.bool, device=self.device)
            first, end = amt.DUR_OFFSET, amt.DUR_OFFSET + amt.MAX_DUR
        else:
            full = self.instruments[:, :128].sum(dim=1) >= MAX_MELODIC_INSTRUMENTS
            allowed_instr = self.instruments | ~full[:, None]
            allowed_instr[:, amt.DRUMS] = True
            rest_ok = (self.dur == 0)[:, None]
            mask = torch.cat([allowed_instr.repeat_interleave(amt.MAX_PITCH, dim=1), rest_ok], dim=1)
            first, end = amt.NOTE_OFFSET, amt.REST + 1
        mask[self.finished] = True
        return first, end, mask

    def advance(self, tokens: "torch.Tensor") -> None:
        """Take one sampled AMT token per row (ignored for finished rows)."""
        import torch

        tokens = tokens.to(self.device, torch.long)
        live = ~self.finished
        if self.phase == 0:
            self.onset = torch.where(live, tokens - amt.TIME_OFFSET, self.onset)
        elif self.phase == 1:
            self.dur = torch.where(live, tokens - amt.DUR_OFFSET, self.dur)
        else:
            is_note = live & (tokens < amt.REST)
            if is_note.any():
                code = (tokens - amt.NOTE_OFFSET).clamp(0, amt.MAX_NOTE - 1)
                rows = torch.nonzero(is_note).squeeze(1)
                self.instruments[rows, code[rows] // amt.MAX_PITCH] = True
                end = self.onset + self.dur.clamp(min=1)
                slot = self.ends.argmin(dim=1, keepdim=True)
                replaced = torch.maximum(self.ends.gather(1, slot).squeeze(1), end)
                new = torch.where(is_note, replaced, self.ends.gather(1, slot).squeeze(1))
                self.ends.scatter_(1, slot, new[:, None])
        self.step += 1

    def __call__(self, input_ids: "torch.Tensor", scores: "torch.Tensor") -> "torch.Tensor":
        """LogitsProcessor: take the tokens sampled since the last call, mask all but the allowed ids."""
        import torch

        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        while self.prompt_len + self.step < input_ids.shape[1]:
            self.advance(input_ids[:, self.prompt_len + self.step] - TEXT_VOCAB_SIZE)
        first, end, mask = self.window()
        out = torch.full_like(scores, float("-inf"))
        lo, hi = TEXT_VOCAB_SIZE + first, TEXT_VOCAB_SIZE + end
        out[:, lo:hi] = scores[:, lo:hi].masked_fill(~mask.to(scores.device), float("-inf"))
        return out


def sample_rows(scores: "torch.Tensor", temperature: float, top_p: float, generators: list[Any]) -> "torch.Tensor":
    """Temperature + nucleus sampling, one random generator per row (so a row's seed owns its draws)."""
    import torch

    probs = torch.softmax(scores.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest head whose mass reaches top_p (the token that crosses it stays).
        drop = (sorted_p.cumsum(dim=-1) - sorted_p) > top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.cat([torch.multinomial(probs[b], 1, generator=g) for b, g in enumerate(generators)])


# ------------------------------------------------------------------------------------ engine


def _is_local_path(model: str) -> bool:
    return os.path.exists(os.path.expanduser(model)) or model.startswith((".", "/", "~"))


class MidiLLMEngine:
    """MIDI-LLM on vLLM (bf16, or fp8) or transformers at `precision` (auto: int8 on a CPU, bf16 on a GPU).

    On transformers the output layer keeps only the rows of the AMT tokens the constraint can allow
    (`HEAD_ROWS`, 27,513 of 183,286): the other logits would be masked anyway, and the full text
    vocabulary was the largest matrix of the model. At int8, the decoder's linear layers, that head
    and the input embedding are 8-bit (tests/test_precision.py holds them to the fidelity bound).
    """

    name = "midi-llm"
    takes_precision = True  # the local backend loads one engine per request precision

    def __init__(self, model: str = DEFAULT_MODEL, runtime: Runtime = "auto", device: str | None = None,
                 fp8: bool = False, precision: str = "auto"):
        from muse_cli.engines import precision as P

        if runtime not in ("auto", "transformers", "vllm"):
            raise InputError(f"runtime {runtime!r} is not one of auto, transformers, vllm")
        self.model_id = model
        self.runtime = runtime
        self.device = device or "cpu"
        self._device_requested = device
        self.fp8 = fp8
        self.precision_request = P.check(precision)
        self.precision: str | None = None  # resolved at load
        self._model: Any = None
        self._tokenizer: Any = None
        self._llm: Any = None

    # ---------------------------------------------------------------- loading

    def _resolve_runtime(self) -> str:
        if self.runtime != "auto":
            return self.runtime
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return "transformers"
        import torch

        return "vllm" if torch.cuda.is_available() else "transformers"

    def _source(self) -> tuple[str, bool]:
        """(where to load from, local_files_only); fails fast when offline weights are missing."""
        if _is_local_path(self.model_id):
            path = os.path.expanduser(self.model_id)
            if not os.path.isdir(path):
                raise RuntimeFailure(f"model folder not found: {self.model_id}", hint=PULL_HINT)
            return path, True
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(self.model_id, "config.json"), str):
            return self.model_id, True
        hub.require_weights(self.model_id)
        return self.model_id, False

    def load(self) -> None:
        from muse_cli.engines import precision as P

        runtime = self._resolve_runtime()
        if self.fp8 and runtime != "vllm":
            raise InputError("fp8 quantization needs the vllm runtime (a CUDA GPU with vllm installed)")
        if runtime == "vllm":
            P.check_remote(self.precision_request)  # vLLM runs bf16 (or fp8): fp32 and int8 are refused
        else:
            P.resolve(self.precision_request, self._transformers_device())  # int8 on a GPU: refused before loading
        source, local_only = self._source()
        try:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            if runtime == "vllm":
                self._load_vllm(source)
            else:
                self._load_transformers(source, local_only)
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RuntimeFailure(f"cannot load {self.model_id}: {first[:300]}", hint=PULL_HINT) from exc
        if getattr(self._tokenizer, "bos_token_id", None) is None:
            raise RuntimeFailure(f"the tokenizer of {self.model_id} has no begin-of-text token", hint=PULL_HINT)
        self.runtime = runtime

    def _transformers_device(self) -> str:
        import torch

        return str(self._device_requested or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _load_transformers(self, source: str, local_only: bool) -> None:
        from transformers import AutoModelForCausalLM

        from muse_cli.engines import precision as P

        device = self._transformers_device()
        resolved = P.resolve(self.precision_request, device)
        # int8 starts from the checkpoint's own dtype (bf16 for MIDI-LLM: half the memory of fp32, no
        # rounding) and converts one layer at a time.
        dtype = "auto" if resolved == "int8" else P.dtype(resolved)
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would write to the CLI's stderr
        try:
            model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local_only, dtype=dtype)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        if model.get_output_embeddings().weight.shape[0] < MIDI_END_ID + 1:
            raise RuntimeFailure(
                f"{self.model_id} has no AMT music vocabulary (needs {MIDI_END_ID + 1} ids)", hint=PULL_HINT
            )
        set_music_head(model, int8=resolved == "int8")
        if resolved == "int8":
            quantize_model(model)
        self._model = model.to(device).eval()
        self.device = device
        self.precision = resolved

    def _load_vllm(self, source: str) -> None:
        from vllm import LLM

        self._llm = LLM(
            model=source,
            dtype="bfloat16",
            quantization="fp8" if self.fp8 else None,
            max_model_len=MAX_MODEL_LEN,
            gpu_memory_utilization=0.9,
        )
        self.device = "cuda"
        self.precision = "fp8" if self.fp8 else "bf16"

    # ------------------------------------------------------------- generation

    def generate(self, request: MidiRequest, progress: ProgressFn = null_progress) -> MidiResult:
        from muse_cli.engines import precision as P

        check_request(request)
        if self._tokenizer is None:
            self.load()
        if self._llm is not None:
            P.check_remote(request.precision)
        else:
            P.same(request.precision, self.precision, self.device, "MIDI-LLM")
        from muse_cli.music.midi import midi_metadata, midi_to_bytes

        seed = resolve_seed(request.seed)
        seeds = [derive_seed(seed, k) for k in range(request.count)]
        ids = prompt_ids(self._tokenizer, describe(request))
        if len(ids) + token_budget(request) > MAX_MODEL_LEN:
            raise InputError(
                f"prompt is {len(ids)} tokens: with max_tokens {request.max_tokens} it must stay under {MAX_MODEL_LEN}"
            )

        t0 = time.perf_counter()
        token_lists = self._sample(ids, seeds, request, progress)
        gen_s = time.perf_counter() - t0
        samples: list[MidiSample] = []
        for k, (sample_seed, tokens) in enumerate(zip(seeds, token_lists)):
            pm, stats = amt.decode_with_stats(tokens)
            sample_s = gen_s
            if stats.notes == 0:
                # An empty sample is a bad draw, not a bad request: one more try with the next seed.
                sample_seed = (sample_seed + 1) % 2**32
                t1 = time.perf_counter()
                tokens = self._sample(ids, [sample_seed], request, null_progress)[0]
                sample_s = time.perf_counter() - t1
                pm, stats = amt.decode_with_stats(tokens)
                if stats.notes == 0:
                    raise RuntimeFailure(
                        f"MIDI-LLM produced no notes for sample {k + 1} (seeds {seeds[k]} and {sample_seed})",
                        hint="try another --seed or a more specific prompt",
                    )
            samples.append(MidiSample(
                midi=midi_to_bytes(pm),
                seed=sample_seed,
                metadata=midi_metadata(pm, tokens_generated=len(tokens), skipped_tokens=stats.skipped,
                                       generation_s=round(sample_s, 3)),
            ))
        return MidiResult(
            engine=self.name, model=self.model_id, seed=seed, device=self.device, precision=self.precision,
            samples=samples,
            timings={"generate_s": round(gen_s, 3), "total_s": round(time.perf_counter() - t0, 3)},
        )

    def _sample(self, ids: list[int], seeds: list[int], request: MidiRequest, progress: ProgressFn) -> list[list[int]]:
        if self._llm is not None:
            return self._sample_vllm(ids, seeds, request, progress)
        return self._sample_transformers(ids, seeds, request, progress)

    def _sample_vllm(self, ids: list[int], seeds: list[int], request: MidiRequest,
                     progress: ProgressFn) -> list[list[int]]:
        from vllm import SamplingParams

        total = token_budget(request) * len(seeds)
        progress(0, total)
        params = [SamplingParams(**vllm_sampling_kwargs(request, s)) for s in seeds]
        outputs = self._llm.generate([{"prompt_token_ids": ids} for _ in seeds], params, use_tqdm=False)
        tokens = [[t - TEXT_VOCAB_SIZE for t in out.outputs[0].token_ids] for out in outputs]
        progress(total, total)
        return tokens

    def _sample_transformers(self, ids: list[int], seeds: list[int], request: MidiRequest,
                             progress: ProgressFn) -> list[list[int]]:
        import torch

        model = self._model
        device = next(model.parameters()).device
        batch = len(seeds)
        steps = token_budget(request)
        generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        constraint = AmtConstraint(batch, device=device)
        out = torch.zeros(batch, steps, dtype=torch.long)
        length = torch.full((batch,), steps, dtype=torch.long)
        progress(0, steps)
        with torch.inference_mode():
            result = model(input_ids=torch.tensor([ids] * batch, device=device), use_cache=True, logits_to_keep=1)
            cache_kw, cache = _cache(model, result)
            logits = result.logits[:, -1, :]
            done = 0
            for step in range(steps):
                first, end, mask = constraint.window()
                newly_finished = constraint.finished & (length == steps)
                length[newly_finished.cpu()] = step
                if bool(constraint.finished.all()):
                    break
                scores = logits[:, first:end].float()  # the head's column t is AMT token t
                scores = scores.masked_fill(~mask, float("-inf"))
                tokens = first + sample_rows(scores, request.temperature, request.top_p, generators)
                constraint.advance(tokens)
                out[:, step] = tokens.cpu()
                done = step + 1
                progress(done, steps)
                if done < steps:
                    result = model(input_ids=(tokens + TEXT_VOCAB_SIZE)[:, None], use_cache=True, **{cache_kw: cache})
                    cache = getattr(result, cache_kw)
                    logits = result.logits[:, -1, :]
        progress(steps, steps)
        rows = out.numpy()
        return [rows[b, : int(length[b])].tolist() for b in range(batch)]


def _cache(model: Any, result: Any) -> tuple[str, Any]:
    """(the name of the KV cache, the cache in `result`): transformers 5.25 renamed the forward argument
    and output field `past_key_values` to `cache` (the old argument warns); earlier versions have only
    the old name."""
    import inspect

    name = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
    return name, getattr(result, name)


# ------------------------------------------------------------------------------ head and int8


def set_music_head(model: Any, int8: bool = False) -> None:
    """Replace the output layer by its AMT rows 0..REST (`HEAD_ROWS`): logits column t is AMT token t.

    In float the new head is a view of the old weight (tied to the input embedding in MIDI-LLM), so it
    costs no memory; at int8 it is an int8 copy of those rows.
    """
    import torch

    old = model.get_output_embeddings()
    weight = old.weight[MIDI_FIRST_ID:MIDI_FIRST_ID + HEAD_ROWS].detach()
    head = torch.nn.Linear(weight.shape[1], HEAD_ROWS, bias=False, device="meta")
    head.weight = torch.nn.Parameter(weight, requires_grad=False)
    if getattr(old, "bias", None) is not None:
        head.bias = torch.nn.Parameter(old.bias[MIDI_FIRST_ID:MIDI_FIRST_ID + HEAD_ROWS].detach(), requires_grad=False)
    if int8:
        from muse_cli.engines import precision as P

        head = P.int8_linear(head)
    model.config.tie_word_embeddings = False  # the head is no longer the embedding: never re-tie them
    model.set_output_embeddings(head)


def quantize_model(model: Any) -> list[str]:
    """int8 for every linear layer of the decoder and for the input embedding (8-bit rows), in place;
    the rest (norms) in float32. Returns the names of the layers made int8."""
    from muse_cli.engines import precision as P

    swapped = P.quantize_linears(model)
    embeddings = model.get_input_embeddings()
    model.set_input_embeddings(P.int8_embedding(embeddings))
    model.float()  # norms (and anything else left) in float32: the int8 layers take float32
    P.own_memory(model)  # nothing left pointing into the checkpoint file's mapping
    return [*swapped, "embed_tokens"]

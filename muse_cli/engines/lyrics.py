"""The lyrics LLM: an instruct model (transformers, chat template) that writes a song's style
tags, its lyrics, or the genres it belongs to.

The answer is parsed defensively (muse_cli.music.songtext); an unusable answer is retried once
with another seed, then reported as a RuntimeFailure that names the model and what was missing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from muse_cli.ops import hub
from muse_cli.contracts import LyricsRequest, LyricsResult
from muse_cli.engines.base import derive_seed, resolve_seed
from muse_cli.errors import RuntimeFailure
from muse_cli.music import songtext
from muse_cli.progress import ProgressFn, null_progress

DEFAULT_MODEL = "Qwen/Qwen2.5-7B-Instruct"
ATTEMPTS = 2

# A tag line or a genre list is a few dozen tokens; a model still talking past these is rambling.
_TOKEN_CAP = {"tags": 160, "categories": 96, "lyrics": 4096}
_WHAT = {"tags": "style tags", "lyrics": "lyrics", "categories": "genre names"}


def messages_for(request: LyricsRequest) -> songtext.Messages:
    if request.task == "tags":
        return songtext.tags_messages(request.description or "", request.instrumental)
    if request.task == "lyrics":
        return songtext.lyrics_messages(request.description, request.tags, request.duration)
    return songtext.categories_messages(request.tags, request.description)


def parse_answer(request: LyricsRequest, text: str, attempt: int) -> dict[str, Any]:
    """The result fields the task fills, from the model's answer; SongTextError if unusable.
    Categories fall back on genre-like tags only on the last attempt: the model's own list is better."""
    if request.task == "tags":
        return {"tags": songtext.parse_tags(text)}
    if request.task == "lyrics":
        return {"lyrics": songtext.parse_lyrics(text)}
    fallback = songtext.genre_like(request.tags or "") if attempt == ATTEMPTS - 1 else None
    return {"categories": songtext.parse_categories(text, fallback=fallback)}


class LyricsEngine:
    """An instruct LLM at `precision` (auto: int8 on a CPU, bf16 on a GPU; muse_cli/engines/precision.py)."""

    name = "lyrics"
    takes_precision = True  # the local backend loads one engine per request precision

    def __init__(self, model: str = DEFAULT_MODEL, precision: str = "auto"):
        from muse_cli.engines import precision as P

        self.model_id = model
        self.device = "cpu"
        self.precision_request = P.check(precision)
        self.precision: str | None = None  # resolved at load
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # sampling draws from torch's global RNG: one generation at a time

    def load(self) -> None:
        hub.require_weights(self.model_id)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from muse_cli.engines import precision as P

        hf_logging.disable_progress_bar()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        resolved = P.resolve(self.precision_request, self.device)
        # int8 starts from the checkpoint's own dtype (bf16 for Qwen2.5: a 7B model is never held in
        # float32 whole) and converts one layer at a time.
        dtype = "auto" if resolved == "int8" else P.dtype(resolved)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_id)
            model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=dtype)
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot load the lyrics model {self.model_id}: {str(exc).splitlines()[0]}",
                hint="check the model id or path (an instruct model with a chat template)",
            ) from None
        if not getattr(tokenizer, "chat_template", None):
            raise RuntimeFailure(
                f"the lyrics model {self.model_id} has no chat template",
                hint="use an instruct/chat model, e.g. " + DEFAULT_MODEL,
            )
        if resolved == "int8":
            quantize_model(model)
        self._tokenizer = tokenizer
        self._model = model.to(self.device).eval()
        self.precision = resolved

    def complete(
        self,
        messages: songtext.Messages,
        *,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        progress: ProgressFn = null_progress,
    ) -> str:
        """One sampled answer to a chat, as text."""
        import torch
        from transformers.generation.streamers import BaseStreamer

        if self._model is None:
            self.load()
        tokenizer = self._tokenizer
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)

        class _Counter(BaseStreamer):
            # generate() hands the prompt over first, then each new token.
            def __init__(self) -> None:
                self.calls = 0

            def put(self, value: Any) -> None:
                self.calls += 1
                if self.calls > 1:
                    progress(min(self.calls - 1, max_new_tokens), max_new_tokens)

            def end(self) -> None:
                progress(max_new_tokens, max_new_tokens)

        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with self._lock, torch.inference_mode():
            torch.manual_seed(seed)
            output = self._model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_id,
                streamer=_Counter(),
            )
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        return tokenizer.decode(new_tokens, skip_special_tokens=True)

    def generate(self, request: LyricsRequest, progress: ProgressFn = null_progress) -> LyricsResult:
        from muse_cli.engines import precision as P

        if self._model is None:
            self.load()
        P.same(request.precision, self.precision, self.device, "lyrics")
        seed = resolve_seed(request.seed)
        messages = messages_for(request)
        budget = min(request.max_new_tokens, _TOKEN_CAP[request.task])
        started = time.perf_counter()
        problem = ""
        for attempt in range(ATTEMPTS):
            text = self.complete(
                messages,
                seed=derive_seed(seed, attempt),
                temperature=request.temperature,
                top_p=request.top_p,
                max_new_tokens=budget,
                progress=lambda done, total, a=attempt: progress(a * total + done, ATTEMPTS * total),
            )
            try:
                fields = parse_answer(request, text, attempt)
            except songtext.SongTextError as exc:
                problem = str(exc)
                continue
            progress(1.0, 1.0)
            return LyricsResult(
                engine=self.name,
                model=self.model_id,
                seed=seed,
                device=self.device,
                precision=self.precision,
                task=request.task,
                attempts=attempt + 1,
                timings={request.task: round(time.perf_counter() - started, 3)},
                **fields,
            )
        raise RuntimeFailure(
            f"the lyrics model {self.model_id} gave no usable {_WHAT[request.task]} "
            f"in {ATTEMPTS} tries ({problem})",
            hint="try another --seed"
            + (", or give your own --lyrics FILE" if request.task == "lyrics" else "")
            + (", or give your own --tags" if request.task == "tags" else ""),
        )


def quantize_model(model: Any) -> list[str]:
    """int8 for every linear layer (the output layer included) and 8-bit rows for the input embedding,
    in place; norms in float32. The same layers as MIDI-LLM's, whose fidelity tests/test_precision.py
    measures on the real 1B Llama architecture (the lyrics LLM is the same kind of decoder)."""
    from muse_cli.engines import precision as P

    swapped = P.quantize_linears(model)
    model.config.tie_word_embeddings = False  # an int8 output layer is no longer the embedding: never re-tie
    model.set_input_embeddings(P.int8_embedding(model.get_input_embeddings()))
    model.float()
    P.own_memory(model)  # nothing left pointing into the checkpoint file's mapping
    return [*swapped, "embed_tokens"]

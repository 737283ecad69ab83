"""MIDI-LLM on Modal: `MidiLLM` wraps `muse_cli.engines.midi_llm.MidiLLMEngine` with vLLM.

The image pins vLLM 0.11.0 with the torch (2.8.0) and transformers (4.57.1) it was released and
tested with by the MIDI-LLM authors. The runtime comes from MUSE_MIDI_LLM_RUNTIME ("vllm" in the
image; tests run the same class through `.local()` with "transformers" on a tiny model).

No memory snapshot: vLLM's engine owns CUDA from its first moment (device probe, KV-cache
allocation, CUDA-graph capture), so nothing useful can be loaded in a CPU-only snapshot phase, and
Modal's GPU snapshots are still experimental. Weights come from the shared volume instead, which
keeps a cold start to loading 2.5 GB plus vLLM's start-up.
"""

import os

import modal

from remote import common
from remote.app import app
from remote.images import WEIGHTS_DIR, base_image, weights_volume

DEFAULT_MODEL = "slseanwu/MIDI-LLM_Llama-3.2-1B"
RUNTIME_ENV = "MUSE_MIDI_LLM_RUNTIME"

midi_llm_image = base_image(
    "vllm==0.11.0", "transformers==4.57.1", "huggingface_hub==0.36.0", "tokenizers==0.22.1"
).env({RUNTIME_ENV: "vllm"})


def _cached(model: str) -> bool:
    if os.path.isdir(model):
        return True
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json"), str)


@app.cls(
    image=midi_llm_image,
    gpu="L4",  # 24 GB, Ada: bf16 and native fp8 for a 1B model with room for 16 x 8k-token KV caches
    volumes={WEIGHTS_DIR: weights_volume},
    timeout=600,
    scaledown_window=120,
    retries=modal.Retries(max_retries=1, initial_delay=2.0),
)
class MidiLLM:
    model: str = modal.parameter(default=DEFAULT_MODEL)
    fp8: bool = modal.parameter(default=False)

    @modal.enter()
    def load(self):
        from muse_cli.engines.midi_llm import MidiLLMEngine

        runtime = os.environ.get(RUNTIME_ENV, "vllm")
        was_cached = _cached(self.model)
        self.engine = MidiLLMEngine(self.model, runtime=runtime, fp8=self.fp8)
        self.engine.load()
        if not was_cached:
            weights_volume.commit()  # keep the download for the next container

    @modal.method()
    def generate(self, payload: dict) -> dict:
        from muse_cli.contracts import MidiRequest

        return common.serve(self.engine, MidiRequest, payload)

    @modal.method()
    def generate_stream(self, payload: dict):
        from muse_cli.contracts import MidiRequest

        yield from common.stream(self.engine, MidiRequest, payload)

    @modal.method()
    def health(self) -> dict:
        info = common.health("midi-llm", self.engine.model_id, self.engine)
        info["runtime"] = self.engine.runtime
        info["fp8"] = self.engine.fp8
        return info

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

from muse_cli.ops.catalog import gpu_for
from remote import common
from remote.app import app
from remote.images import image, weights_volume
from remote.plan import service

DEFAULT_MODEL = "slseanwu/MIDI-LLM_Llama-3.2-1B"
RUNTIME_ENV = "MUSE_MIDI_LLM_RUNTIME"

midi_llm_image = image(
    "midi-llm", "vllm==0.11.0", "transformers==4.57.1", "huggingface_hub[hf_transfer]==0.36.0", "tokenizers==0.22.1",
    env={RUNTIME_ENV: "vllm"},
)


def _cached(model: str) -> bool:
    if os.path.isdir(model):
        return True
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json"), str)


@app.cls(**service(
    "MidiLLM", image=midi_llm_image, image_name="midi-llm",
    gpu=gpu_for("midi-llm", DEFAULT_MODEL),  # L4: 24 GB, Ada, bf16 and fp8; room for 16 x 8k-token KV caches
    timeout=600, scaledown_window=120, retries=1,
))
class MidiLLM(common.Served):
    FAMILY = "midi-llm"
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

    def health_info(self) -> dict:
        return {"runtime": self.engine.runtime, "fp8": self.engine.fp8}

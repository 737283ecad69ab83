"""Model families: which engine runs a request, which contract types it takes and returns,
and which deployed Modal class serves it. Both backends read this table; nothing else
hard-codes a class or module name. References are strings so nothing heavy is imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str
    engine: str  # "module:Class" of the engine (muse_cli.engines.*)
    request: str  # contract class name in muse_cli.contracts
    result: str
    modal_class: str  # class name in the deployed "muse" app
    default_model: str
    needs_gpu: bool = True

    def engine_class(self) -> Any:
        module, _, cls = self.engine.partition(":")
        return getattr(importlib.import_module(module), cls)

    def request_type(self) -> Any:
        from muse_cli import contracts

        return getattr(contracts, self.request)

    def result_type(self) -> Any:
        from muse_cli import contracts

        return getattr(contracts, self.result)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("etude", "muse_cli.engines.etude:EtudeEngine", "MidiRequest", "MidiResult",
               "Etude", "etude", needs_gpu=False),
        Family("midi-llm", "muse_cli.engines.midi_llm:MidiLLMEngine", "MidiRequest", "MidiResult",
               "MidiLLM", "slseanwu/MIDI-LLM_Llama-3.2-1B"),
        Family("musicgen", "muse_cli.engines.musicgen:MusicGenEngine", "AudioRequest", "AudioResult",
               "MusicGen", "small"),
        # Same engine; on Modal the MultiBandDiffusion decoder lives in its own image (audiocraft).
        Family("musicgen-mbd", "muse_cli.engines.musicgen:MusicGenEngine", "AudioRequest", "AudioResult",
               "MusicGenMBD", "small"),
        Family("piano", "muse_cli.engines.piano:PianoEngine", "PianoRequest", "PianoResult",
               "PianoModel", "percepiano-ast"),
        Family("acestep", "muse_cli.engines.acestep:AceStepEngine", "AceStepRequest", "AceStepResult",
               "AceStep", "ACE-Step/ACE-Step-v1-3.5B"),
        Family("lyrics", "muse_cli.engines.lyrics:LyricsEngine", "LyricsRequest", "LyricsResult",
               "LyricsLLM", "Qwen/Qwen2.5-7B-Instruct"),
        Family("cover", "muse_cli.engines.cover:CoverEngine", "CoverRequest", "CoverResult",
               "CoverArt", "stabilityai/sdxl-turbo"),
    ]
}


def family(name: str) -> Family:
    return FAMILIES[name]

"""General MIDI instruments by name or number, with the everyday names people type."""

from __future__ import annotations

from dataclasses import dataclass

from pretty_midi.constants import INSTRUMENT_MAP  # the 128 GM program names, program order

from muse_cli.errors import InputError

# Everyday names -> GM program. The full GM names are accepted too (case-insensitive).
_ALIASES = {
    "piano": 0, "grand piano": 0, "acoustic piano": 0, "bright piano": 1, "electric piano": 4,
    "rhodes": 4, "harpsichord": 6, "celesta": 8, "glockenspiel": 9, "music box": 10,
    "vibraphone": 11, "marimba": 12, "xylophone": 13, "organ": 19, "church organ": 19,
    "accordion": 21, "harmonica": 22, "guitar": 24, "nylon guitar": 24, "classical guitar": 24,
    "acoustic guitar": 25, "steel guitar": 25, "jazz guitar": 26, "electric guitar": 27,
    "distortion guitar": 30, "bass": 32, "acoustic bass": 32, "electric bass": 33,
    "fretless bass": 35, "violin": 40, "viola": 41, "cello": 42, "contrabass": 43,
    "double bass": 43, "harp": 46, "timpani": 47, "strings": 48, "string ensemble": 48,
    "choir": 52, "voice": 53, "trumpet": 56, "trombone": 57, "tuba": 58, "horn": 60,
    "french horn": 60, "brass": 61, "soprano sax": 64, "alto sax": 65, "saxophone": 65,
    "sax": 65, "tenor sax": 66, "baritone sax": 67, "oboe": 68, "english horn": 69,
    "bassoon": 70, "clarinet": 71, "piccolo": 72, "flute": 73, "recorder": 74,
    "pan flute": 75, "ocarina": 79, "synth lead": 80, "synth pad": 88, "pad": 88,
    "sitar": 104, "banjo": 105, "shamisen": 106, "koto": 107, "kalimba": 108, "bagpipe": 109,
    "fiddle": 110, "steel drums": 114,
}
_BY_GM_NAME = {name.lower(): program for program, name in enumerate(INSTRUMENT_MAP)}


@dataclass(frozen=True)
class Instrument:
    program: int  # GM program 0..127

    @property
    def name(self) -> str:
        return INSTRUMENT_MAP[self.program]

    @property
    def is_piano(self) -> bool:
        return self.program < 8


def parse_instrument(text: str | int) -> Instrument:
    """'piano', 'Acoustic Grand Piano', 'violin', '40' or 40 -> Instrument."""
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        program = int(text)
        if not 0 <= program <= 127:
            raise InputError(f"instrument program {program} is out of range: use 0..127 (General MIDI)")
        return Instrument(program)
    key = " ".join(str(text).lower().replace("_", " ").replace("-", " ").split())
    if key in _ALIASES:
        return Instrument(_ALIASES[key])
    if key in _BY_GM_NAME:
        return Instrument(_BY_GM_NAME[key])
    raise InputError(
        f"unknown instrument {text!r}: use a General MIDI program 0..127 or a name such as "
        "piano, violin, flute, guitar (see 'muse models' docs for the list)"
    )


def instrument_names() -> list[str]:
    return sorted(_ALIASES)

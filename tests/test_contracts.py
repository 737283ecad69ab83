import math

import pytest
from pydantic import ValidationError

from muse_cli.contracts import AudioRequest, MidiRequest, record, request_hash
from muse_cli.errors import InputError
from muse_cli.kinds import build


def test_key_and_instrument_are_normalized():
    req = MidiRequest(key="f#m", instrument="Violin")
    assert req.key == "F# minor" and req.instrument == "Violin"
    assert MidiRequest(key="Bb major").key == "Bb major"
    assert MidiRequest(instrument="0").instrument == "Acoustic Grand Piano"


@pytest.mark.parametrize(
    "fields",
    [
        {"key": "H"},
        {"instrument": "kazoo-9000"},
        {"instrument": "200"},
        {"bars": 0},
        {"bars": -3},
        {"tempo": 0},
        {"tempo": math.nan},
        {"tempo": math.inf},
        {"difficulty": "expert"},
        {"prompt": "   "},
        {"temperature": 0},
        {"top_p": 1.5},
        {"max_tokens": 2},
        {"count": 17},
        {"time_signature": "5/4"},
        {"unknown_field": 1},
    ],
)
def test_bad_midi_requests_are_rejected(fields):
    with pytest.raises((ValidationError, InputError)):
        MidiRequest(**fields)


def test_build_gives_one_line_naming_the_option():
    with pytest.raises(InputError) as info:
        build(MidiRequest, tempo=-5)
    assert str(info.value).startswith("--tempo:") and "\n" not in str(info.value)
    with pytest.raises(InputError, match="--key: unknown key"):
        build(MidiRequest, key="Q#")


def test_audio_request_needs_a_prompt_or_audio():
    with pytest.raises(ValidationError):
        AudioRequest(prompt="   ")
    assert AudioRequest(prompt=" jazz  piano ").prompt == "jazz piano"


def test_record_hides_bytes_and_hash_is_stable():
    req = AudioRequest(prompt="x", continuation={"name": "a.wav", "data": b"\x00" * 10})
    rec = record(req)
    assert rec["continuation"]["data"] == {"sha256": rec["continuation"]["data"]["sha256"], "bytes": 10}
    assert request_hash(req) == request_hash(AudioRequest(prompt="x", continuation={"name": "a.wav", "data": b"\x00" * 10}))
    assert request_hash(req) != request_hash(AudioRequest(prompt="y"))


def test_contracts_round_trip_as_plain_dicts():
    req = MidiRequest(prompt="waltz", key="D minor", seed=3)
    assert MidiRequest.model_validate(req.model_dump(mode="python")) == req

import numpy as np
import pytest

from muse_cli.errors import InputError
from muse_cli.music.theory import ALL_KEYS, Key, estimate_key, note_name, parse_key


@pytest.mark.parametrize(
    "text,name",
    [("C", "C major"), ("F#m", "F# minor"), ("Bb major", "Bb major"), ("c minor", "C minor"),
     ("Eb", "Eb major"), ("G# min", "G# minor"), ("Db", "Db major"), ("a", "A major"), ("Am", "A minor")],
)
def test_parse_key(text, name):
    assert parse_key(text).name == name


@pytest.mark.parametrize("bad", ["", "H", "C##", "major", "X minor", "Cm7"])
def test_parse_key_rejects(bad):
    with pytest.raises(InputError):
        parse_key(bad)


def test_all_24_keys_parse_back_from_their_names():
    assert {parse_key(k.name) for k in ALL_KEYS} == set(ALL_KEYS)
    assert len(ALL_KEYS) == 24


@pytest.mark.parametrize("key", ALL_KEYS)
def test_estimate_key_finds_scales_with_tonic_weight(key):
    hist = np.zeros(12)
    for pc in key.pitch_classes(harmonic=True):
        hist[pc] += 1.0
    # Tonic triad weighted, as music does.
    for step in (0, 2, 4):
        hist[key.degree_pc(step)] += 2.0
    found, confidence = estimate_key(hist)
    assert found == key and 0 <= confidence <= 1


def test_estimate_key_on_silence_is_zero_confidence():
    assert estimate_key(np.zeros(12))[1] == 0.0


def test_note_name():
    assert note_name(60) == "C4" and note_name(69) == "A4"
    assert Key(0, "major").relative == Key(9, "minor")


def test_pitches_are_spelled_in_the_key():
    bb = parse_key("Bb major")
    assert note_name(63, bb) == "Eb4" and note_name(70, bb) == "Bb4" and note_name(66, bb) == "Gb4"
    assert note_name(63, parse_key("E major")) == "D#4"
    assert note_name(63) == "D#4"  # no key: sharps, as before
    fsharp = parse_key("F# major")
    assert note_name(65, fsharp) == "E#4"  # the seventh of F# major is E#, on the key F
    assert note_name(59, parse_key("Ebm")) == "Cb4"  # Cb4 is the key B3: the octave follows the letter
    for key in ALL_KEYS:  # every pitch gets a name that means that pitch
        for pitch in range(21, 109):
            name = note_name(pitch, key)
            letter, octave = name[0], int(name.lstrip("ABCDEFG#b"))
            assert (octave + 1) * 12 + {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[letter] \
                + name.count("#") - name.count("b") == pitch, (key, pitch, name)

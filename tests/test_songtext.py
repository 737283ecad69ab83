"""Song text: prompts for the lyrics LLM and the parsers for its realistic and garbage answers."""

from __future__ import annotations

import pytest

from muse_cli.music import songtext
from muse_cli.music.songtext import (
    SongTextError,
    cover_prompt,
    parse_categories,
    parse_lyrics,
    parse_tags,
    section_tag,
)

# ---------------------------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("synth-pop, female vocals, synthesizer, 118 bpm, a minor",
         "synth-pop, female vocals, synthesizer, 118 bpm, a minor"),
        ("Sure! Here are the tags:\n\n**Synth-Pop, Female Vocals, Drum Machine, Nostalgic, 118 BPM.**\n\n"
         "Let me know if you'd like changes, tweaks, or more tags.",
         "synth-pop, female vocals, drum machine, nostalgic, 118 bpm"),
        ("Tags: indie rock, male vocals, guitar, Indie Rock, , guitar", "indie rock, male vocals, guitar"),
        ("- lo-fi hip hop\n- instrumental\n- piano\n- mellow", "lo-fi hip hop, instrumental, piano, mellow"),
        ("```\njazz, saxophone; upright bass | brushed drums\n```", "jazz, saxophone, upright bass, brushed drums"),
        ("<think>the user wants pop, rock, blues</think>\nfunk, slap bass, 105 bpm", "funk, slap bass, 105 bpm"),
        ("\"ambient\"", "ambient"),
    ],
)
def test_parse_tags_realistic(answer, expected):
    assert parse_tags(answer) == expected


def test_parse_tags_drops_sentences_and_caps_count():
    answer = "pop, this is a very long sentence that is not a tag at all, piano, " + ", ".join(
        f"tag{i}" for i in range(40)
    )
    tags = parse_tags(answer).split(", ")
    assert tags[:2] == ["pop", "piano"]
    assert len(tags) == songtext.MAX_TAGS


@pytest.mark.parametrize("garbage", ["", "   \n\n", "```\n```", "..., ;;; ,,,", "<think>pop, rock</think>", "!!!"])
def test_parse_tags_garbage_raises(garbage):
    with pytest.raises(SongTextError):
        parse_tags(garbage)


def test_parse_tags_output_is_one_clean_line():
    tags = parse_tags("Here you go:\n1. Pop\n2. Rock\n\n3. Guitar")
    assert "\n" not in tags
    assert tags == "pop, rock, guitar"


def test_normalize_user_tags_keeps_case():
    assert songtext.normalize_tags(" Pop ,  G major,,pop ; 90 BPM ") == "Pop, G major, 90 BPM"


# -------------------------------------------------------------------------------------- lyrics

REALISTIC_LYRICS = """Here's a song about summer nights in the city:

**Title: Neon Summer**

**[Verse 1]**
Walking down the boulevard tonight
City lights are shining oh so bright

**Chorus:**
(ooh, ooh)
We are the neon summer
*Dancing till the morning*

[Verse 2]
- Another street, another song

(Pre-Chorus)
Hold on, hold on

## Bridge
Bridge over the river of light

[Outro]

I hope you enjoy these lyrics! Feel free to adjust them to your style."""


def test_parse_lyrics_realistic():
    assert parse_lyrics(REALISTIC_LYRICS) == (
        "[verse]\nWalking down the boulevard tonight\nCity lights are shining oh so bright\n\n"
        "[chorus]\n(ooh, ooh)\nWe are the neon summer\nDancing till the morning\n\n"
        "[verse]\nAnother street, another song\n\n"
        "[pre-chorus]\nHold on, hold on\n\n"
        "[bridge]\nBridge over the river of light\n\n"
        "[outro]"
    )


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        ("[Verse 1]", "[verse]"), ("**[CHORUS]**", "[chorus]"), ("(Pre-Chorus)", "[pre-chorus]"),
        ("Pre chorus:", "[pre-chorus]"), ("## Bridge", "[bridge]"), ("Verse II:", "[verse]"),
        ("[Hook/Chorus – Reprise]", "[hook]"), ("[Intro – Spoken]", "[intro]"), ("[Guitar Solo]", "[solo]"),
        ("[Spoken Word]", "[spoken word]"), ("Outro", "[outro]"),
        ("(ooh, ooh)", None), ("Hook, line and sinker", None), ("Bridge over troubled water", None),
        ("Drop it low", None), ("[123]", None), ("We sing the chorus", None),
    ],
)
def test_section_tag(line, tag):
    assert section_tag(line) == tag


def test_parse_lyrics_keeps_blank_line_between_sections_and_drops_empty_sung_sections():
    text = "[verse]\nline one\n\n\n\nline two\n[chorus]\n\n[verse]\nline three\n[chorus]"
    assert parse_lyrics(text) == "[verse]\nline one\n\nline two\n\n[verse]\nline three"


def test_parse_lyrics_user_style_without_chatter_is_unchanged():
    lyrics = "[verse]\nHello darkness\n\n[chorus]\nSound of silence"
    assert parse_lyrics(lyrics) == lyrics


@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        ("", "no section tag"),
        ("Just some words with no structure\nand another line", "no section tag"),
        ("[verse]\n\n[chorus]\n", "no words"),
        ("[verse]\n1234\n!!!\n", "no words"),
        ("xq zzv, ,,\nkkk [[ ]]", "no section tag"),
    ],
)
def test_parse_lyrics_garbage_raises(garbage, why):
    with pytest.raises(SongTextError, match=why):
        parse_lyrics(garbage)


# ---------------------------------------------------------------------------------- categories


def test_parse_categories_trims_dedupes_and_caps_at_five():
    answer = "1. Synth-pop\n2. electronic\n3. Dance\n4. synth-pop\n5. Pop\n6. Disco\n7. House"
    assert parse_categories(answer) == ["Synth-pop", "Electronic", "Dance", "Pop", "Disco"]


def test_parse_categories_keeps_capitals_and_drops_sentences():
    answer = "Genres: EDM, R&B, this song is basically a pop song with a twist, Hip Hop"
    assert parse_categories(answer) == ["EDM", "R&B", "Hip Hop"]


def test_parse_categories_fallback_fills_up_to_three():
    assert parse_categories("Pop", fallback=["indie rock", "pop", "folk"]) == ["Pop", "Indie Rock", "Folk"]


@pytest.mark.parametrize("garbage", ["", "Pop, Rock", "a very long sentence about nothing in particular"])
def test_parse_categories_too_few_raises(garbage):
    with pytest.raises(SongTextError, match="at least 3"):
        parse_categories(garbage)


def test_genre_like_drops_vocals_tempo_and_key():
    assert songtext.genre_like("pop, female vocals, piano, 120 bpm, c# minor, dreamy") == ["pop", "piano", "dreamy"]


# ------------------------------------------------------------------------------------- prompts


def test_tags_messages_ask_for_one_line_in_order():
    messages = songtext.tags_messages("sad piano ballad about rain", instrumental=True)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "sad piano ballad about rain" in user
    assert "ONE line" in user and "genre" in user and "bpm" in user and "key" in user
    assert "instrumental" in user


def test_lyrics_messages_size_to_duration_and_name_sections():
    short = songtext.lyrics_messages("a dog", "pop", 30)[1]["content"]
    long = songtext.lyrics_messages("a dog", "pop", 240)[1]["content"]
    assert "about 6 lines" in short and "about 48 lines" in long
    assert "[verse]" in short and "[chorus]" in short and "[bridge]" in short
    assert "Musical style: pop" in short
    from_tags = songtext.lyrics_messages(None, "surf rock, reverb guitar", 60)[1]["content"]
    assert "surf rock, reverb guitar" in from_tags


def test_categories_messages_include_inputs():
    user = songtext.categories_messages("pop, piano", "a love song")[1]["content"]
    assert "pop, piano" in user and "a love song" in user and "3 to 5" in user


def test_cover_prompt_keeps_picturable_tags_and_stays_short():
    prompt = cover_prompt("synth-pop, female vocals, analog synth, 118 bpm, a minor, nostalgic", "summer nights")
    assert prompt.startswith("album cover art, summer nights, synth-pop, analog synth, nostalgic")
    assert "bpm" not in prompt and "vocals" not in prompt and "minor" not in prompt
    assert "no text" in prompt
    long = cover_prompt(", ".join(["word"] * 50), " ".join(["dream"] * 100))
    assert len(long.split()) <= 45
    assert cover_prompt(None, None).startswith("album cover art")


def test_sharp_keys_and_rap_survive_cleaning():
    assert parse_tags("pop, C# minor, 90bpm, rap") == "pop, c# minor, 90bpm, rap"
    assert songtext.genre_like("rap, trap, c# minor, 90bpm, male vocals, f major") == ["rap", "trap"]
    assert section_tag("### Verse 2") == "[verse]"

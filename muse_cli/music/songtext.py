"""Song text: the prompts the lyrics LLM gets, and defensive parsers for what it answers.

An instruct model's answer is loose text: a preamble ("Sure! Here are..."), markdown, numbered
lists, section names spelled five ways, a closing remark. The parsers keep what ACE-Step needs
(one line of comma-separated tags, lyrics with [section] tags, a few genre names) and raise
`SongTextError` when nothing usable is left, so the caller can retry once and then fail clearly.
"""

from __future__ import annotations

import re

INSTRUMENTAL_LYRICS = "[instrumental]"

SECTION_NAMES = (
    "intro", "verse", "pre-chorus", "chorus", "post-chorus", "hook", "refrain", "bridge",
    "breakdown", "interlude", "instrumental", "inst", "solo", "drop", "build", "outro",
)
"""Section tags ACE-Step's training lyrics use; numbered or decorated variants map onto these."""

MAX_TAGS = 20
MAX_TAG_WORDS = 5
MAX_CATEGORY_WORDS = 3
MIN_CATEGORIES, MAX_CATEGORIES = 3, 5

Messages = list[dict[str, str]]


class SongTextError(ValueError):
    """The model's answer held nothing usable (the caller retries, then reports a RuntimeFailure)."""


# ------------------------------------------------------------------------------------ prompts

_SYSTEM = "You are a songwriter and music producer. Answer with exactly what is asked, nothing else."

_TAGS_EXAMPLE = (
    "synth-pop, female vocals, analog synthesizer, drum machine, bass, "
    "nostalgic, upbeat, 118 bpm, a minor"
)


def tags_messages(description: str, instrumental: bool = False) -> Messages:
    """Ask for ACE-Step style tags: one line, genre first, then vocals, instruments, mood, tempo, key."""
    vocals = "the word instrumental (no vocals)" if instrumental else "vocal type (e.g. male vocals)"
    user = (
        f"Song description: {description}\n\n"
        "Write the style tags a text-to-music model needs for this song: ONE line of 6 to 14 short, "
        f"comma-separated, lowercase tags in this order: genre(s), {vocals}, main instruments, "
        "mood, tempo in bpm, musical key.\n"
        f"Example: {_TAGS_EXAMPLE}\n"
        "Reply with the tag line only: no sentences, no numbering, no quotes."
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def lyric_lines_for(duration: float) -> int:
    """Roughly how many sung lines fill `duration` seconds (about one per 5 s, with room for breaks)."""
    return max(4, min(60, round(duration / 5)))


def lyrics_messages(description: str | None, tags: str | None, duration: float = 180.0) -> Messages:
    """Ask for lyrics with [verse]/[chorus]/[bridge] section tags, sized to the song's length."""
    about = description or f"a song in this style: {tags}"
    style = f"\nMusical style: {tags}" if tags and description else ""
    lines = lyric_lines_for(duration)
    minutes = duration / 60
    user = (
        f"Write original song lyrics about: {about}{style}\n\n"
        f"The song lasts about {minutes:.1f} minutes: write about {lines} lines in total. "
        "Mark every section with a tag on its own line: [verse], [chorus], [bridge] "
        "(you may also use [intro], [pre-chorus] and [outro]). Repeat the chorus where it returns.\n"
        "Reply with the lyrics only: no title, no explanations, no markdown."
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def categories_messages(tags: str | None, description: str | None) -> Messages:
    """Ask for 3 to 5 genre names that file the song in a music library."""
    parts = []
    if description:
        parts.append(f"Song description: {description}")
    if tags:
        parts.append(f"Style tags: {tags}")
    user = (
        "\n".join(parts)
        + "\n\nName 3 to 5 music genres that best categorise this song, most fitting first, "
        "each one to three words. Reply with a comma-separated list only, e.g.: "
        "Synth-pop, Electronic, Dance"
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


_NOT_VISUAL = re.compile(
    r"(\bbpm\b|\d\s*bpm|\bvocals?\b|\bsinger\b|\bvoice\b|\b[a-g](#|b|-sharp|-flat)?\s*(major|minor)\b|\bkey\b)",
    re.IGNORECASE,
)


def cover_prompt(tags: str | None, description: str | None, max_words: int = 45) -> str:
    """An SDXL-Turbo prompt for the cover: the description and the picturable tags (genre, mood,
    instruments), not tempo, key or vocals. Kept short: the CLIP encoders read 77 tokens."""
    visual = [t for t in split_tags(tags or "") if not _NOT_VISUAL.search(t)][:8]
    parts = ["album cover art"]
    if description:
        parts.append(description)
    parts.extend(visual)
    parts.append("striking composition, rich colors, highly detailed, no text")
    words = ", ".join(parts).split()
    return " ".join(words[:max_words]).rstrip(",")


# ------------------------------------------------------------------------------------ parsing

_THINK = re.compile(r"<think>.*?(</think>|$)", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"^\s*```[\w-]*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)]|[a-z][.)](?=\s))\s*")
_LABEL = re.compile(
    r"^\s*(?:here\s+(?:are|is)\b[^:]*|sure[^:]*|(?:style\s+|music\s+)?tags?|prompt|genres?|"
    r"categor(?:y|ies)|answer|output)\s*:\s*",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"(\*\*|__|\*|`|^\s*#+\s*)")  # a heading's #s, never the sharp in "c# minor"
_QUOTES = "\"'“”‘’«»"


def _clean_text(text: str) -> str:
    """Drop reasoning blocks and code fences; normalise newlines."""
    text = _THINK.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "\n".join(line for line in text.split("\n") if not _FENCE.match(line))


def _clean_item(item: str) -> str:
    item = _EMPHASIS.sub("", item)
    item = _BULLET.sub("", item)
    item = item.strip().strip(_QUOTES).strip(" .;:!-–—[](){}").strip(_QUOTES).strip()
    return " ".join(item.split())


def split_tags(line: str) -> list[str]:
    return [t for t in (_clean_item(p) for p in re.split(r"[,;|\n]", line)) if t]


def _usable_tag(tag: str, max_words: int) -> bool:
    return bool(re.search(r"[^\W_]", tag)) and len(tag.split()) <= max_words and 2 <= len(tag) <= 48


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.casefold()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def parse_tags(text: str) -> str:
    """One clean line of comma-separated tags from the model's answer.

    Picks the line with the most commas (the tag line, not the chatter around it); a bulleted
    list of tags becomes one line. Sentences, empty items and duplicates are dropped.
    """
    lines = [_LABEL.sub("", line).strip() for line in _clean_text(text).split("\n")]
    # "Here you go:" introduces the answer; it is never part of it.
    lines = [line for line in lines if line and not line.endswith(":")]
    if not lines:
        raise SongTextError("the answer is empty")
    best = max(lines, key=lambda line: line.count(","))
    if best.count(",") == 0:
        # No comma anywhere: a bulleted list (one tag per line), or a single short tag.
        bulleted = [line for line in lines if _BULLET.match(line)]
        candidates = [_clean_item(line) for line in bulleted or lines]
    else:
        candidates = split_tags(best)
    tags = _dedupe([t.lower() for t in candidates if _usable_tag(t, MAX_TAG_WORDS)])[:MAX_TAGS]
    if not tags:
        raise SongTextError("the answer holds no usable tags")
    return ", ".join(tags)


def normalize_tags(tags: str) -> str:
    """User-given tags: the same cleaning, but case is kept and nothing is dropped for length."""
    items = _dedupe([t for t in split_tags(tags) if re.search(r"[^\W_]", t)])
    return ", ".join(items)


_SECTION_WORDS = "|".join(re.escape(n) for n in sorted(SECTION_NAMES, key=len, reverse=True))
_SECTION_CORE = re.compile(
    rf"^(?P<name>{_SECTION_WORDS}|pre[\s_]?chorus|post[\s_]?chorus)\b\s*(?:\d+|[ivx]+)?\s*"
    r"(?:[-–—:/]\s*.*)?$",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"^(?P<open>[\[(])(?P<inner>[^\])]{1,40})[\])]\s*:?$")
_CHATTER = re.compile(
    r"^(i hope (you|this)|hope you|feel free|let me know|note:|this song (is|was|captures)|"
    r"these lyrics|title:|song title:|\(?the end\)?$)",
    re.IGNORECASE,
)
_WORDLESS_SECTIONS = {
    "[instrumental]", "[inst]", "[solo]", "[interlude]", "[intro]", "[outro]", "[drop]", "[breakdown]",
}


def section_tag(line: str) -> str | None:
    """'[Verse 1]', '**Chorus:**', '(Pre-Chorus)', '## Bridge' -> '[verse]', '[chorus]', ...;
    None when the line is not a section marker. Unknown bracketed names are kept, lowercased."""
    bare = _EMPHASIS.sub("", line).strip()
    bracketed = _BRACKETED.match(bare)
    inner = bracketed.group("inner").strip() if bracketed else bare.rstrip(":").strip()
    m = _SECTION_CORE.match(inner)
    if m:
        name = re.sub(r"[\s_]+", "-", m.group("name").lower())
        return f"[{name}]"
    if bracketed:
        # "[Hook/Chorus – Reprise]": a known name inside wins; otherwise keep the producer's label.
        for word in re.findall(r"[a-z-]+", inner.lower()):
            if word in SECTION_NAMES:
                return f"[{word}]"
        # "(ooh, ooh)" is a backing vocal, "[Guitar Solo]" a label.
        if bracketed.group("open") == "[" and re.search(r"[^\W\d_]", inner):
            return f"[{' '.join(inner.lower().split())}]"
    return None


def parse_lyrics(text: str) -> str:
    """Lyrics ACE-Step can sing: section tags on their own lines, sung lines, blank lines between
    sections. Chatter before the first section and after the last line is dropped.

    Raises SongTextError without at least one section tag and one line of words.
    """
    out: list[str] = []
    started = False
    for raw in _clean_text(text).split("\n"):
        line = raw.strip()
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        tag = section_tag(line)
        if tag is not None:
            started = True
            if out and out[-1] != "":
                out.append("")
            out.append(tag)
            continue
        if not started or _CHATTER.match(line):
            continue
        sung = _clean_item(line) if _BULLET.match(line) or _EMPHASIS.search(line) else line
        sung = sung.strip().strip(_QUOTES).strip()
        if re.search(r"[^\W\d_]", sung):
            out.append(" ".join(sung.split()))
    # A section tag with nothing under it (often a trailing "[outro]") says nothing to sing.
    cleaned: list[str] = []
    for i, line in enumerate(out):
        if line.startswith("["):
            rest = next((x for x in out[i + 1:] if x != ""), None)
            if rest is None or rest.startswith("["):
                if line not in _WORDLESS_SECTIONS:
                    continue
        cleaned.append(line)
    while cleaned and cleaned[-1] == "":
        cleaned.pop()
    result = "\n".join(cleaned).strip()
    result = re.sub(r"\n{3,}", "\n\n", result)
    if not started:
        raise SongTextError("the lyrics have no section tag such as [verse] or [chorus]")
    if not any(line and not line.startswith("[") for line in result.split("\n")):
        raise SongTextError("the lyrics have section tags but no words")
    return result


def genre_like(tags: str) -> list[str]:
    """The tags that could name a genre: not vocals, tempo or key (used to fill up categories)."""
    return [t for t in split_tags(tags) if not _NOT_VISUAL.search(t)]


def parse_categories(text: str, fallback: list[str] | None = None) -> list[str]:
    """3 to 5 genre names, title-cased, deduplicated. Too few from the model: `fallback` items
    (e.g. the leading tags) fill up; still fewer than 3 raises SongTextError."""
    lines = [_LABEL.sub("", line).strip() for line in _clean_text(text).split("\n")]
    items: list[str] = []
    for line in lines:
        if not line.endswith(":"):
            items.extend(split_tags(line))
    found = [_title(i) for i in items if _usable_tag(i, MAX_CATEGORY_WORDS)]
    pool = found + [_title(i) for i in (fallback or []) if _usable_tag(i, MAX_CATEGORY_WORDS)]
    genres = _dedupe(pool)[:MAX_CATEGORIES]
    if len(genres) < MIN_CATEGORIES:
        raise SongTextError(f"only {len(genres)} usable genre names, at least {MIN_CATEGORIES} are needed")
    return genres


def _title(item: str) -> str:
    # Keep the model's own capitals (EDM, R&B); capitalise words it wrote in lowercase.
    return " ".join(w if any(c.isupper() for c in w) else w[:1].upper() + w[1:] for w in item.split())

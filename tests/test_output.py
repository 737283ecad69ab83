import json
import os

import pytest

from muse_cli.errors import InputError
from muse_cli.output import PART_SUFFIX, Journal, Target, output_format, slugify, together, write_group


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Jazz piano, late night!", "jazz-piano-late-night"),
        ("../../etc/passwd", "etc-passwd"),
        (".hidden", "hidden"),
        ("   ", "muse"),
        ("Ünïcödé Café", "unicode-cafe"),
        ("a/b\\c", "a-b-c"),
    ],
)
def test_slugify_is_safe(text, expected):
    assert slugify(text) == expected


def test_slugify_caps_length_at_word_boundary():
    slug = slugify("word " * 40)
    assert len(slug) <= 64 and not slug.endswith("-") and slug.startswith("word-word")


@pytest.mark.parametrize(
    "output,given,expected",
    [(None, None, None), (None, "flac", "flac"), ("take", "flac", "flac"), ("take.FLAC", None, "flac"),
     ("dir.v1/take.wav", "wav", "wav")],
)
def test_output_format_follows_the_file_name(output, given, expected):
    assert output_format(output, given, ("wav", "flac", "mp3")) == expected


@pytest.mark.parametrize(
    "output,given,needle",
    [("take.ogg", None, "writes .wav, .flac or .mp3"), ("take.flac", "wav", "is flac but --format is wav")],
)
def test_output_format_refuses_a_name_that_lies(output, given, needle):
    with pytest.raises(InputError, match=needle):
        output_format(output, given, ("wav", "flac", "mp3"))


def test_write_group_never_overwrites_without_force(tmp_path):
    target = Target(tmp_path, "tune")
    first = write_group(target, {".mid": b"one"}, {"n": 1})
    second = write_group(target, {".mid": b"two"}, {"n": 2})
    assert [p.name for p in first] == ["tune.mid", "tune.json"]
    assert [p.name for p in second] == ["tune-2.mid", "tune-2.json"]
    assert (tmp_path / "tune.mid").read_bytes() == b"one"
    assert json.loads((tmp_path / "tune-2.json").read_text())["outputs"] == ["tune-2.mid"]


def test_stem_is_free_across_the_whole_group(tmp_path):
    (tmp_path / "tune.json").write_text("user's own file")
    paths = write_group(Target(tmp_path, "tune"), {".mid": b"x"}, {})
    assert paths[0].name == "tune-2.mid"
    assert (tmp_path / "tune.json").read_text() == "user's own file"


def test_force_overwrites(tmp_path):
    write_group(Target(tmp_path, "tune"), {".mid": b"one"})
    paths = write_group(Target(tmp_path, "tune", force=True), {".mid": b"two"})
    assert paths[0].read_bytes() == b"two"


def test_no_temporary_files_remain(tmp_path):
    write_group(Target(tmp_path, "a"), {".wav": b"x" * 1000}, {"k": "v"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.wav"]


def test_journal_recovery_removes_only_what_it_proves_ours(tmp_path):
    """A killed run: its linked finals are hard links of its temporaries; a user's file is not."""
    journal = Journal(tmp_path / "manifest.journal")
    with together(journal, "job1") as group:
        write_group(Target(tmp_path, "take"), {".mid": b"mine"}, {"k": 1})
    # killed before the commit: finals linked, temporaries still there
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(PART_SUFFIX)]
    assert len(temps) == 2 and (tmp_path / "take.mid").read_bytes() == b"mine"
    (tmp_path / "take-notes.txt").write_text("the user's")  # shares the prefix: never touched
    (tmp_path / f".other.wav.0000{PART_SUFFIX}").write_bytes(b"not in the journal")
    assert journal.recover(lambda key, names: False) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".other.wav.0000{PART_SUFFIX}", "take-notes.txt"]
    assert group.linked  # (the group object saw both links)


def test_journal_recovery_keeps_a_committed_job_and_a_replaced_file(tmp_path):
    journal = Journal(tmp_path / "manifest.journal")
    with together(journal, "job1"):
        write_group(Target(tmp_path, "a"), {".mid": b"a"})
    with together(journal, "job2"):
        write_group(Target(tmp_path, "b"), {".mid": b"b"})
    (tmp_path / "b.mid").unlink()
    (tmp_path / "b.mid").write_bytes(b"the user's own b.mid")  # another inode: not provably ours
    removed = journal.recover(lambda key, names: key == "job1" and names == ["a.mid"])
    assert removed == 2  # the two temporaries only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid", "b.mid"]
    assert (tmp_path / "b.mid").read_bytes() == b"the user's own b.mid"


def test_a_group_lands_whole_or_not_at_all(tmp_path):
    with pytest.raises(RuntimeError):
        with together():
            write_group(Target(tmp_path, "one"), {".mid": b"1"}, {})
            write_group(Target(tmp_path, "one"), {".mid": b"2"}, {})  # a free stem within the group
            raise RuntimeError("render failed")
    assert list(tmp_path.iterdir()) == []
    with together():
        first = write_group(Target(tmp_path, "one"), {".mid": b"1"}, {})
        second = write_group(Target(tmp_path, "one"), {".mid": b"2"}, {})
        assert not first[0].exists()  # nothing appears before the group ends
    assert [p.name for p in first + second] == ["one.mid", "one.json", "one-2.mid", "one-2.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one-2.json", "one-2.mid", "one.json", "one.mid"]


def test_a_dangling_link_is_a_taken_name_and_left_alone(tmp_path):
    (tmp_path / "tune.mid").symlink_to(tmp_path / "gone.mid")
    for force in (False, True):
        paths = write_group(Target(tmp_path, "tune", force=force), {".mid": b"x"})
        assert paths[0].name == ("tune-2.mid" if not force else "tune-2.mid")
        assert os.readlink(tmp_path / "tune.mid") == str(tmp_path / "gone.mid")

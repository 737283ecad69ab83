import json
import os

import pytest

from muse_cli.errors import InputError
from muse_cli.output import PART_SUFFIX, Target, clean_partials, output_format, slugify, write_group


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


def test_clean_partials(tmp_path):
    (tmp_path / f".x.wav.abcd{PART_SUFFIX}").write_bytes(b"partial")
    assert clean_partials(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_plan_creates_missing_out_dir(tmp_path):
    target = Target.plan(stem="Hello World", out_dir=tmp_path / "new" / "dir")
    assert target.folder.is_dir() and target.stem == "hello-world"


def test_plan_output_file(tmp_path):
    target = Target.plan(stem="ignored", output=tmp_path / "sub" / "mine.mid")
    assert target.folder == tmp_path / "sub" and target.stem == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_plan_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(InputError, match="not writable"):
        Target.plan(stem="x", out_dir=locked)


def test_plan_folder_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create output folder"):
        Target.plan(stem="x", out_dir=tmp_path / "file" / "sub")


def test_numbered_targets(tmp_path):
    target = Target(tmp_path, "etude")
    assert target.numbered(0, 1).stem == "etude"
    assert [target.numbered(i, 3).stem for i in range(3)] == ["etude-1", "etude-2", "etude-3"]

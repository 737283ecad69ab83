"""`muse gen song` as a user meets it, up to the point where ACE-Step would need a GPU."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.mark.parametrize(
    "args,needle",
    [
        ([], "description must not be empty"),
        (["   "], "DESCRIPTION: must not be empty"),
        (["x", "--instrumental", "--lyrics", "lyrics.txt"], "not both"),
        (["--tags", "pop", "--lyrics", "missing.txt"], "no such file"),
        (["--tags", "pop", "--lyrics", "empty.txt"], "is empty"),
        (["summer", "-d", "0"], "--duration"),
        (["summer", "-d", "241"], "--duration"),
        (["summer", "--steps", "0"], "--steps"),
        (["summer", "--steps", "201"], "--steps"),
        (["summer", "--scheduler", "dpm"], "--scheduler"),
        (["summer", "--seed", "-2"], "--seed"),
        (["--lyrics", "lyrics.txt"], "--tags"),
    ],
)
def test_bad_song_input_exits_2_before_any_model(run_cli, tmp_path, args, needle):
    (tmp_path / "lyrics.txt").write_text("[verse]\nhello night\n")
    (tmp_path / "empty.txt").write_text("  \n")
    code, out, err = run_cli("gen", "song", *args)
    assert code == 2, err
    assert needle in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "lyrics.txt"]


@pytest.mark.skipif(importlib.util.find_spec("acestep") is not None, reason="acestep installed: the real run is in test_song_engines")
def test_song_without_acestep_fails_with_one_line_and_a_hint(run_cli, tmp_path):
    code, out, err = run_cli("gen", "song", "--tags", "ambient piano", "--instrumental", "-d", "5",
                             "--no-cover", "--no-categories", "--backend", "local")
    assert code == 1 and out == ""
    assert "ACE-Step is not installed" in err and "--backend modal" in err
    assert list(tmp_path.iterdir()) == []

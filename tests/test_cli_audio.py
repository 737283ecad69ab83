"""`muse gen audio` end to end with the local backend and a tiny MusicGen loaded by path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))  # tiny_musicgen


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch
    from tiny_musicgen import build_tiny_musicgen

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield str(build_tiny_musicgen(tmp_path_factory.mktemp("tiny") / "mono"))
    torch.set_num_threads(threads)


def test_gen_audio_writes_exact_length_audio_and_sidecar(run_cli, tiny_model, tmp_path):
    code, out, err = run_cli("gen", "audio", "jazz piano", "-d", "2", "--seed", "3", "--backend", "local", "--model", tiny_model)
    assert code == 0, err
    (path,) = [Path(p) for p in out.split()]
    assert path.name == "jazz-piano.wav"
    audio, sr = sf.read(path)
    assert len(audio) == 2 * sr
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["seed"] == 3 and meta["backend"] == "local" and meta["engine"] == "musicgen"
    assert meta["request"]["duration"] == 2 and meta["metadata"]["sample_rate"] == sr


def test_same_seed_same_audio_and_count_gives_variations(run_cli, tiny_model):
    args = ("gen", "audio", "calm piano", "-d", "1", "--backend", "local", "--model", tiny_model, "--json")
    _, out1, _ = run_cli(*args, "--seed", "11", "--out-dir", "a")
    _, out2, _ = run_cli(*args, "--seed", "11", "--out-dir", "b")
    a, b = json.loads(out1), json.loads(out2)
    assert np.array_equal(sf.read(a["outputs"][0])[0], sf.read(b["outputs"][0])[0])
    code, out, _ = run_cli(*args, "--seed", "11", "-n", "2", "--out-dir", "c", "--format", "flac")
    clips = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(clips) == 2 and clips[0]["seed"] != clips[1]["seed"]
    assert all(c["outputs"][0].endswith(".flac") for c in clips)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["x", "-d", "0"], "--duration"),
        (["x", "-d", "-3"], "--duration"),
        (["x", "-d", "nan"], "--duration"),
        (["x", "-d", "301"], "--duration"),
        (["   "], "PROMPT: must not be empty"),
        ([], "prompt must not be empty"),
        (["x", "--temperature", "0"], "--temperature"),
        (["x", "--top-k", "-1"], "--top-k"),
        (["x", "--top-p", "1.5"], "--top-p"),
        (["x", "--model", "xxl"], "xxl"),
        (["x", "--melody", "tune.wav"], "melody"),
        (["x", "--continue", "broken.wav"], "broken.wav"),
        (["x", "--continue", "silence.wav"], "silent"),
        (["x", "--continue", "missing.wav"], "no such file"),
    ],
)
def test_bad_audio_input_exits_2_before_any_model(run_cli, tmp_path, args, needle):
    sr = 8000
    t = np.arange(sr) / sr
    sf.write(tmp_path / "tune.wav", 0.3 * np.sin(2 * np.pi * 220 * t), sr)
    sf.write(tmp_path / "silence.wav", np.zeros(sr), sr)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli("gen", "audio", *args, "--backend", "local")
    assert code == 2, err
    assert needle in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before

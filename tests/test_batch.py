"""`muse batch` and --prompts-file: validation, streaming to disk, manifest, resume, interrupts."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from muse_cli import batch as B

from muse_cli.errors import InputError, TransientFailure


def etude(prompt: str, **kw) -> dict:
    return {"kind": "midi", "engine": "etude", "prompt": prompt, "bars": 4, **kw}


def write_jobs(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / B.MANIFEST).read_text().splitlines()]


def files(folder: Path) -> list[str]:
    """The folder's files, less the batch lock file (it stays, empty of meaning, between runs)."""
    return sorted(p.name for p in folder.iterdir() if p.name != B.LOCK)


# ------------------------------------------------------------------------------- validation


def test_bad_lines_are_all_reported_and_nothing_runs(run_cli, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        "# header comment",
        etude("fine"),
        "{not json",
        {"kind": "video", "prompt": "x"},
        {"kind": "midi", "engine": "etude", "tempo": 900},
        {"kind": "midi", "engine": "etude", "colour": "red"},
        "",
        {"prompt": "no kind"},
        "[1, 2]",
        etude("dupe id", id="a"),
        etude("dupe id again", id="a"),
    ])
    code, out, err = run_cli("batch", jobs, "--out-dir", "out")
    assert code == 2 and out == ""
    for line, words in [(3, "not valid JSON"), (4, "unknown kind 'video'"), (5, "tempo"), (6, "unknown field 'colour'"),
                        (8, 'no "kind"'), (9, "JSON object"), (11, "line 10")]:
        assert any(f"line {line}:" in row and words in row for row in err.splitlines()), (line, err)
    assert "line 2:" not in err and "7 invalid lines" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_skip_invalid_runs_the_valid_lines(run_cli, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [etude("one"), {"kind": "midi", "bars": 0}, etude("two")])
    code, out, err = run_cli("batch", jobs, "--out-dir", "out", "--skip-invalid")
    assert code == 0, err
    assert "line 2:" in err and "bars" in err
    assert [Path(p).name for p in out.splitlines()] == ["0001-one.mid", "0003-two.mid"]
    assert {e["line"] for e in manifest(tmp_path / "out")} == {1, 3}


# --------------------------------------------------------------------------- running, resume


def test_failure_does_not_stop_others_and_resume_retries_only_it(run_cli, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        etude("first", seed=1),
        {"kind": "midi", "engine": "midi-llm", "prompt": "needs weights", "model": str(tmp_path / "absent")},
        etude("third", id="last"),
    ])
    code, out, err = run_cli("batch", jobs, "--out-dir", "out")
    assert code == 1
    assert "FAILED line 2" in err and "1 failed" in err and "2 ok" in err
    entries = manifest(tmp_path / "out")
    assert [e["status"] for e in sorted(entries, key=lambda e: e["line"])] == ["ok", "failed", "ok"]
    failed = next(e for e in entries if e["status"] == "failed")
    assert "absent" in failed["error"] and failed["attempts"] == 1 and failed["outputs"] == []
    ok = {e["id"]: e for e in entries if e["status"] == "ok"}
    assert ok["1"]["outputs"] == ["0001-first.mid"] and ok["1"]["seed"] == 1
    assert ok["last"]["outputs"] == ["last-third.mid"]
    sidecar = json.loads((tmp_path / "out" / "last-third.json").read_text())
    assert sidecar["seed"] == ok["last"]["seed"] and sidecar["command"] == "batch"  # drawn, recorded, used

    before = files(tmp_path / "out")
    code, out, err = run_cli("batch", jobs, "--out-dir", "out")  # resumes by default: only line 2 again
    assert code == 1 and "2 of 3 jobs already done" in err and out == ""
    assert files(tmp_path / "out") == before
    assert [e["line"] for e in manifest(tmp_path / "out")][3:] == [2]


def test_rerun_of_finished_batch_does_nothing(run_cli, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [etude("a"), etude("b"), etude("a")])  # line 3 repeats line 1
    code, _, err = run_cli("batch", jobs, "--out-dir", "out", "-q")
    assert code == 0 and err == ""
    first = files(tmp_path / "out")
    assert first == ["0001-a.json", "0001-a.mid", "0002-b.json", "0002-b.mid", "manifest.jsonl"]
    code, out, err = run_cli("batch", jobs, "--out-dir", "out")
    assert code == 0 and out == "" and "all 2 jobs are done" in err and "line 3 repeats" in err
    assert files(tmp_path / "out") == first
    code, out, _ = run_cli("batch", jobs, "--out-dir", "out", "--no-resume", "-q")
    assert code == 0 and len(out.splitlines()) == 2  # asked for again: new takes, nothing replaced
    assert "0001-a-2.mid" in files(tmp_path / "out") and (tmp_path / "out" / "0001-a.mid").exists()


def test_analyze_jobs_list_the_report_and_transcription_as_outputs(run_cli, tmp_path):
    import pretty_midi

    from muse_cli.contracts import RenderRequest
    from muse_cli.music.render import render_to_bytes

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(velocity=80, pitch=60 + i % 5, start=0.6 * i, end=0.6 * i + 0.5) for i in range(8)]
    pm.instruments.append(piano)
    (tmp_path / "take.wav").write_bytes(render_to_bytes(pm, RenderRequest(sample_rate=22050, stereo=False))[0])
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"kind": "analyze", "input": "take.wav", "midi": True}])
    code, out, err = run_cli("batch", jobs, "--out-dir", "out", "-q")
    assert code == 0, err
    (entry,) = manifest(tmp_path / "out")
    # The report carries its own provenance: it is an output, not a sidecar, and nothing is missed.
    assert entry["outputs"] == ["0001-take.analysis.json", "0001-take.transcription.mid"] and entry["sidecars"] == []
    assert [Path(p).name for p in out.split()] == entry["outputs"]
    assert files(tmp_path / "out") == sorted(entry["outputs"] + [B.MANIFEST])


def test_stdin_and_json_lines(run_cli, tmp_path, monkeypatch):
    text = "\n".join(json.dumps(x) for x in [etude("s1"), etude("s2"), {"kind": "midi", "engine": "midi-llm", "prompt": "x", "model": "/absent"}])
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, err = run_cli("batch", "-", "--out-dir", "out", "--json")
    assert code == 1, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 3 and {o["status"] for o in objs} == {"ok", "failed"}
    for obj in objs:
        assert {"id", "hash", "status", "outputs", "seed", "error", "timings"} <= set(obj)
        assert all(Path(p).is_file() for p in obj["outputs"] + obj["sidecars"])
    assert sorted(o["line"] for o in objs) == [1, 2, 3]


def test_csv_with_header_comments_and_empty_cells(run_cli, tmp_path):
    (tmp_path / "jobs.csv").write_text(
        "kind,id,prompt,engine,bars,key,seed\n"
        "# a comment row\n"
        "midi,,\"waltz, slow\",etude,3,,5\n"
        "\n"
        "midi,k,,etude,2,D minor,\n"
        "midi,,bad,etude,x,,\n"
    )
    code, _, err = run_cli("batch", "jobs.csv", "--out-dir", "out")
    assert code == 2 and "line 6: bars" in err
    code, out, err = run_cli("batch", "jobs.csv", "--out-dir", "out", "--skip-invalid")
    assert code == 0, err
    names = [Path(p).name for p in out.splitlines()]
    assert names == ["0003-waltz-slow.mid", "k-etude-d-minor-beginner.mid"]
    sidecar = json.loads((tmp_path / "out" / "0003-waltz-slow.json").read_text())
    assert sidecar["seed"] == 5 and sidecar["request"]["bars"] == 3


def test_transient_failures_are_retried_bad_input_is_not(tmp_path, monkeypatch):
    from muse_cli import kinds
    from muse_cli.kinds.midi import MidiKind

    calls: dict[str, int] = {}

    class Flaky(MidiKind):
        name = "flaky"

        def run(self, request, backend, progress):
            calls[request.prompt] = calls.get(request.prompt, 0) + 1
            if request.prompt == "flaky" and calls["flaky"] < 3:
                raise TransientFailure("container lost")
            if request.prompt == "bad":
                raise InputError("bad input found late")
            return super().run(request, backend, progress)

    monkeypatch.setitem(kinds.KINDS, "flaky", Flaky())
    rows = [(i + 1, {"kind": "flaky", "engine": "etude", "prompt": p}) for i, p in enumerate(["flaky", "bad", "fine"])]
    plan = B.plan(rows, base=tmp_path)
    from muse_cli.backends.local import LocalBackend

    summary = B.run(plan.jobs, LocalBackend(), tmp_path, retries=2, concurrency=2, sleep=lambda s: None)
    by_line = {e["line"]: e for e in summary.entries}
    assert summary.ok == 2 and summary.failed == 1
    assert by_line[1]["attempts"] == 3 and by_line[1]["status"] == "ok" and calls == {"flaky": 3, "bad": 1, "fine": 1}
    assert by_line[2]["error_type"] == "input" and by_line[2]["attempts"] == 1

    calls.clear()
    (tmp_path / "again").mkdir()
    summary = B.run(plan.jobs, LocalBackend(), tmp_path / "again", retries=1, sleep=lambda s: None)
    failed = [e for e in summary.entries if e["status"] == "failed"]
    assert {e["error_type"] for e in failed} == {"transient", "input"} and calls["flaky"] == 2


# --------------------------------------------------------------------------- hashing, files


def test_unseeded_jobs_hash_without_seed_and_files_resolve_against_jobs_file(tmp_path):
    import numpy as np
    import soundfile as sf

    sub = tmp_path / "sub"
    sub.mkdir()
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.linspace(0, 400, 8000)).astype("float32"), 8000, format="WAV")
    (sub / "clip.wav").write_bytes(buf.getvalue())
    rows = [
        (1, {"kind": "audio", "prompt": "more", "continuation": "clip.wav", "duration": 2}),
        (2, {"kind": "audio", "prompt": "more", "continuation": "missing.wav"}),
        (3, {"kind": "midi", "engine": "etude", "prompt": "p"}),
    ]
    plan = B.plan(rows, base=sub)
    assert len(plan.errors) == 1 and str(plan.errors[0]) == f"line 2: continuation: {str(sub / 'missing.wav')!r}: no such file"
    audio, midi = plan.jobs
    assert audio.request().continuation.data == buf.getvalue() and audio.request().continuation.name == "clip.wav"
    again = B.plan(rows, base=sub).jobs
    assert again[0].hash == audio.hash and again[1].hash == midi.hash  # same request, fresh seeds
    assert midi.seed is not None and midi.request().seed == midi.seed
    (sub / "clip.wav").write_bytes(buf.getvalue()[:-200])
    assert B.plan(rows, base=sub).jobs[0].hash != audio.hash  # the input's content is part of the request
    seeded = B.plan([(3, {"kind": "midi", "engine": "etude", "prompt": "p", "seed": 4})], base=sub).jobs[0]
    assert seeded.hash != midi.hash and seeded.seed == 4


def test_torn_manifest_line_and_files_muse_cannot_prove_its_own(run_cli, tmp_path):
    out = tmp_path / "out"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [etude("one"), etude("two")])
    assert run_cli("batch", jobs, "--out-dir", "out", "-q")[0] == 0
    entries = manifest(out)
    two = next(e for e in entries if e["line"] == 2)
    # Job 2's manifest line torn, and a part file nobody's journal names: job 2 runs again, and
    # the files it cannot prove it wrote unfinished (no journal intent) are left alone.
    (out / B.MANIFEST).write_text(json.dumps(entries[0]) + "\n" + json.dumps(two)[:40])
    (out / ".0002-two.mid.abcd.muse-part").write_bytes(b"half")
    code, _, err = run_cli("batch", jobs, "--out-dir", "out")
    assert code == 0, err
    assert files(out) == [".0002-two.mid.abcd.muse-part", "0001-one.json", "0001-one.mid", "0002-two-2.json",
                          "0002-two-2.mid", "0002-two.json", "0002-two.mid", "manifest.jsonl"]
    good = [json.loads(x) for x in (out / B.MANIFEST).read_text().splitlines() if x.endswith("}")]
    assert sorted(e["line"] for e in good if e["status"] == "ok") == [1, 2]


def test_prompts_file_uses_command_options_as_defaults(run_cli, tmp_path):
    (tmp_path / "prompts.txt").write_text("a calm waltz\n\n# not a prompt\nrunning scales\n")
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "--key", "A minor",
                             "--prompts-file", "prompts.txt", "--out-dir", "po")
    assert code == 0, err
    assert [Path(p).name for p in out.splitlines()] == ["0001-a-calm-waltz.mid", "0004-running-scales.mid"]
    for name in ("0001-a-calm-waltz", "0004-running-scales"):
        request = json.loads((tmp_path / "po" / f"{name}.json").read_text())["request"]
        assert request["bars"] == 2 and request["key"] == "A minor"
    code, _, err = run_cli("gen", "midi", "x", "--prompts-file", "prompts.txt")
    assert code == 2 and "not both" in err
    code, _, err = run_cli("gen", "audio", "--prompts-file", "prompts.txt", "-d", "0.5", "--backend", "local")
    assert code == 2 and "line 1: duration" in err and "line 4: duration" in err


def test_midi_jobs_render_to_audio_from_a_line_or_the_render_option(run_cli, tmp_path):
    import soundfile as sf

    (tmp_path / "prompts.txt").write_text("a calm waltz\n")
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "--prompts-file", "prompts.txt",
                             "--render", "--format", "flac", "--out-dir", "po", "-q")
    assert code == 0, err
    assert [Path(p).name for p in out.split()] == ["0001-a-calm-waltz.mid", "0001-a-calm-waltz.flac"]
    audio, sr = sf.read(tmp_path / "po" / "0001-a-calm-waltz.flac")
    assert sr == 44100 and audio.shape[0] > sr
    assert json.loads((tmp_path / "po" / "0001-a-calm-waltz.json").read_text())["render"]["format"] == "flac"

    lines = [etude("plain"), etude("heard", render=True), etude("mono", render={"stereo": False, "sample_rate": 22050})]
    jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
    code, _, err = run_cli("batch", jobs, "--out-dir", "out", "-q")
    assert code == 0, err
    outputs = {e["line"]: e["outputs"] for e in manifest(tmp_path / "out")}
    assert outputs == {1: ["0001-plain.mid"], 2: ["0002-heard.mid", "0002-heard.wav"], 3: ["0003-mono.mid", "0003-mono.wav"]}
    assert sf.info(tmp_path / "out" / "0003-mono.wav").channels == 1
    # Render settings are part of the request: the same line without them is another job.
    assert len({job.hash for job in B.plan([(1, etude("x")), (2, etude("x", render=True))], base=tmp_path).jobs}) == 2


def test_bad_render_fields_are_line_errors(run_cli, tmp_path):
    lines = [etude("a", render="mp4"), etude("b", render={"soundfont": "none.sf2"}), etude("c", render={"rate": 1}),
             {"kind": "analyze", "input": "x.wav", "render": True}]
    plan = B.plan(list(enumerate(lines, 1)), base=tmp_path)
    assert [str(e) for e in plan.errors] == [
        "line 1: render.format: Input should be 'wav' or 'flac' (got 'mp4')",
        "line 2: render.soundfont 'none.sf2': no such file",
        "line 3: unknown field 'render.rate'",
        "line 4: render: only midi jobs render, not analyze jobs",
    ]


# ------------------------------------------------------------------------- killed mid-way


def _start(tmp_path: Path, jobs: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "muse_cli", "batch", str(jobs), "--out-dir", "out"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_lines(folder: Path, count: int, proc: subprocess.Popen, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    path = folder / B.MANIFEST
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        if proc.poll() is not None:  # ended before writing them (checked after the read: a fast finish is fine)
            break
        time.sleep(0.02)
    raise AssertionError("the batch did not get going")


def test_interrupted_and_killed_runs_resume_to_exactly_once(tmp_path):
    total = 30
    jobs = write_jobs(tmp_path / "jobs.jsonl", [etude(f"piece {i}", bars=128) for i in range(total)])
    out = tmp_path / "out"

    proc = _start(tmp_path, jobs)
    _wait_for_lines(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"not run" in err
    after_int = manifest(out)
    assert 2 <= len(after_int) < total
    for entry in after_int:  # every recorded job has all its files, complete
        assert entry["status"] == "ok" and all((out / n).stat().st_size > 0 for n in entry["outputs"] + entry["sidecars"])

    proc = _start(tmp_path, jobs)  # resumes by default
    _wait_for_lines(out, len(after_int) + 3, proc)
    proc.kill()
    proc.wait(timeout=30)

    done = subprocess.run([sys.executable, "-m", "muse_cli", "batch", str(jobs), "--out-dir", "out", "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    entries = [json.loads(x) for x in (out / B.MANIFEST).read_text().splitlines() if x.endswith("}")]
    ok = [e for e in entries if e["status"] == "ok"]
    assert len(ok) == len({e["hash"] for e in ok}) == total  # each job recorded exactly once
    assert sorted(e["line"] for e in ok) == list(range(1, total + 1))
    names = files(out)
    assert not [n for n in names if n.endswith(".muse-part") or n.startswith(".")]
    assert len([n for n in names if n.endswith(".mid")]) == total  # no duplicates like "-2"
    assert sorted(n for e in ok for n in e["outputs"] + e["sidecars"]) == sorted(n for n in names if n != B.MANIFEST)
    finished_now = [json.loads(x) for x in done.stdout.splitlines()]  # --json: one object per job run now
    assert finished_now and all(o["status"] == "ok" for o in finished_now)
    assert {o["hash"] for o in finished_now} == {e["hash"] for e in entries[-len(finished_now):]}


def test_batch_says_when_midi_llm_falls_back_and_quiet_silences_warnings(run_cli, tmp_path):
    jobs = tmp_path / "j.jsonl"
    jobs.write_text('{"kind":"midi","prompt":"a calm waltz","seed":1}\n{"kind":"midi","difficulty":"hard"}\n')
    code, out, err = run_cli("batch", str(jobs), "--backend", "local", "--out-dir", "a", "--skip-invalid")
    assert code == 0 and out.strip().endswith(".mid")
    assert err.count("using the built-in etude composer") == 1 and "warning: line 2" in err
    code, out, err = run_cli("batch", str(jobs), "--backend", "local", "--out-dir", "b", "--skip-invalid", "-q")
    assert code == 0 and out.strip().endswith(".mid") and err == ""

"""Issue 12, "files muse did not write": each promise broken the way a user breaks it.

muse deletes only files it can prove it wrote and did not finish, never by prefix; one batch
per folder; a job's files land together or not at all; outputs are regular files only.
Subprocesses where the promise is about processes, kernels or disks; `run_cli` elsewhere.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from muse_cli import batch as B

MUSE = [sys.executable, "-m", "muse_cli"]


def muse(*args: str, cwd: Path, fsize: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`muse ...` as a user runs it; `fsize` caps every file it writes (RLIMIT_FSIZE: the kernel
    answers a write past it with EFBIG, as a full disk answers with ENOSPC)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([*MUSE, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=cap if fsize else None, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr and "unexpected" not in stderr, stderr
    return lines[0]


def etude_line(prompt: str, **kw) -> str:
    return json.dumps({"kind": "midi", "engine": "etude", "prompt": prompt, "bars": 2, "seed": 1, **kw})


# ----------------------------------------------------------------- 1. batch deletes user files


def test_batch_in_the_users_folder_deletes_nothing_of_theirs(tmp_path):
    (tmp_path / "demo.jsonl").write_text('{"kind":"midi","id":"demo","engine":"etude","seed":1}\n')
    (tmp_path / "demo.py").write_text("print('mine')\n")
    (tmp_path / "demo-notes.txt").write_text("mine\n")
    run = muse("batch", "demo.jsonl", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert {"demo.jsonl", "demo.py", "demo-notes.txt"} <= set(names(tmp_path))
    first = [n for n in names(tmp_path) if n.startswith("demo-etude") and n.endswith(".mid")]
    assert len(first) == 1

    (tmp_path / B.MANIFEST).unlink()  # the manifest gone: every earlier take is the user's now
    run = muse("batch", "demo.jsonl", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    takes = [n for n in names(tmp_path) if n.startswith("demo-etude") and n.endswith(".mid")]
    assert len(takes) == 2 and first[0] in takes
    assert {"demo.jsonl", "demo.py", "demo-notes.txt"} <= set(names(tmp_path))


KILL_AT_COMMIT = """
import os, sys
from muse_cli import batch
batch.Manifest.append = lambda self, entry: os._exit(137)  # SIGKILL's moment: files linked, no manifest line
from muse_cli.cli import run
sys.exit(run(sys.argv[1:]))
"""


def test_a_run_killed_before_its_manifest_line_is_cleaned_up_by_the_journal_alone(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(etude_line("take", id="t") + "\n")
    (tmp_path / "t-notes.txt").write_text("mine, and it shares the job's prefix\n")
    killed = subprocess.run([sys.executable, "-c", KILL_AT_COMMIT, "batch", str(jobs), "-q"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137
    left = names(tmp_path)
    assert "t-take.mid" in left and B.JOURNAL in left and any(n.endswith(".muse-part") for n in left)

    run = muse("batch", "jobs.jsonl", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "removed 4 file(s) an interrupted run had started to write" in run.stderr
    assert names(tmp_path) == sorted(["jobs.jsonl", B.LOCK, B.MANIFEST, "t-notes.txt", "t-take.json", "t-take.mid"])


# ----------------------------------------------- 2. analyze --midi --force and the composed .mid


def test_analyze_force_never_replaces_the_composed_midi_beside_the_recording(run_cli, tmp_path):
    code, _, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "--seed", "3", "--render", "-o", "take.mid", "-q")
    assert code == 0, err
    composed = (tmp_path / "take.mid").read_bytes()
    sidecar = (tmp_path / "take.json").read_bytes()
    for _ in range(2):  # the second time --force replaces the first analysis, and only it
        code, out, err = run_cli("analyze", "take.wav", "--midi", "--transcribe", "--force", "-q")
        assert code == 0, err
    assert (tmp_path / "take.mid").read_bytes() == composed
    assert (tmp_path / "take.json").read_bytes() == sidecar
    assert out.split() == ["take.analysis.json", "take.transcription.mid"]
    assert not (tmp_path / "take-2.analysis.json").exists()


# ------------------------------------------------------------- 3. two batch runs on one folder


def test_a_second_batch_on_the_same_folder_exits_at_once_or_waits(tmp_path):
    total = 40
    (tmp_path / "jobs.jsonl").write_text("".join(etude_line(f"piece {i}", bars=128) + "\n" for i in range(total)))
    first = subprocess.Popen([*MUSE, "batch", "jobs.jsonl", "--out-dir", "out", "-q"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ((tmp_path / "out" / B.MANIFEST).exists() and (tmp_path / "out" / B.MANIFEST).read_text()):
            assert first.poll() is None and time.monotonic() < deadline, "the first batch did not get going"
            time.sleep(0.02)
        started = time.monotonic()
        second = muse("batch", "jobs.jsonl", "--out-dir", "out", cwd=tmp_path)
        assert time.monotonic() - started < 20 and first.poll() is None  # refused while the first still runs
        assert second.returncode == 1
        assert one_line_error(second.stderr) == f"error: another muse batch (pid {first.pid}) is running in out"
        assert "--wait" in second.stderr
        waiting = subprocess.Popen([*MUSE, "batch", "jobs.jsonl", "--out-dir", "out", "--wait"], cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, waited_err = waiting.communicate(timeout=300)
        _, first_err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    assert waiting.returncode == 0, waited_err
    assert f"waiting for the muse batch (pid {first.pid}) running in out" in waited_err
    assert f"all {total} jobs are done" in waited_err  # it ran after the first: nothing left to do
    out = tmp_path / "out"
    assert len([n for n in names(out) if n.endswith(".mid")]) == total
    entries = [json.loads(line) for line in (out / B.MANIFEST).read_text().splitlines()]
    assert len(entries) == len({e["hash"] for e in entries}) == total


# ------------------------------------------------------------------ 4. a dangling symlink


def test_a_dangling_link_at_the_output_name_is_left_alone(run_cli, tmp_path):
    (tmp_path / "take.mid").symlink_to(tmp_path / "gone" / "take.mid")
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "-o", "take.mid")
    assert code == 0, err
    assert out.split() == ["take-2.mid"]
    assert os.readlink(tmp_path / "take.mid") == str(tmp_path / "gone" / "take.mid")
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "-o", "take.mid", "--force")
    assert code == 0, err  # --force replaces an earlier output (take-2.mid), never the link
    assert out.split() == ["take-2.mid"] and os.path.islink(tmp_path / "take.mid")


# --------------------------------------------------------- 5. a group lands whole or not at all


def test_a_full_disk_while_rendering_leaves_no_midi_without_its_audio_and_sidecar(tmp_path):
    run = muse("gen", "midi", "--engine", "etude", "--bars", "2", "--seed", "2", "--render", "-o", "take.mid",
               cwd=tmp_path, fsize=64 * 1024)  # the .mid and .json fit, the .wav does not
    assert run.returncode == 1
    assert "cannot write" in one_line_error(run.stderr) and "File too large" in run.stderr
    assert names(tmp_path) == []  # not the .mid alone, and no temporary either
    assert muse("gen", "midi", "--engine", "etude", "--bars", "2", "--seed", "2", "--render", "-o", "take.mid",
                cwd=tmp_path).returncode == 0
    assert names(tmp_path) == ["take.json", "take.mid", "take.wav"]


def test_a_batch_job_whose_render_cannot_be_written_leaves_none_of_its_files(tmp_path):
    (tmp_path / "jobs.jsonl").write_text(etude_line("heard", render=True, count=2) + "\n")
    run = muse("batch", "jobs.jsonl", "--out-dir", "out", "--json", cwd=tmp_path, fsize=64 * 1024)
    assert run.returncode == 1, run.stderr
    entry = json.loads(run.stdout)
    assert entry["status"] == "failed" and "File too large" in entry["error"] and entry["outputs"] == []
    assert names(tmp_path / "out") == sorted([B.LOCK, B.MANIFEST])  # no sample's .mid without the rest
    run = muse("batch", "jobs.jsonl", "--out-dir", "out", "-q", cwd=tmp_path)  # space freed: the job runs
    assert run.returncode == 0, run.stderr
    assert len([n for n in names(tmp_path / "out") if n.endswith((".mid", ".wav", ".json"))]) == 6


# --------------------------------------------------------------------- 6. a broken manifest


def test_a_manifest_that_is_a_folder_or_hand_edited_wrongly_is_one_line(tmp_path):
    (tmp_path / "jobs.jsonl").write_text(etude_line("a") + "\n")
    (tmp_path / "out" / B.MANIFEST).mkdir(parents=True)
    run = muse("batch", "jobs.jsonl", "--out-dir", "out", cwd=tmp_path)
    assert run.returncode == 2
    assert one_line_error(run.stderr) == f"error: {Path('out') / B.MANIFEST} is a folder, not a muse manifest"
    (tmp_path / "out" / B.MANIFEST).rmdir()
    for line, why in [({"hash": ["x"], "status": "ok"}, '"hash" must be a string, not list'),
                      ({"hash": "x", "status": "ok", "outputs": "a.mid"}, '"outputs" must be a list of file names'),
                      ({"hash": "x", "status": 1}, '"status" must be a string, not int')]:
        (tmp_path / "out" / B.MANIFEST).write_text(json.dumps(line) + "\n")
        run = muse("batch", "jobs.jsonl", "--out-dir", "out", cwd=tmp_path)
        assert run.returncode == 2, run.stderr
        assert one_line_error(run.stderr) == f"error: {Path('out') / B.MANIFEST} line 1: {why}"


def test_a_full_disk_while_recording_a_job_is_one_line_and_resume_still_works(tmp_path):
    limit = 256 * 1024
    out = tmp_path / "out"
    out.mkdir()
    (out / B.MANIFEST).write_text("#" * (limit - 100) + "\n")  # nearly full: the next line will not fit
    (tmp_path / "jobs.jsonl").write_text(etude_line("one") + "\n" + etude_line("two") + "\n")
    run = muse("batch", "jobs.jsonl", "--out-dir", "out", cwd=tmp_path, fsize=limit)
    assert run.returncode == 1
    assert one_line_error(run.stderr).startswith(f"error: cannot record job '1' in {Path('out') / B.MANIFEST}: File too large")
    assert [n for n in names(out) if not n.startswith("manifest")] == []  # its files went with it
    run = muse("batch", "jobs.jsonl", "--out-dir", "out", "-q", cwd=tmp_path)  # space freed
    assert run.returncode == 0, run.stderr
    entries = [json.loads(x) for x in (out / B.MANIFEST).read_text().splitlines() if x.startswith("{") and x.endswith("}")]
    assert sorted(e["line"] for e in entries if e["status"] == "ok") == [1, 2]
    assert [n for n in names(out) if not n.startswith("manifest")] == ["0001-one.json", "0001-one.mid",
                                                                      "0002-two.json", "0002-two.mid"]


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/proc/filesystems").read_text().count("tmpfs"), reason="mounting a tmpfs needs root")
def test_enospc_on_a_real_small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        run = muse("gen", "midi", "--engine", "etude", "--bars", "2", "--render", "-o", "take.mid", cwd=disk)
        assert run.returncode == 1
        assert "No space left on device" in one_line_error(run.stderr)
        assert names(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ------------------------------------------------------------------------ 7. deploy -q token


def test_deploy_quiet_json_keeps_the_new_api_token(run_cli, monkeypatch):
    """Modal itself is out of reach here: its two calls (look up a Secret, deploy) are replaced
    at the boundary; everything muse does around them runs."""
    pytest.importorskip("modal")
    import modal
    import modal.exception

    import remote.app as remote_app
    from muse_cli.backends import modal as modal_backend

    created = {}
    monkeypatch.setattr("muse_cli.backends.modal_credentials_present", lambda: True)
    monkeypatch.setattr(modal_backend, "reachable", lambda timeout=0: (True, "test"))

    class Missing:
        def hydrate(self):
            raise modal.exception.NotFoundError("no such secret")

    monkeypatch.setattr(modal.Secret, "from_name", staticmethod(lambda name, **kw: Missing()))
    monkeypatch.setattr(type(modal.Secret.objects), "create", lambda self, name, env, **kw: created.update({name: env}))
    monkeypatch.setattr(remote_app.app, "deploy", lambda **kw: None)
    code, out, err = run_cli("deploy", "-q", "--json")
    assert code == 0, err
    (name, env), = created.items()
    (key, token), = env.items()
    assert json.loads(out)["secrets_created"] == {name: f"{key}={token}"}
    assert token in err  # -q keeps it on stderr too: it is shown once and never again


# ----------------------------------------------------------------- 8. names keep the key


@pytest.mark.parametrize("key,stem", [("F#m", "etude-f-sharp-minor-beginner"), ("Bb", "etude-b-flat-major-beginner"),
                                      ("Eb minor", "etude-e-flat-minor-beginner")])
def test_generated_names_spell_sharps_and_flats(run_cli, tmp_path, key, stem):
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "--key", key)
    assert code == 0, err
    assert out.split() == [f"{stem}.mid"]


def test_prompt_and_batch_names_spell_sharps_and_flats(run_cli, tmp_path):
    code, out, err = run_cli("gen", "midi", "prelude in F# minor", "--engine", "etude", "--bars", "2")
    assert code == 0, err
    assert out.split() == ["prelude-in-f-sharp-minor.mid"]
    (tmp_path / "jobs.jsonl").write_text(etude_line("nocturne in Db", id="Bbm") + "\n"
                                         + json.dumps({"kind": "midi", "engine": "etude", "key": "C#m", "bars": 2}) + "\n")
    code, out, err = run_cli("batch", "jobs.jsonl", "--out-dir", "out")
    assert code == 0, err
    assert sorted(Path(p).name for p in out.split()) == ["0002-etude-c-sharp-minor-beginner.mid",
                                                         "b-flat-minor-nocturne-in-d-flat.mid"]


# --------------------------------------------------------- 9. devices and folders as -o


def test_a_device_or_pipe_as_output_is_refused(run_cli, tmp_path):
    os.mkfifo(tmp_path / "pipe.mid")
    try:
        for target, what in [("/dev/null", "a character device"), (str(tmp_path / "pipe.mid"), "a named pipe")]:
            code, out, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "-o", target)
            assert code == 2 and out == ""
            assert one_line_error(err) == f"error: -o/--output {target!r} is {what}: muse writes only regular files"
        assert names(tmp_path) == ["pipe.mid"]
    finally:
        for leftover in ("/dev/null.mid", "/dev/null.json"):  # what the bug wrote
            if os.path.isfile(leftover):
                os.unlink(leftover)
    code, _, err = run_cli("render", str(tmp_path / "none.mid"), "-o", "/dev/null")
    assert code == 2


def test_a_trailing_slash_makes_output_a_folder(run_cli, tmp_path):
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--bars", "2", "--key", "A minor", "-o", "newdir/")
    assert code == 0, err
    assert out.split() == ["newdir/etude-a-minor-beginner.mid"]
    assert not (tmp_path / "newdir.mid").exists()
    code, out, err = run_cli("render", str(tmp_path / "newdir" / "etude-a-minor-beginner.mid"), "-o", "renders/")
    assert code == 0, err
    assert out.split() == ["renders/etude-a-minor-beginner.wav"]

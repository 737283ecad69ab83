"""The CLI as a user meets it: streams, exit codes, files, sidecars, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest

HEAVY = ("modal", "torch", "jax", "transformers", "librosa", "onnxruntime", "vllm")


def test_help_imports_nothing_heavy():
    code = (
        "import sys, io, contextlib\n"
        "from muse_cli.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in (['--help'], ['gen', '--help'], ['gen', 'midi', '--help'], ['render', '--help'], ['doctor', '--help']):\n"
        "        run(argv)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "muse_cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("muse ")


def test_gen_midi_offline_writes_midi_and_sidecar(run_cli, tmp_path):
    code, out, err = run_cli("gen", "midi", "--difficulty", "beginner", "--seed", "5", "--key", "G")
    assert code == 0, err
    paths = [Path(line) for line in out.splitlines()]
    assert len(paths) == 1 and paths[0].suffix == ".mid" and paths[0].name == "etude-g-major-beginner.mid"
    pm = pretty_midi.PrettyMIDI(str(paths[0]))
    assert sum(len(i.notes) for i in pm.instruments) > 8
    meta = json.loads(paths[0].with_suffix(".json").read_text())
    assert meta["engine"] == "etude" and meta["seed"] == 5 and meta["backend"] == "local"
    assert meta["request"]["difficulty"] == "beginner" and meta["request"]["key"] == "G major"
    assert {"noteCount", "duration", "tempo", "key"} <= set(meta["metadata"])
    assert meta["metadata"]["key"] == "G major"
    assert "MIDI-LLM is not available locally" in err  # the fallback is announced on stderr


def test_same_seed_same_bytes_and_no_overwrite(run_cli, tmp_path):
    _, out1, _ = run_cli("gen", "midi", "--engine", "etude", "--seed", "9", "-q")
    _, out2, _ = run_cli("gen", "midi", "--engine", "etude", "--seed", "9", "-q")
    a, b = Path(out1.strip()), Path(out2.strip())
    assert a != b and b.stem.endswith("-2")
    assert a.read_bytes() == b.read_bytes()
    _, out3, _ = run_cli("gen", "midi", "--engine", "etude", "--seed", "9", "-q", "--force")
    assert Path(out3.strip()) == a


def test_json_mode_one_object_per_result(run_cli):
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "-n", "3", "--seed", "1", "--json", "--out-dir", "many")
    assert code == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 3 and len({o["seed"] for o in objs}) == 3
    for obj in objs:
        assert all(Path(p).exists() for p in obj["outputs"])
        assert obj["metadata"]["noteCount"] > 0


def test_many_samples_are_named_by_a_key_only_when_they_share_it(run_cli):
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "-n", "3", "--seed", "1", "--json")
    assert code == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    keys = {o["metadata"]["key"] for o in objs}
    assert len(keys) > 1  # seed 1 draws several keys: a name with one of them would mislead
    assert [Path(o["outputs"][0]).name for o in objs] == [f"etude-beginner-{i}.mid" for i in (1, 2, 3)]
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "-n", "2", "--seed", "1", "--key", "Eb", "-q")
    assert [Path(p).name for p in out.split()] == ["etude-e-flat-major-beginner-1.mid", "etude-e-flat-major-beginner-2.mid"]


def test_library_prints_never_reach_stdout(tmp_path):
    """pyfluidsynth prints to stdout at import when $CI is set; stdout must stay results only."""
    env = {**__import__("os").environ, "CI": "true"}
    code = (
        "import sys\n"
        "from muse_cli.cli import app, run\n"
        "@app.command('noisy')\n"
        "def noisy():\n"
        "    from muse_cli import ui\n"
        "    u = ui.set_current(ui.UI(json=True))\n"
        "    print('a library talking')\n"
        "    u.result(['x.mid'], {'ok': True})\n"
        "sys.exit(run(['noisy']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"ok": True, "outputs": ["x.mid"]}
    assert "a library talking" in proc.stderr
    real = subprocess.run([sys.executable, "-m", "muse_cli", "gen", "midi", "--engine", "etude", "--json", "-q"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert real.returncode == 0 and [json.loads(line) for line in real.stdout.splitlines()]


def test_quiet_prints_only_results(run_cli):
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "-q")
    assert code == 0 and err == "" and out.strip().endswith(".mid")


def test_output_option_names_the_file(run_cli, tmp_path):
    code, out, _ = run_cli("gen", "midi", "--engine", "etude", "-o", "sub/mine.mid", "-q")
    assert code == 0 and out.strip() == "sub/mine.mid"
    assert (tmp_path / "sub" / "mine.json").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--difficulty", "expert"], "--difficulty"),
        (["--key", "H#"], "--key"),
        (["--instrument", "kazoo-9000"], "--instrument"),
        (["--bars", "0"], "--bars"),
        (["--bars", "-4"], "--bars"),
        (["--tempo", "0"], "--tempo"),
        (["--tempo", "nan"], "--tempo"),
        (["--tempo", "1000"], "--tempo"),
        (["   "], "PROMPT: must not be empty"),
        (["--seed", "-1", "--engine", "etude"], "--seed"),
        (["--time-signature", "7/8"], "--time-signature"),
        (["--count", "0"], "--count"),
        (["--engine", "midi-llm"], "needs a prompt"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_cli, tmp_path, args, needle):
    code, out, err = run_cli("gen", "midi", *args)
    assert code == 2, err
    assert out == ""
    assert needle in err and len(err.strip().splitlines()) <= 2  # error line + hint line
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*.mid"))


def test_unwritable_output_path_exits_2(run_cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli("gen", "midi", "--engine", "etude", "--out-dir", "afile/sub")
    assert code == 2 and "output folder" in err


@pytest.mark.parametrize("args", [[], ["gen"]])
def test_no_command_shows_help_on_stderr_and_exits_2(run_cli, args):
    code, out, err = run_cli(*args)
    assert code == 2 and out == "" and err.startswith("Usage: muse") and "error:" not in err


def test_unknown_option_is_usage_error(run_cli):
    code, _, err = run_cli("gen", "midi", "--no-such-option")
    assert code == 2 and "No such option" in err and "muse gen midi --help" in err


def test_midi_llm_engine_never_falls_back(run_cli):
    code, _, err = run_cli("gen", "midi", "a waltz", "--engine", "midi-llm", "--backend", "local", "--model", "/nonexistent/model")
    assert code in (1, 2) and "etude" not in err


def test_doctor_json(run_cli):
    code, out, err = run_cli("doctor", "--json", "--timeout", "1")
    assert code == 0, err
    report = json.loads(out)
    assert report["modal"]["credentials"] is False
    assert report["backend_auto"] == "local"
    assert "torch" in report["runtimes"]


def test_doctor_human(run_cli):
    code, out, err = run_cli("doctor", "--timeout", "1")
    assert code == 0 and "modal credentials" in out and "capabilities" in out


def test_doctor_prints_extras_in_fixes_as_written(run_cli, monkeypatch):
    """A fix such as pip install 'muse-cli[analysis]' must not lose its [analysis] to rich markup."""
    from muse_cli.ops import diagnostics

    real = diagnostics.collect

    def collect(timeout):
        report = real(timeout=timeout)
        report["capabilities"][0].update(ready=False, missing=["librosa [x] is not installed"],
                                         fix="pip install 'muse-cli[analysis]'")
        return report

    monkeypatch.setattr(diagnostics, "collect", collect)
    code, out, _ = run_cli("doctor", "--timeout", "1")
    assert code == 0 and "pip install 'muse-cli[analysis]'" in out and "librosa [x] is not installed" in out


def test_doctor_report_goes_to_a_file(tmp_path):
    """`muse doctor > report.txt` writes the whole report; stderr stays empty."""
    report = tmp_path / "report.txt"
    # pyfluidsynth prints where it found its library whenever $CI is set (fluidsynth.py,
    # find_libfluidsynth's debug_print): CI's own chatter on stderr, not muse's, so CI is unset here.
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"HF_HUB_OFFLINE": "1"}
    with open(report, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "muse_cli", "doctor", "--timeout", "1"], stdout=handle,
                              stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    for line in ("torch", "transformers", "jax", "transcription model", "fluidsynth", "soundfonts", "acestep",
                 "cached models", "modal credentials", "muse app", "gen audio: MusicGen small (local)"):
        assert line in text, line
    assert done.stderr == ""


def test_doctor_json_names_the_command_for_each_capability(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MUSE_BASIC_PITCH_MODEL", str(tmp_path / "absent.onnx"))
    code, out, err = run_cli("doctor", "--json", "--timeout", "1")
    assert code == 0, err
    report = json.loads(out)
    rows = {row["capability"]: row for row in report["capabilities"]}
    assert rows["gen midi: etude composer"]["ready"] is True
    assert rows["analyze: note transcription"]["fix"] == "muse models pull transcription"
    assert report["transcription_model"] is None
    assert rows["--backend modal: every model on Modal GPUs"]["fix"] == "modal setup"
    assert all(row["ready"] or row["fix"] for row in rows.values())


@pytest.mark.parametrize("value", ["-1", "0", "1000"])
def test_doctor_refuses_a_timeout_out_of_range(run_cli, value):
    code, out, err = run_cli("doctor", "--timeout", value)
    assert code == 2 and "--timeout" in err and out == ""


def test_auto_falls_back_only_when_midi_llm_is_unavailable():
    from muse_cli.contracts import MidiRequest
    from muse_cli.kinds.midi import KIND
    from muse_cli.errors import RuntimeFailure, Unavailable

    class Remote:
        name = "modal"

        def __init__(self, error):
            self.error = error

        def run(self, family, request, **kw):
            raise self.error

    request = MidiRequest(prompt="a waltz", seed=1)
    outcome = KIND.run(request, Remote(Unavailable("the muse app is not deployed")))
    (notice,) = outcome.notices
    assert outcome.result.engine == "etude" and outcome.backend == "local" and "not deployed" in notice
    with pytest.raises(RuntimeFailure, match="CUDA error"):
        KIND.run(request, Remote(RuntimeFailure("CUDA error: device-side assert")))
    with pytest.raises(Unavailable):
        KIND.run(request.model_copy(update={"engine": "midi-llm"}), Remote(Unavailable("not deployed")))


def test_bare_gen_midi_composes_with_the_etude_composer_and_says_so(run_cli, tmp_path):
    code, out, err = run_cli("gen", "midi", "--backend", "local")
    assert code == 0, err
    assert "built-in etude composer" in err
    assert out.strip().endswith(".mid") and (tmp_path / out.strip()).is_file()


_HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {hidden!r}:
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
from muse_cli.cli import main
main(sys.argv[1:])
"""


def _muse_without(hidden: set[str], *args: str, cwd) -> subprocess.CompletedProcess:
    """The real CLI in a process where `hidden` packages cannot be imported (as on a fresh machine)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", MUSE_BACKEND="local")
    return subprocess.run([sys.executable, "-c", _HIDE.format(hidden=hidden), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_gen_audio_lists_every_setup_gap_at_once(tmp_path):
    done = _muse_without({"torch", "transformers"}, "gen", "audio", "jazz", "-d", "1", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    error, hint = done.stderr.strip().splitlines()[-2:]
    for gap in ("torch is not installed", "transformers is not installed", "facebook/musicgen-small is not downloaded"):
        assert gap in error
    assert "pip install torch && pip install 'muse-cli[torch]' && muse models pull small" in hint
    assert "--backend modal" in hint
    assert list(tmp_path.iterdir()) == []


def test_gen_song_names_the_llm_and_acestep_in_one_go(tmp_path):
    done = _muse_without({"acestep"}, "gen", "song", "summer synth-pop", "-d", "5", cwd=tmp_path)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-2]
    assert "Qwen/Qwen2.5-7B-Instruct is not downloaded" in error and "ACE-Step is not installed" in error
    assert "ACE-Step/ACE-Step-v1-3.5B is not downloaded" in error


def _complete(words: str, cword: int) -> list[str]:
    env = dict(os.environ, _MUSE_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
    done = subprocess.run([sys.executable, "-m", "muse_cli"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion_completes_commands_and_options():
    assert _complete("muse ge", 1) == ["gen"]
    assert set(_complete("muse models ", 2)) >= {"pull", "list", "rm", "upload"}
    assert "--onset-threshold" in _complete("muse analyze --onset", 2)


def test_show_completion_prints_a_script_for_the_shell():
    done = subprocess.run([sys.executable, "-m", "muse_cli", "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "_MUSE_COMPLETE" in done.stdout and "complete " in done.stdout


def test_help_reads_like_a_person_wrote_it():
    import re

    for argv in (["analyze", "--help"], ["render", "--help"], ["gen", "midi", "--help"], ["serve", "--help"],
                 ["batch", "--help"], ["models", "rm", "--help"], ["gen", "song", "--help"], ["gen", "audio", "--help"]):
        done = subprocess.run([sys.executable, "-m", "muse_cli", *argv], capture_output=True, text=True, timeout=60)
        text = done.stdout + done.stderr
        assert not re.search(r"<(str|int|float|path|list\[[^\]]*\]|int range|float range)>", text, re.I), (argv, text)
        assert "{" not in text.split("Options:")[0], argv  # no {ARGUMENT}... in the usage line
    done = subprocess.run([sys.executable, "-m", "muse_cli", "--help"], capture_output=True, text=True, timeout=60)
    listed = [line.split()[0] for line in done.stdout.split("Commands:")[1].strip().splitlines()]
    assert listed == ["gen", "analyze", "render", "batch", "models", "doctor", "deploy", "serve"]
    epilog = subprocess.run([sys.executable, "-m", "muse_cli", "batch", "--help"], capture_output=True, text=True).stdout
    assert "\n  Exit codes: 0 all ok" in epilog  # its own line, not wrapped into the one before


def test_etude_sidecar_records_the_composer_not_midi_llm(run_cli, tmp_path):
    code, out, err = run_cli("gen", "midi", "--backend", "local", "--seed", "2")
    assert code == 0, err
    record = json.loads((tmp_path / out.strip()).with_suffix(".json").read_text())
    assert record["engine"] == "etude" and record["request"]["engine"] == "etude"
    assert record["request"]["model"] == record["model"] == "etude-1"
    assert record["requested"] == {"engine": "auto", "model": "slseanwu/MIDI-LLM_Llama-3.2-1B"}
    code, out, err = run_cli("gen", "midi", "--engine", "etude", "--seed", "2", "-o", "plain.mid")
    record = json.loads((tmp_path / "plain.json").read_text())
    assert record["request"]["model"] == "etude-1" and "requested" not in record


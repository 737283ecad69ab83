import pytest

from muse_cli.backends import choose, modal_credentials_present
from muse_cli.errors import InputError, RuntimeFailure


def test_auto_is_local_without_credentials():
    assert not modal_credentials_present()
    assert choose("auto") == "local"


def test_auto_is_modal_with_env_tokens(monkeypatch):
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-x")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-y")
    assert choose(None) == "modal"


def test_auto_reads_modal_toml(monkeypatch, tmp_path):
    config = tmp_path / ".modal.toml"
    config.write_text('[default]\ntoken_id = "ak-1"\ntoken_secret = "as-2"\nactive = true\n')
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(config))
    assert choose("auto") == "modal"


def test_env_backend_and_bad_name(monkeypatch):
    monkeypatch.setenv("MUSE_BACKEND", "local")
    assert choose(None) == "local"
    with pytest.raises(InputError, match="unknown backend"):
        choose("cloud")


def test_modal_backend_fails_fast_without_credentials():
    from muse_cli.backends.modal import ModalBackend

    with pytest.raises(RuntimeFailure, match="no Modal credentials") as info:
        ModalBackend().check()
    assert "modal setup" in info.value.hint


def test_modal_backend_fails_fast_when_unreachable(monkeypatch):
    import time

    from muse_cli.backends.modal import ModalBackend

    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-x")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-y")
    monkeypatch.setenv("MODAL_SERVER_URL", "http://127.0.0.1:9")  # discard port: refused at once
    start = time.monotonic()
    with pytest.raises(RuntimeFailure, match="cannot reach Modal"):
        ModalBackend().check()
    assert time.monotonic() - start < 10


def test_unpack_translates_protocol_replies():
    from muse_cli.backends.modal import unpack
    from muse_cli.contracts import PROTOCOL_VERSION, MidiResult

    with pytest.raises(RuntimeFailure, match="run muse deploy|needs"):
        unpack({"protocol": PROTOCOL_VERSION + 1, "result": {}}, MidiResult)
    with pytest.raises(InputError, match="bad duration"):
        unpack({"protocol": PROTOCOL_VERSION, "error": {"type": "input", "message": "bad duration"}}, MidiResult)
    with pytest.raises(RuntimeFailure, match="out of memory"):
        unpack({"protocol": PROTOCOL_VERSION, "error": {"type": "oom", "message": "CUDA"}}, MidiResult)


def test_gpu_per_model_from_the_catalog_with_environment_overrides(monkeypatch):
    from muse_cli.ops.catalog import gpu_for

    assert gpu_for("musicgen", "small") == "A10G"
    assert gpu_for("musicgen", "large") == "L40S"
    assert gpu_for("musicgen-mbd", "large") == "L40S"
    assert gpu_for("musicgen", "someone/musicgen-large-finetune") == "L40S"
    assert gpu_for("etude", "etude") is None
    monkeypatch.setenv("MUSE_GPU_MUSICGEN", "A100-80GB")
    assert gpu_for("musicgen", "small") == "A100-80GB"
    monkeypatch.setenv("MUSE_GPU_LARGE", "H100")
    assert gpu_for("musicgen", "large") == "H100"  # the model's own override beats the family's
    assert gpu_for("midi-llm", "midi-llm") == "L4"

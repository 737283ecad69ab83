"""The deployment as data, offline: every class, image, volume and GPU; the client's version check.

Imports every module under remote/ with no Modal credentials and no network, the way
`muse deploy --dry-run` does. scripts/check_images.py (`muse deploy --check`) does the part that
needs the package index; here only its parsing is tested, and the real resolution runs when
MUSE_CHECK_IMAGES=1.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import socket

import pytest

PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,-]+\])?==[0-9][A-Za-z0-9.+!-]*$")
GIT_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]* @ git\+https://\S+@[0-9a-f]{40}$")
WEIGHTS = "muse-weights:/weights"


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def deployment(offline):
    import remote
    import remote.app
    from remote.images import IMAGES
    from remote.plan import SERVICES

    for info in pkgutil.iter_modules(remote.__path__):
        importlib.import_module(f"remote.{info.name}")
    return SERVICES, IMAGES


def test_every_remote_module_imports_without_credentials(deployment):
    assert not os.environ.get("MODAL_TOKEN_ID")
    services, images = deployment
    assert {"version", "MusicGen", "MusicGenMBD", "MidiLLM", "PianoModel", "AceStep", "LyricsLLM", "CoverArt"} <= set(services)
    assert {s.image for s in services.values()} <= set(images)


def test_every_gpu_family_has_a_class_with_the_catalog_gpu(deployment):
    from muse_cli.backends.registry import FAMILIES
    from muse_cli.ops.catalog import gpu_for

    services, _ = deployment
    for fam in FAMILIES.values():
        if not fam.needs_gpu:
            continue
        assert fam.modal_class in services, f"family {fam.name} has no deployed class {fam.modal_class}"
        svc = services[fam.modal_class]
        assert svc.kind == "class" and svc.gpu, f"{svc.name} needs a GPU"
        expected = gpu_for(fam.name, fam.default_model)
        assert expected is None or svc.gpu == expected, f"{svc.name}: {svc.gpu} != catalog {expected}"


def test_every_image_pins_exact_versions(deployment):
    _, images = deployment
    for spec in images.values():
        assert spec.every_pin, spec.name
        for pin in spec.every_pin:
            assert PIN.match(pin) or GIT_PIN.match(pin), f"image {spec.name}: {pin!r} is not pinned exactly"
            if GIT_PIN.match(pin):
                assert "git" in spec.apt, f"image {spec.name} installs from git without git installed"
        names = [p.split("==")[0].split("[")[0].split(" @ ")[0].lower().replace("_", "-") for p in spec.every_pin]
        assert len(names) == len(set(names)), f"image {spec.name} pins a package twice: {sorted(names)}"
        for command in spec.commands:
            assert "pip install" not in command, f"image {spec.name}: declare pip installs as data, not {command!r}"


def test_hf_transfer_switch_only_with_the_package(deployment):
    _, images = deployment
    for spec in images.values():
        env = dict(spec.env)
        has = any("hf_transfer" in p.replace("-", "_") for p in spec.every_pin)
        assert (env.get("HF_HUB_ENABLE_HF_TRANSFER") == "1") == has, spec.name
        assert env["HF_HUB_CACHE"].startswith("/weights/"), spec.name


def test_weight_loaders_mount_the_weights_volume(deployment):
    services, _ = deployment
    for svc in services.values():
        if svc.kind == "class":
            assert svc.loads_weights, f"{svc.name}: every model class loads weights"
        if svc.loads_weights:
            assert WEIGHTS in svc.volumes, f"{svc.name} loads weights but does not mount {WEIGHTS}"
        assert svc.timeout > 0


def test_image_helper_rejects_ambiguous_core_pins(monkeypatch, offline):
    from remote import images

    monkeypatch.setattr(images, "IMAGES", {})
    with pytest.raises(ValueError, match="replace"):
        images.image("clash", "numpy==1.26.4")
    images.image("swap", "torch==2.1.0", replace=("numpy==1.26.4",), no_deps=("audiocraft==1.3.0",))
    spec = images.IMAGES["swap"]
    assert "numpy==1.26.4" in spec.all_packages and "numpy==2.2.6" not in spec.all_packages
    assert spec.every_pin[-1] == "audiocraft==1.3.0" and "audiocraft==1.3.0" not in spec.all_packages
    with pytest.raises(ValueError, match="twice"):
        images.image("swap", "torch==2.1.0")


def test_dry_run_json_lists_every_class_and_function(deployment, run_cli):
    services, images = deployment
    code, out, err = run_cli("deploy", "--dry-run", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["app"] == "muse"
    entries = {e["name"]: e for e in data["entries"]}
    assert set(entries) == set(services)
    for name, svc in services.items():
        e = entries[name]
        for key in ("gpu", "timeout", "scaledown_window", "volumes", "secrets", "memory_snapshot", "image"):
            assert key in e, (name, key)
        assert e["gpu"] == svc.gpu and e["image"] == svc.image
        assert e["packages"] == list(images[svc.image].every_pin)
    assert any(e["git"] for e in entries.values()), "ACE-Step comes from git at a pinned commit"


def test_dry_run_table_for_people(deployment, run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    code, out, err = run_cli("deploy", "--dry-run")
    assert code == 0, err
    assert out == ""
    for name in ("MusicGen", "MidiLLM", "AceStep", "musicgen-mbd"):
        assert name in err


def test_deploy_without_credentials_says_modal_setup(run_cli):
    code, _, err = run_cli("deploy")
    assert code == 1
    assert "modal setup" in err and "Traceback" not in err


# ------------------------------------------------------------------ client vs deployed version


@pytest.fixture
def backend(monkeypatch, deployment):
    import remote.app as remote_app
    from muse_cli.backends import modal as modal_backend

    monkeypatch.setattr("muse_cli.backends.modal_credentials_present", lambda: True)
    monkeypatch.setattr(modal_backend, "reachable", lambda timeout=0: (True, "test"))
    # The deployed `version` function, run in-process through Modal's own .local().
    monkeypatch.setattr(modal_backend.ModalBackend, "app_info", lambda self: remote_app.version.local())
    return modal_backend.ModalBackend()


def test_client_accepts_an_app_at_its_protocol(backend):
    backend.check()
    assert backend._checked


def test_client_refuses_an_older_app_and_says_run_muse_deploy(backend, monkeypatch):
    from muse_cli import contracts
    from muse_cli.errors import RuntimeFailure

    monkeypatch.setattr(contracts, "PROTOCOL_VERSION", contracts.PROTOCOL_VERSION - 1)  # what the old app reports
    with pytest.raises(RuntimeFailure) as caught:
        backend.check()
    assert "run muse deploy" in (caught.value.hint or "")
    assert "protocol" in caught.value.message


def test_reply_from_another_protocol_is_refused():
    from muse_cli.backends.modal import unpack
    from muse_cli.contracts import PROTOCOL_VERSION, AudioResult
    from muse_cli.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure, match="protocol") as caught:
        unpack({"protocol": PROTOCOL_VERSION + 1, "result": {}}, AudioResult)
    assert caught.value.hint == "run muse deploy"


# ------------------------------------------------------------------ image check (parsing offline)


def test_git_commit_pin_detection():
    from muse_cli.ops.deploy_check import git_commit

    sha = "d612523f50e252c0e138e68ae75b06223f96e934"
    assert git_commit(f"ace-step @ git+https://github.com/ace-step/ACE-Step.git@{sha}") == sha
    assert git_commit("ace-step @ git+https://github.com/ace-step/ACE-Step.git@main") is None
    assert git_commit("ace-step @ git+https://github.com/ace-step/ACE-Step.git") is None


def test_conflict_lines_keep_pips_explanation():
    from muse_cli.ops.deploy_check import _conflict_lines

    stderr = """ERROR: Cannot install huggingface_hub==0.36.0 and transformers==5.23.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested huggingface_hub==0.36.0
    transformers 5.23.0 depends on huggingface-hub<2.0,>=1.3.0

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip to attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""
    lines = _conflict_lines(stderr)
    assert any("transformers 5.23.0 depends on" in line for line in lines)
    assert not any("loosen" in line or "pip.pypa.io" in line for line in lines)


def test_unmet_declared_requirements_of_no_deps_packages():
    from muse_cli.ops.deploy_check import _unmet

    unmet = _unmet(["torch==2.1.0", "av==11.0.0", "numpy", "xformers<0.0.23", "pywin32; sys_platform == 'win32'"],
                   {"torch": "2.1.0", "av": "12.3.0", "numpy": "1.26.4", "xformers": "0.0.22.post7"})
    assert unmet == ["av==11.0.0 (image has 12.3.0)"]


def test_report_fails_on_conflicts_compilers_and_unpinned_git():
    from muse_cli.ops.deploy_check import ImageReport

    good = ImageReport("x", "3.11", 1, resolved={"numpy": "2.2.6"})
    assert good.ok
    assert not ImageReport("x", "3.11", 1, resolved={"a": "1"}, conflicts=["boom"]).ok
    assert not ImageReport("x", "3.11", 1, resolved={"a": "1"}, built=[{"requirement": "av==11", "wheel": "", "kind": "needs a compiler"}]).ok
    assert ImageReport("x", "3.11", 1, resolved={"a": "1"}, built=[{"requirement": "p==1", "wheel": "p-1-py3-none-any.whl", "kind": "pure Python"}]).ok
    assert not ImageReport("x", "3.11", 1, resolved={"a": "1"}, git=[{"requirement": "g", "commit": None, "pinned": False}]).ok
    assert not ImageReport("x", "3.11", 1).ok


@pytest.mark.skipif(os.environ.get("MUSE_CHECK_IMAGES") != "1", reason="needs PyPI: set MUSE_CHECK_IMAGES=1")
def test_core_image_resolves_against_pypi():
    import remote.app  # noqa: F401
    from muse_cli.ops.deploy_check import check_image
    from remote.images import IMAGES

    report = check_image(IMAGES["core"])
    assert report.ok, report.conflicts or report.built
    assert report.resolved["numpy"] == "2.2.6"


def test_deploy_check_cli_reports_every_image_and_fails_on_one(deployment, run_cli, monkeypatch):
    from muse_cli.ops import deploy_check

    def fake(spec):
        report = deploy_check.ImageReport(spec.name, spec.python, len(spec.every_pin), resolved={"numpy": "2.2.6"})
        if spec.name == "musicgen":
            report.conflicts = ["transformers 5.23.0 depends on huggingface-hub>=1.0"]
        return report

    monkeypatch.setattr(deploy_check, "check_image", fake)
    _, images = deployment
    code, out, err = run_cli("deploy", "--check", "--json")
    assert code == 1 and "musicgen" in err and "Traceback" not in err
    data = json.loads(out)
    assert [r["image"] for r in data["images"]] == list(images)
    assert not data["ok"] and [r["image"] for r in data["images"] if not r["ok"]] == ["musicgen"]
    code, out, err = run_cli("deploy", "--check", "--image", "core")
    assert code == 0 and out == ""
    code, _, err = run_cli("deploy", "--check", "--image", "nope")
    assert code == 2 and "unknown image" in err


_IMPORT_LIKE_MODAL_CLI = """
import sys
from modal.cli.import_refs import import_app_from_ref, parse_import_ref

app = import_app_from_ref(parse_import_ref(sys.argv[1], use_module_mode=sys.argv[2] == "1"), base_cmd="modal deploy")
print(app.name, " ".join(sorted(app.registered_functions)))
"""


@pytest.mark.parametrize("ref, module_mode", [("remote/app.py", "0"), ("remote.app", "1")])
def test_modal_cli_imports_the_app_both_documented_ways(ref, module_mode):
    """`modal deploy remote/app.py` (file mode: the file becomes top-level module `app`) and
    `modal deploy -m remote.app`, imported by Modal's own CLI import function in a fresh interpreter."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    done = subprocess.run([sys.executable, "-c", _IMPORT_LIKE_MODAL_CLI, ref, module_mode], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    name, *functions = done.stdout.split()
    assert name == "muse"
    assert {"version", "web", "PianoModel.*", "MusicGen.*", "MidiLLM.*", "AceStep.*"} <= set(functions)


def test_deploy_reports_the_dashboard_url_modal_gives(deployment, monkeypatch):
    """After App.deploy() modal 1.6 knows the app id and App.get_dashboard_url() gives the link.

    Only the network part of App.deploy is replaced: it ends by storing the app id on the App
    (modal/app.py, `App.deploy`), which is what the stand-in does.
    """
    import modal
    import modal._utils.async_utils as modal_async

    from muse_cli.ops import deploy as deploy_mod

    def deploy(self, *, name=None, **kwargs):
        monkeypatch.setattr(modal_async.synchronizer._translate_in(self), "_app_id", "ap-0123456789abcdefghijkl")
        return self

    monkeypatch.setattr("muse_cli.backends.modal.require_modal", lambda **kwargs: None)
    monkeypatch.setattr(deploy_mod, "ensure_secrets", dict)
    monkeypatch.setattr(modal.App, "deploy", deploy)
    assert deploy_mod.deploy_app() == "https://modal.com/id/ap-0123456789abcdefghijkl"

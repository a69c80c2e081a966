"""The README's quick start stays runnable: every `python build.py` command in it runs here in a form
that needs no GPU, registry or RunPod account (as written, or `--help`, or `--dry-run`), after the
`export`s the quick start itself makes, and none prints a warning or a traceback."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_START = README.index("## Quick start")
QUICK_START = README[_START : README.index("\n## ", _START + 1)]
BASH_LINES = [
    line.split("#", 1)[0].strip()
    for block in re.findall(r"```bash\n(.*?)```", QUICK_START, re.S)
    for line in block.splitlines()
]
COMMANDS = [line for line in BASH_LINES if line.startswith("python build.py")]
# What the quick start exports, less the secret it asks the user to fill in.
EXPORTS = dict(
    line.removeprefix("export ").split("=", 1)
    for line in BASH_LINES
    if line.startswith("export ") and not line.endswith("=...")
)
# Verbs that need Docker, a GPU or an API key run as `--help` here; the rest run as written. `build` and
# `push` also run as written in-process, with the Docker engine and the model hub stood in (below).
NEEDS_OUTSIDE = {"build", "push", "test"}
IN_PROCESS = [c for c in COMMANDS if shlex.split(c)[2] in ("build", "push")]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _env(tmp_path: Path, with_exports: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "FASTDEPLOY_RUNPOD_REGISTRY")}
    env["HOME"] = str(tmp_path)  # no ~/.runpod/config.toml, no docker config of this machine
    if with_exports:
        env.update(EXPORTS)
    return env


def _runnable_form(command: str, tmp_path: Path) -> list[str]:
    argv = shlex.split(command)[1:]  # drop "python"
    verb = argv[1]
    if verb in NEEDS_OUTSIDE or (verb == "deploy" and "--dry-run" not in argv):
        return [argv[0], verb, "--help"]
    if verb == "render":
        return [*argv, "--out", str(tmp_path / "render")]
    return argv


def test_the_quick_start_names_the_whole_path():
    verbs = [shlex.split(c)[2] for c in COMMANDS]
    for verb in ("list", "render", "build", "test", "push", "deploy"):
        assert verb in verbs, f"the quick start has no `python build.py {verb}` step"
    assert any("--dry-run" in c for c in COMMANDS)
    assert "FASTDEPLOY_RUNPOD_REGISTRY" in EXPORTS, "the quick start chooses a registry"
    assert (ROOT / "requirements.txt").exists() and "pip install -r requirements.txt" in QUICK_START


@pytest.mark.parametrize("command", COMMANDS)
def test_each_quick_start_command_runs_without_warning(command: str, tmp_path: Path):
    result = _run(_runnable_form(command, tmp_path), _env(tmp_path))
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert not re.search(r"(?im)^\s*warning\b", output), f"{command} warned:\n{output}"


def test_the_output_the_quick_start_shows_is_what_list_and_render_print(tmp_path: Path):
    """The shown `list` header and rows (up to their GPU column) and the `render` line are real."""
    shown = QUICK_START[QUICK_START.index("python build.py list") :]
    shown = re.search(r"```\n\n(?:<!--[^\n]*-->\n)?```\n(.*?)```", shown, re.S).group(1).splitlines()
    listed = _run(["build.py", "list"], _env(tmp_path)).stdout.splitlines()
    assert shown[0] == listed[0]
    for line in shown[1:]:
        if line.startswith("rendered "):
            rendered = _run(_runnable_form("python build.py render ernie-0.3b", tmp_path), _env(tmp_path))
            real = rendered.stdout.strip().splitlines()[-1]
            assert line == real.replace(str(tmp_path / "render"), "build/ernie-0.3b"), (line, real)
        elif line != "...":
            name = line.split(" ", 1)[0]
            row = next(r for r in listed if r.split(" ", 1)[0] == name)
            assert row.startswith(line.removesuffix("...")), (line, row)


def test_deploy_dry_run_without_a_chosen_repository_says_how_to_choose_one(tmp_path: Path):
    result = _run(["build.py", "deploy", "ernie-0.3b", "--dry-run"], _env(tmp_path, with_exports=False))
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "Traceback" not in message
    for way in ("--registry", "image.repository", "FASTDEPLOY_RUNPOD_REGISTRY"):
        assert way in message, f"the refusal does not name {way}:\n{message}"


def test_the_python_snippets_compile():
    for block in re.findall(r"```python\n(.*?)```", README, re.S):
        compile(block, "README.md", "exec")


@pytest.mark.parametrize("command", IN_PROCESS)
def test_build_and_push_run_as_written_with_docker_and_the_hub_stood_in(
    command: str, tmp_path: Path, monkeypatch, capsys
):
    """What the builder itself prints on the quick start's build and push: the engine's build and push
    are recorded instead of run (no FastDeploy base image here) and the hub is a local fake."""
    from builder.cli import main
    from builder.image import docker
    from tests.builder.fake_hub import FakeHub

    hub = FakeHub(every_main=True)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    for key in ("HF_TOKEN", "FASTDEPLOY_RUNPOD_REGISTRY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in EXPORTS.items():
        monkeypatch.setenv(key, value)
    built: list[list[str]] = []
    monkeypatch.setattr(
        docker, "build_image", lambda context, *, tags, out, **kw: built.append(list(tags)) or "sha256:1"
    )
    monkeypatch.setattr(docker, "push_image", lambda tags, *, out: {t: "sha256:" + "0" * 64 for t in tags})
    try:
        code = main([*shlex.split(command)[2:], "--out", str(tmp_path / "build")])
    finally:
        hub.stop()
    out, err = capsys.readouterr()
    assert code == 0, f"{command}\n{out}\n{err}"
    assert err == "", f"{command} printed on stderr:\n{err}"
    assert "Traceback" not in out and not re.search(r"(?im)^\s*warning\b", out), out
    assert built and built[0][0].startswith(EXPORTS["FASTDEPLOY_RUNPOD_REGISTRY"] + "/")
    assert "baking baidu/ERNIE-4.5-0.3B-Paddle at main = " in out

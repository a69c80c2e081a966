"""`python build.py` as a subprocess: the entry point, the default build directory, an exit status and
stderr as a shell sees them (everything else runs in-process: test_cli.py, test_commands.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.builder.helpers import ROOT, run_cli


def test_default_out_is_build_dir(cli, tmp_path):
    # A copy of the repository's entry points: default output goes to <repo>/build/NAME.
    repo = tmp_path / "repo"
    for part in ("builder", "templates", "variants", "worker_runtime"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "build.py", repo / "build.py")

    result = subprocess.run(
        [sys.executable, "build.py", "--variant", "ernie-0.3b", "--render-only"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (repo / "build" / "ernie-0.3b" / "Dockerfile").is_file()


def test_render_through_the_entry_point(tmp_path):
    result = run_cli("--variant", "ernie-0.3b", "--render-only", "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rendered ernie-0.3b into ")
    assert result.stderr == ""  # the first command of the quick start prints no warning
    again = run_cli("render", "ernie-0.3b", "--out", str(tmp_path / "a"))
    assert again.returncode == 0 and "(0 changed)" not in again.stdout and " 0 changed)" in again.stdout


def test_errors_exit_2_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    result = run_cli("render", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "title: is required" in result.stderr and "error(s); nothing was written" in result.stderr
    usage = run_cli("--list", "--schema")
    assert usage.returncode == 2 and "not allowed with argument --list" in usage.stderr

"""Shared helpers for the builder tests: run the CLI as a subprocess, write variant files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The smallest valid variant (format with name=...); tests append the keys they exercise.
MINIMAL_VARIANT = """\
# yaml-language-server: $schema=./variant.schema.json
extends: _base
name: {name}
title: Test variant
description: A variant written by a test.
model:
  id: baidu/ERNIE-4.5-0.3B-Paddle
"""


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "build.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def write_variant(tmp_path):
    """Write a variant file (dedented YAML text) into a temp variants folder with a copy of the base."""
    folder = tmp_path / "variants"
    folder.mkdir()
    (folder / "_base.yaml").write_bytes((ROOT / "variants" / "_base.yaml").read_bytes())

    def write(name: str, text: str) -> Path:
        path = folder / f"{name}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write

"""Constants and helpers the builder tests import (`from tests.builder.helpers import ...`); the fixtures
are in conftest.py."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python build.py ARGS` as a subprocess (smoke tests of the entry point)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "build.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


# The least a model folder given to --weights-from holds (builder.image.weights_folder).
MODEL_FOLDER = {"config.json": b"{}", "model.safetensors": b"w", "tokenizer.model": b"t"}


def model_folder(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """A folder holding MODEL_FOLDER's files and `files` (relative path -> bytes)."""
    for name, body in {**MODEL_FOLDER, **(files or {})}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(body)
    return path

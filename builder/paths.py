"""Where the builder finds its inputs inside the repository."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS_DIR = ROOT / "variants"
TEMPLATES_DIR = ROOT / "templates"
RUNTIME_DIR = ROOT / "worker_runtime"
COMPAT_DIR = Path(__file__).resolve().parent / "compat"
ENGINE_FLAGS = RUNTIME_DIR / "engine_flags.json"
SCHEMA_FILE = VARIANTS_DIR / "variant.schema.json"
BUILD_DIR = ROOT / "build"


def display(path: Path) -> str:
    """A path as the user should read it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

"""Where the builder finds its inputs: beside the package in a checkout, inside it when installed.

A checkout (the repository, or `pip install -e .`) has templates/, variants/ and worker_runtime/ beside
builder/; `pip install .` puts templates/ and variants/ inside the builder package (package data) and
worker_runtime beside it, and renders into ./build of the working directory.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
CHECKOUT = (ROOT / "build.py").is_file() and (ROOT / "templates").is_dir()
DATA_DIR = ROOT if CHECKOUT else PACKAGE_DIR
VARIANTS_DIR = DATA_DIR / "variants"
TEMPLATES_DIR = DATA_DIR / "templates"
RUNTIME_DIR = ROOT / "worker_runtime"
COMPAT_DIR = PACKAGE_DIR / "compat"
ENGINE_FLAGS = RUNTIME_DIR / "engine_flags.json"
SCHEMA_FILE = VARIANTS_DIR / "variant.schema.json"
BUILD_DIR = ROOT / "build" if CHECKOUT else Path.cwd() / "build"


def display(path: Path) -> str:
    """A path as the user should read it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

"""Where the builder finds its inputs: beside the package in a checkout, inside it when installed.

A checkout (the repository, or `pip install -e .`) has templates/, variants/, docs/ and worker_runtime/
beside builder/; `pip install .` puts templates/, variants/ and the generated reference pages of docs/
inside the builder package (package data) and worker_runtime beside it, and renders into ./build of the
working directory. Either reads ./variants of the working directory first when there is one.
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
ENGINE_FLAGS = RUNTIME_DIR / "config" / "engine_flags.json"
SCHEMA_FILE = VARIANTS_DIR / "variant.schema.json"
BUILD_DIR = ROOT / "build" if CHECKOUT else Path.cwd() / "build"
# The generated reference pages (docs/settings.md, docs/variant-reference.md): installed as package data.
DOCS_DIR = DATA_DIR / "docs"
LOCAL_VARIANTS = Path("variants")


def default_variants_dir() -> Path:
    """./variants when the working directory has one (the user's own files win), else the shipped ones."""
    return LOCAL_VARIANTS if LOCAL_VARIANTS.is_dir() else VARIANTS_DIR


def reference_page(name: str) -> str:
    """Where a generated reference page is to be read: docs/NAME in a checkout, its installed copy else."""
    return f"docs/{name}" if CHECKOUT else str(DOCS_DIR / name)


def display(path: Path) -> str:
    """A path as the user should read it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

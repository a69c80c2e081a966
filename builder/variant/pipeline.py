"""One variant file from disk to a resolved variant: load (extends) -> parse -> checks -> resolve.
All errors of a file (schema and semantic) are collected before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.compat import Compat, load_compat
from builder.errors import ErrorList, UsageError, did_you_mean
from builder.paths import VARIANTS_DIR, display
from builder.variant.checks import run_checks
from builder.variant.loader import Loaded, load_variant, variant_files
from builder.variant.models import Variant
from builder.variant.parse import parse
from builder.variant.resolve import Resolved, resolve


@dataclass(frozen=True)
class Prepared:
    path: Path
    loaded: Loaded
    variant: Variant
    resolved: Resolved


def prepare(path: Path, compat: Compat | None = None) -> Prepared:
    compat = compat or load_compat()
    loaded = load_variant(path)
    errors = ErrorList()
    parsed = parse(loaded, errors)
    if parsed.variant is not None:
        run_checks(parsed.variant, loaded, compat, errors, parsed.dropped)
    errors.raise_if_any()
    variant = parsed.variant
    assert variant is not None
    return Prepared(path=loaded.path, loaded=loaded, variant=variant, resolved=resolve(variant, compat))


def find_variant(ref: str, variants_dir: Path = VARIANTS_DIR) -> Path:
    """A variant name (file in the variants folder) or a path to a YAML file; else UsageError."""
    as_path = Path(ref)
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        if not as_path.is_file():
            raise UsageError(f"--variant {ref}: no such file")
        return as_path
    candidate = variants_dir / f"{ref}.yaml"
    if candidate.is_file():
        return candidate
    names = [p.stem for p in variant_files(variants_dir)] if variants_dir.is_dir() else []
    suggestion = did_you_mean(ref, names)
    raise UsageError(
        f"--variant {ref}: no such variant in {display(variants_dir)}"
        + (f" (did you mean {suggestion!r}?)" if suggestion else "")
        + (f"; variants: {', '.join(names)}" if names else "")
    )


__all__ = ["Prepared", "find_variant", "prepare"]

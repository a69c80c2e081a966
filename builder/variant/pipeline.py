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
    """A variant name (file in the variants folder) or a path to a YAML file; else UsageError, with a
    did-you-mean for a misspelt name or path and a word on base files (`_*.yaml`)."""
    as_path = Path(ref)
    names = [p.stem for p in variant_files(variants_dir)] if variants_dir.is_dir() else []
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        if as_path.is_file():
            _refuse_base(as_path, names)
            return as_path
        raise UsageError(f"--variant {ref}: no such file" + _file_hint(as_path, variants_dir, names))
    candidate = variants_dir / f"{ref}.yaml"
    if candidate.is_file():
        _refuse_base(candidate, names)
        return candidate
    suggestion = did_you_mean(ref, names)
    raise UsageError(
        f"--variant {ref}: no such variant in {display(variants_dir)}"
        + (f" (did you mean {suggestion!r}?)" if suggestion else "")
        + (f"; variants: {', '.join(names)}" if names else "")
    )


def _refuse_base(path: Path, names: list[str]) -> None:
    if path.name.startswith("_"):
        raise UsageError(
            f"{display(path)} is a base file (its name starts with '_'): variants extend it "
            f"(`extends: {path.stem}`) and only variants are rendered or built"
            + (f"; variants: {', '.join(names)}" if names else "")
        )


def _file_hint(path: Path, variants_dir: Path, names: list[str]) -> str:
    """` (did you mean ...?)` for a missing file: the variant of that name, or a close file name."""
    if path.parent == Path(".") and path.stem in names:
        return f" here (did you mean the variant {path.stem!r}, i.e. {display(variants_dir / path.name)}?)"
    folder = path.parent if path.parent.is_dir() else None
    if folder is not None:
        close = did_you_mean(path.name, sorted(p.name for p in folder.glob("*.y*ml")))
        if close:
            return f" (did you mean {display(folder / close)!r}?)"
    close = did_you_mean(path.stem, names)
    return f" (did you mean the variant {close!r}?)" if close else ""


__all__ = ["Prepared", "find_variant", "prepare"]

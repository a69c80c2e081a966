"""Load variant YAML files and merge `extends` chains (cycles and missing targets refused).

Returns plain data plus, for every field path, the file that set it, so that errors name the file
the user has to edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from builder.errors import ErrorList, VariantErrors
from builder.paths import VARIANTS_DIR, display

SUFFIX = ".yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class Loaded:
    path: Path  # the variant file asked for
    data: dict[str, Any]  # merged data (extends applied, `extends` key kept from the leaf)
    origins: dict[tuple[str, ...], str]  # field path -> file (display form) that set it
    chain: list[Path]  # leaf first

    def file_for(self, path: tuple[str | int, ...]) -> str:
        keys = tuple(p for p in path if isinstance(p, str))
        if keys in self.origins:
            return self.origins[keys]
        # Inside a value some file set (a list item, a key of a mapping value): that file.
        # A default nobody wrote (or a mapping merged from several files): the variant file itself.
        while keys:
            keys = keys[:-1]
            if keys in self.origins and not isinstance(self._value(keys), dict):
                return self.origins[keys]
        return display(self.path)

    def _value(self, keys: tuple[str, ...]) -> Any:
        node: Any = self.data
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node


def read_yaml(path: Path) -> dict[str, Any]:
    """One file as a mapping; raises VariantErrors with the line number on any problem."""
    errors = ErrorList()
    name = display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.add(name, (), "file not found", show_value=False)
        errors.raise_if_any()
    except (OSError, UnicodeDecodeError) as exc:
        errors.add(name, (), f"cannot be read: {exc}", show_value=False)
        errors.raise_if_any()
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{context}: {problem}" if context else problem
        errors.add(name, (), f"YAML syntax error at {where}{detail}", show_value=False)
        errors.raise_if_any()
    if data is None:
        errors.add(name, (), "the file is empty; a variant file is a YAML mapping", show_value=False)
    elif not isinstance(data, dict):
        errors.add(name, (), f"a variant file is a YAML mapping, not {type(data).__name__}", show_value=False)
    else:
        for key in data:
            if not isinstance(key, str):
                errors.add(name, (), "keys must be strings", key)
    errors.raise_if_any()
    return data


def extends_target(ref: str, from_file: Path) -> Path:
    """`extends: _base` means `_base.yaml` beside the file (load_variant falls back to the shipped base of
    that name when the folder has none); a value with a suffix or slash is a path."""
    if ref.endswith((SUFFIX, ".yml")) or "/" in ref:
        return (from_file.parent / ref).resolve()
    return (from_file.parent / f"{ref}{SUFFIX}").resolve()


def _merge(base: dict, over: dict, origins: dict, over_file: str, prefix: tuple[str, ...] = ()) -> dict:
    """Deep merge: mappings merge key by key, everything else (lists included) replaces."""
    out = dict(base)
    for key, value in over.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origins, over_file, path)
        else:
            out[key] = value
            for known in [p for p in origins if p[: len(path)] == path]:
                del origins[known]
            origins[path] = over_file
            if isinstance(value, dict):
                _mark(value, origins, over_file, path)
    return out


def _mark(data: dict, origins: dict, file: str, prefix: tuple[str, ...]) -> None:
    for key, value in data.items():
        origins[(*prefix, key)] = file
        if isinstance(value, dict):
            _mark(value, origins, file, (*prefix, key))


def load_variant(path: Path) -> Loaded:
    """Load a variant file with its `extends` chain merged (base first, leaf last)."""
    path = path.resolve()
    chain: list[Path] = []
    datas: list[dict] = []
    current = path
    while True:
        if current in chain:
            cycle = " -> ".join(display(p) for p in [*chain[chain.index(current) :], current])
            errors = ErrorList()
            errors.add(display(chain[-1]), ("extends",), f"extends cycle: {cycle}", datas[-1].get("extends"))
            errors.raise_if_any()
        if chain and not current.is_file():
            errors = ErrorList()
            folders = [current.parent, VARIANTS_DIR]
            siblings = sorted(
                {p.stem for d in folders if d.is_dir() for p in d.glob(f"*{SUFFIX}")} - {chain[-1].stem}
            )
            errors.add(
                display(chain[-1]),
                ("extends",),
                f"extends a file that does not exist ({display(current)})",
                datas[-1].get("extends"),
                siblings,
            )
            errors.raise_if_any()
        data = read_yaml(current)
        chain.append(current)
        datas.append(data)
        ref = data.get("extends")
        if ref is None:
            break
        if not isinstance(ref, str) or not ref:
            errors = ErrorList()
            errors.add(display(current), ("extends",), "must be the name of a base file", ref)
            errors.raise_if_any()
        current = extends_target(ref, current)
        if not current.is_file() and (VARIANTS_DIR / f"{ref}{SUFFIX}").is_file():
            # A bare name the file's folder lacks: the shipped base of that name (a user's own variants
            # folder, an installed copy's packaged `_base`).
            current = (VARIANTS_DIR / f"{ref}{SUFFIX}").resolve()

    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for file, data in zip(reversed(chain), reversed(datas), strict=True):
        merged = _merge(merged, data, origins, display(file))
    merged["extends"] = datas[0].get("extends")
    return Loaded(path=path, data=merged, origins=origins, chain=chain)


def variant_files(directory: Path) -> list[Path]:
    """Concrete variant files of a folder: base files (leading underscore) are not variants."""
    return sorted(p for p in directory.glob(f"*{SUFFIX}") if not p.name.startswith("_"))


__all__ = ["Loaded", "VariantErrors", "extends_target", "load_variant", "read_yaml", "variant_files"]

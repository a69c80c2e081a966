"""Typed parsing of a loaded variant: pydantic's errors made readable (file, field path, value, what is
allowed, did-you-mean).

When parsing fails, the fields that failed are dropped and the rest parsed again: if that succeeds, the
semantic checks still run on it, skipping every check that reads a dropped field, so that a file's schema
and semantic problems are reported together. A missing required field is filled with a placeholder (and
counted as dropped) for that second parse: the checks of the other fields still run.
"""

from __future__ import annotations

import copy
import re
import typing
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from builder.errors import ErrorList
from builder.variant.loader import Loaded
from builder.variant.models import Variant

_MISSING = object()
# What a missing required text field holds for the second parse: valid for every pattern of the model
# (a name, a repository, a model id), and never checked (the field is dropped).
PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class Parsed:
    variant: Variant | None  # None: nothing left to check
    dropped: frozenset[tuple[str, ...]] = field(default_factory=frozenset)  # fields that failed


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class found at a field path (list indices and dict keys skipped)."""
    cls: Any = Variant
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        if isinstance(part, int):
            continue
        found = cls.model_fields.get(part)
        if found is None:
            return None
        cls = _inner_model(found.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _lookup(data: Any, loc: tuple) -> tuple[tuple, Any]:
    """Longest prefix of `loc` present in `data`, and the value there."""
    node, kept = data, []
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        else:
            return tuple(kept), _MISSING if kept != list(loc) else node
        kept.append(part)
    return tuple(kept), node


def _field_of(path: tuple) -> tuple[str, ...]:
    """The field to drop for an error at `path`: up to the first list index (the whole list goes)."""
    keys = []
    for part in path:
        if not isinstance(part, str):
            break
        keys.append(part)
    return tuple(keys)


def _placeholder(annotation: Any) -> Any:
    """A value of a required field's type: a model's required fields filled, else PLACEHOLDER."""
    model = _inner_model(annotation)
    if model is None:
        return PLACEHOLDER
    return {name: _placeholder(f.annotation) for name, f in model.model_fields.items() if f.is_required()}


def _fill(data: dict, missing: set[tuple[str, ...]]) -> dict:
    """`data` with a placeholder at each missing field (paths of keys only; a list's item is dropped)."""
    out = copy.deepcopy(data)
    for keys in sorted(missing, key=len):
        node, cls = out, _model_at(keys[:-1])
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
        if isinstance(node, dict) and cls is not None and keys[-1] in cls.model_fields:
            node.setdefault(keys[-1], _placeholder(cls.model_fields[keys[-1]].annotation))
    return out


def _drop(data: dict, fields: set[tuple[str, ...]]) -> dict:
    out = copy.deepcopy(data)
    for keys in fields:
        node = out
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    return out


def _report(
    exc: ValidationError, loaded: Loaded, errors: ErrorList
) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """Every pydantic error added to `errors`; returns the fields to drop and the missing fields (those
    outside a list, which a placeholder can stand for)."""
    seen: set[tuple] = set()
    dropped: set[tuple[str, ...]] = set()
    missing: set[tuple[str, ...]] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind in ("missing", "extra_forbidden"):
            path = loc
        else:
            path, _ = _lookup(loaded.data, loc)
        if kind == "missing" and _field_of(path) == path:
            missing.add(_field_of(path))
        dropped.add(_field_of(path))
        if path in seen:
            continue
        seen.add(path)
        file = loaded.file_for(path)
        value = err.get("input")
        if kind == "extra_forbidden":
            model = _model_at(path[:-1])
            allowed = list(model.model_fields) if model else []
            errors.add(file, path, "is not a known key", path[-1], allowed, show_value=False)
            # "unknown key 'quantizaton'" reads better than the value of the key.
            errors.errors[-1] = replace(errors.errors[-1], message=f"unknown key {path[-1]!r}")
        elif kind == "missing":
            errors.add(file, path, "is required", show_value=False)
        elif kind == "literal_error":
            allowed = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
            errors.add(file, path, "is not allowed", value, allowed)
        else:
            msg = err["msg"]
            msg = msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg
            errors.add(file, path, f"is invalid: {msg}", value, suggest=False)
    return dropped, missing


def parse(loaded: Loaded, errors: ErrorList) -> Parsed:
    """The typed variant; every schema error added to `errors` (then: what is left of it, if anything)."""
    try:
        return Parsed(Variant.model_validate(loaded.data))
    except ValidationError as exc:
        dropped, missing = _report(exc, loaded, errors)
    if () in dropped:
        return Parsed(None, frozenset(dropped))
    try:
        rest = _fill(_drop(loaded.data, dropped - missing), missing)
        return Parsed(Variant.model_validate(rest), frozenset(dropped))
    except ValidationError:
        return Parsed(None, frozenset(dropped))

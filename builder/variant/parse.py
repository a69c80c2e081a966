"""Typed parsing of a loaded variant: pydantic's errors made readable (file, field path, value, what is
allowed, did-you-mean).

When parsing fails, the fields that failed are dropped and the rest parsed again: if that succeeds, the
semantic checks still run on it, skipping every check that reads a dropped field, so that a file's schema
and semantic problems are reported together. A missing required field leaves nothing to check.
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


def _drop(data: dict, fields: set[tuple[str, ...]]) -> dict:
    out = copy.deepcopy(data)
    for keys in fields:
        node = out
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    return out


def _report(exc: ValidationError, loaded: Loaded, errors: ErrorList) -> tuple[set[tuple[str, ...]], bool]:
    """Every pydantic error added to `errors`; returns the fields to drop and whether a field is missing."""
    seen: set[tuple] = set()
    dropped: set[tuple[str, ...]] = set()
    missing = False
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind in ("missing", "extra_forbidden"):
            path = loc
        else:
            path, _ = _lookup(loaded.data, loc)
        missing = missing or kind == "missing"
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
    if missing or () in dropped:
        return Parsed(None, frozenset(dropped))
    try:
        return Parsed(Variant.model_validate(_drop(loaded.data, dropped)), frozenset(dropped))
    except ValidationError:
        return Parsed(None, frozenset(dropped))

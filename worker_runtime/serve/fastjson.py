"""JSON for the relay: orjson, with the standard library's leniency kept.

Parsing the engine's events is the relay's largest own cost per token on native streams, and it
runs on the worker's one busy core: orjson parses them several times faster than ``json``
(docs/performance.md). It is stricter than ``json`` (``NaN``/``Infinity``, which
Python's ``json.dumps`` writes for a float overflow, and lone surrogates are errors there), so a text
it refuses is parsed again by ``json`` and means what it meant before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | bytearray | str) -> Any:
    """``json.loads``, faster; raises ValueError for what ``json`` refuses too, and for nesting deeper
    than orjson's 1024 levels."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise ValueError("nested too deeply") from None  # json would recurse into a RecursionError
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("nested too deeply") from None


def dumps(obj: Any) -> bytes:
    """UTF-8 JSON of ``obj`` as ``json.dumps`` would write it (non-ASCII kept, 4-byte characters as 4
    bytes, not 12 of escapes); ValueError when it cannot be written (nested too deeply)."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:  # an integer past 64 bits, a lone surrogate, nesting past 254
        try:
            return json.dumps(obj).encode("ascii")
        except RecursionError:
            raise ValueError("nested too deeply") from None

"""JSON parsing for the relay: orjson, with the standard library's leniency kept.

Parsing the engine's events is the relay's largest own cost per token on native streams, and it
runs on the worker's one busy core: orjson parses them 2.5-3.8x faster than ``json`` (8 chunks of a
chat stream: 5.8 µs against 14.8 µs). It is stricter than ``json`` (``NaN``/``Infinity``, which
Python's ``json.dumps`` writes for a float overflow, and lone surrogates are errors there), so a text
it refuses is parsed again by ``json`` and means what it meant before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """``json.loads``, faster; raises ValueError for what ``json`` refuses too."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)

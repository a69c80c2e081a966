"""What the handler yields, in types whose text form is cheap: the runpod SDK formats every output.

For each yield of a streaming handler the SDK formats two debug messages, whether or not debug logging
is on: work on the worker's one busy core for messages nobody reads (docs/upstream-notes.md,
docs/performance.md).

These subclasses change nothing else: the same JSON, ``==`` and ``isinstance`` as the plain value.
"""

from __future__ import annotations

from typing import Any

import orjson


class SSEText(str):
    """An OpenAI stream's yield. ``str()`` and f-strings give the text; ``repr`` only its size."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<SSE text, {len(self)} characters>"


class JSONObject(dict):  # type: ignore[type-arg]
    """A native chunk or a response object whose repr is its JSON text (cheaper than dict's)."""

    __slots__ = ()

    def __repr__(self) -> str:
        try:
            return orjson.dumps(self).decode()
        except TypeError:  # what orjson cannot write (a non-str key, an odd type): the usual repr
            return dict.__repr__(self)


def platform_output(item: Any) -> Any:
    """``item`` as one of the types above (exact str and dict only; anything else as it is)."""
    kind = type(item)
    if kind is str:
        return SSEText(item)
    if kind is dict:
        return JSONObject(item)
    return item

"""Pure: merge OpenAI stream chunks that arrived together into one chunk object.

A native stream yields one OpenAI chunk object per yield. When several chunks arrived during the
previous yield they are merged (and so are the choices of one chunk that share an index), per choice
index and at the delta and the choice level alike:
text fields appended, tool-call arguments appended, list fields (FastDeploy's
``completion_token_ids``, ``prompt_token_ids``, logprob lists) concatenated, the role kept from the
first chunk and every other scalar (``finish_reason``) from the last one that set it; top-level
``usage`` objects are added up. Concatenating the yields' deltas therefore gives exactly the text and
token ids of the unmerged stream.

Usage: FastDeploy's streamed completions send one usage chunk per finished choice, each with only that
choice's numbers (docs/upstream-notes.md); merged chunks add their usages up, and
``summed_usage`` keeps a native stream's running total, so its last usage is the job's total, the same
numbers as the non-streamed answer (prompt tokens counted once per prompt, not once per choice).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

# String fields that carry one piece per chunk (FastDeploy adds the last three with return_token_ids).
TEXT_FIELDS = ("content", "reasoning_content", "text", "raw_prediction", "completion_tokens", "prompt_tokens")
LOGPROB_FIELDS = ("logprobs", "draft_logprobs")
_NUMBERS = (int, float)  # exact types (a bool is not one): a number field keeps its last value


def merge_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    if len(chunks) == 1 and _one_choice_per_index(chunks[0]):
        return chunks[0]
    out: dict[str, Any] = {}
    choices: dict[Any, dict[str, Any]] = {}
    for chunk in chunks:
        for key, value in chunk.items():
            if key == "usage" and isinstance(value, dict) and isinstance(out.get("usage"), dict):
                out[key] = add_usage(out["usage"], value)
            elif key != "choices" and (value is not None or key not in out):
                out[key] = value
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if index in choices:
                _merge_choice(choices[index], choice)
            else:
                copy = dict(choice)
                if isinstance(copy.get("delta"), dict):
                    copy["delta"] = dict(copy["delta"])
                choices[index] = copy
    out["choices"] = list(choices.values())
    return out


def _one_choice_per_index(chunk: dict[str, Any]) -> bool:
    """False for FastDeploy's chunks of several tokens (``max_streaming_response_tokens`` > 1), which
    list one choice per token, several of
    them with the same index: those are merged too, so that a reader of ``choices[0]`` misses none."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        return True
    indexes = {c.get("index", 0) if isinstance(c, dict) else None for c in choices}
    return len(indexes) == len(choices)


def _merge_choice(into: dict[str, Any], new: dict[str, Any], *, delta: bool = False) -> None:
    """Merge one choice (``delta``: one choice's delta) into ``into``.

    Nearly every field of a stream chunk is a None, a token's text or a number: settled here, in
    line (the per-token path); everything else goes through the general rule, ``_merge_field``.
    """
    for key, value in new.items():
        if value is None:
            if key != "role" and key in into:
                continue  # nothing to merge
        elif key == "role":
            into[key] = into.get(key) or value
            continue
        elif type(value) is str and key in TEXT_FIELDS:
            old = into.get(key)
            if old is None or type(old) is str:
                into[key] = (old or "") + value
                continue
        elif type(value) in _NUMBERS:
            into[key] = value  # index, arrival_time: the last one
            continue
        elif not delta and key == "delta" and isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_choice(into[key], value, delta=True)
            continue
        _merge_field(into, key, value)


def _merge_field(into: dict[str, Any], key: str, value: Any) -> None:
    """Merge one field of a choice or delta: append text, join lists, keep the last scalar."""
    if value is None and key != "role" and key in into:
        return  # what every branch below does with a None (most fields of most chunks)
    old = into.get(key)
    if key in TEXT_FIELDS and isinstance(value, str) and (old is None or isinstance(old, str)):
        into[key] = (old or "") + value
    elif key == "tool_calls" and isinstance(value, list):
        into[key] = _merge_tool_calls(old or [], value)
    elif key in LOGPROB_FIELDS:
        into[key] = _merge_logprobs(old, value)
    elif key == "role":
        into[key] = old or value
    elif isinstance(value, list) and isinstance(old, list):
        into[key] = old + value  # e.g. completion_token_ids, prompt_token_ids
    elif value is not None or key not in into:
        into[key] = value


def _merge_tool_calls(into: list[Any], new: list[Any]) -> list[Any]:
    out = [dict(c) if isinstance(c, dict) else c for c in into]
    for call in new:
        match = next(
            (
                c
                for c in out
                if isinstance(c, dict) and isinstance(call, dict) and c.get("index") == call.get("index")
            ),
            None,
        )
        if match is None:
            out.append(dict(call) if isinstance(call, dict) else call)
            continue
        for key, value in call.items():
            if key == "function" and isinstance(value, dict):
                fn = dict(match.get("function") or {})
                for fkey, fval in value.items():
                    if fkey == "arguments" and isinstance(fval, str):
                        fn["arguments"] = (fn.get("arguments") or "") + fval
                    elif fval is not None:
                        fn[fkey] = fval
                match["function"] = fn
            elif value is not None:
                match[key] = value
    return out


def _merge_logprobs(a: Any, b: Any) -> Any:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return b if b is not None else a
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + value
        elif value is not None:
            out[key] = value
    return out


def add_usage(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """Two usage objects added up, field by field (nested details too)."""
    out: dict[str, Any] = dict(a or {})
    for key, value in b.items():
        old = out.get(key)
        if isinstance(value, dict):
            out[key] = add_usage(old if isinstance(old, dict) else None, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = (old if isinstance(old, (int, float)) and not isinstance(old, bool) else 0) + value
        elif key not in out:
            out[key] = value
    return out


def completions_usage(total: dict[str, Any], n: int) -> dict[str, Any]:
    """The job's usage from the sum of its per-choice usage chunks: each choice repeats its prompt's
    tokens, so the prompt tokens are divided by ``n`` (as FastDeploy's non-stream answer does)."""
    out = dict(total)
    if isinstance(out.get("prompt_tokens"), int):
        out["prompt_tokens"] //= max(1, n)
        if isinstance(out.get("completion_tokens"), int):
            out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    return out


async def summed_usage(items: AsyncIterator[Any], n: int) -> AsyncIterator[Any]:
    """A native completions stream whose chunks carry the usage so far instead of one choice's."""
    total: dict[str, Any] | None = None
    try:
        async for item in items:
            if isinstance(item, dict) and isinstance(item.get("usage"), dict):
                total = add_usage(total, item["usage"])
                item = {**item, "usage": completions_usage(total, n)}
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()

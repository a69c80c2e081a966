"""Pure: merge OpenAI stream chunks that arrived together into one chunk object.

A native stream yields one OpenAI chunk object per yield. When several chunks arrived during the
previous yield they are merged, per choice index and at the delta and the choice level alike:
text fields appended, tool-call arguments appended, list fields (FastDeploy's
``completion_token_ids``, ``prompt_token_ids``, logprob lists) concatenated, the role kept from the
first chunk and every other scalar (``finish_reason``, top-level ``usage``) from the last one that set
it. Concatenating the yields' deltas therefore gives exactly the text and token ids of the unmerged
stream.
"""

from __future__ import annotations

from typing import Any

# String fields that carry one piece per chunk (FastDeploy adds the last three with return_token_ids).
TEXT_FIELDS = ("content", "reasoning_content", "text", "raw_prediction", "completion_tokens", "prompt_tokens")
LOGPROB_FIELDS = ("logprobs", "draft_logprobs")


def merge_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    if len(chunks) == 1:
        return chunks[0]
    out: dict[str, Any] = {}
    choices: dict[Any, dict[str, Any]] = {}
    for chunk in chunks:
        for key, value in chunk.items():
            if key != "choices" and (value is not None or key not in out):
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


def _merge_choice(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if key == "delta" and isinstance(value, dict) and isinstance(into.get("delta"), dict):
            _merge_delta(into["delta"], value)
        else:
            _merge_field(into, key, value)


def _merge_delta(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        _merge_field(into, key, value)


def _merge_field(into: dict[str, Any], key: str, value: Any) -> None:
    """Merge one field of a choice or delta: append text, join lists, keep the last scalar."""
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

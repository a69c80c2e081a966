"""Pure: merge OpenAI stream chunks that arrived together into one chunk object.

A native stream yields one OpenAI chunk object per yield. When several chunks arrived during the
previous yield they are merged: per choice index the text deltas are concatenated, tool-call
arguments appended, logprob lists joined, the last finish_reason and usage kept. Concatenating
the yields' deltas therefore gives exactly the text of the unmerged stream.
"""

from __future__ import annotations

from typing import Any

TEXT_FIELDS = ("content", "reasoning_content", "text")


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
        elif key == "text" and isinstance(value, str):
            into["text"] = (into.get("text") or "") + value
        elif key == "logprobs":
            into["logprobs"] = _merge_logprobs(into.get("logprobs"), value)
        elif value is not None or key not in into:
            into[key] = value


def _merge_delta(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if key in TEXT_FIELDS and isinstance(value, str):
            into[key] = (into.get(key) or "") + value
        elif key == "tool_calls" and isinstance(value, list):
            into[key] = _merge_tool_calls(into.get(key) or [], value)
        elif key == "role":
            into[key] = into.get(key) or value
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

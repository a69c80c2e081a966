"""Guided decoding and tool calls of the stand-in, as FastDeploy 2.5 answers them (docs/upstream-notes.md).

* ``--guided-decoding-backend`` off (the default): the structured-output fields are accepted and ignored,
  the answer is free text with a 200 (no checker, no grammar processor in 2.5).
* on (``xgrammar``, ``auto``, ``guidance``): the answer satisfies the request's JSON schema, JSON object,
  regex or choice (a grammar or structural tag is answered with free text: the stand-in has no EBNF
  generator). Speculative decoding switches it off with a warning, as ``FDConfig.postprocess()`` does.
* ``--tool-call-parser`` set and the request has ``tools``: the model "calls" the first tool with
  arguments generated from its ``parameters`` schema, answered in 2.5's ``tool_calls`` shape.

Knob: ``FD_STANDIN_GUIDED_BREAK`` = ``json`` (the structured answer is not JSON) or ``schema`` (valid
JSON that breaks the schema: a required property missing), for tests of what checks the answers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
import zlib
from typing import Any

try:  # Python 3.11+
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse  # type: ignore[no-redef]

BACKENDS = ("xgrammar", "XGrammar", "auto", "off", "guidance")
WORDS = ("alpha", "river", "stone", "maple", "cobalt", "ember", "lumen", "quartz")


class StartError(Exception):
    """The engine refuses to start (its message is logged, the process exits non-zero)."""


def effective_backend(args: Any, log: Any) -> str:
    """The backend the engine ends up with (config.py postprocess() then check())."""
    backend = getattr(args, "guided_decoding_backend", None) or "off"
    if backend == "off":
        return "off"
    if backend not in BACKENDS:
        raise StartError(
            f"Only support [auto, xgrammar, guidance, off] guided decoding backend, but got {backend}."
        )
    if getattr(args, "speculative_config", None):
        log("WARNING Speculative Decoding and XPU currently do not support Guided decoding, set off.")
        return "off"
    if backend == "guidance" and importlib.util.find_spec("llguidance") is None:
        raise StartError(
            "The 'llguidance' package is required for using guidance as the guided decoding backend. "
            "Please install it via the appropriate method."
        )
    if importlib.util.find_spec("xgrammar") is None:  # check() imports it for every backend but off
        raise StartError(
            "import XGrammar failed, please install XGrammar use `pip install xgrammar==0.1.19`. \n\t "
            "No module named 'xgrammar'"
        )
    return "guidance" if backend == "guidance" else "xgrammar"


# ----------------------------------------------------------------------------- what the request asks


def guided_kind(body: dict[str, Any]) -> tuple[str, Any] | None:
    """The one guided decoding request of a body: (kind, spec), or None (protocol.py, request.py)."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_object":
            return "json", {"type": "object"}
        if kind == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            return "json", schema if isinstance(schema, dict) else {"type": "object"}
        if kind == "structural_tag":
            return "free", None
    if body.get("guided_json") is not None:
        spec = body["guided_json"]
        return "json", json.loads(spec) if isinstance(spec, str) else spec
    if isinstance(body.get("guided_choice"), list) and body["guided_choice"]:
        return "choice", body["guided_choice"]
    if isinstance(body.get("guided_regex"), str):
        return "regex", body["guided_regex"]
    if body.get("guided_grammar") is not None or body.get("structural_tag") is not None:
        return "free", None
    return None


# ----------------------------------------------------------------------------- answers


def instance(schema: Any, seed: int, depth: int = 0) -> Any:
    """A value satisfying a (simple) JSON schema: what a grammar-constrained model would emit."""
    if not isinstance(schema, dict) or depth > 6:
        return WORDS[seed % len(WORDS)]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][seed % len(schema["enum"])]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance(schema[key][0], seed, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else "string")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: instance(sub, seed + i, depth + 1) for i, (name, sub) in enumerate(props.items())}
    if kind == "array":
        count = max(int(schema.get("minItems", 1) or 1), 1)
        return [instance(schema.get("items"), seed + i, depth + 1) for i in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 0)) + seed % 10
    if kind == "number":
        return float(schema.get("minimum", 0)) + (seed % 10) / 2
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    return WORDS[seed % len(WORDS)]


def regex_sample(pattern: str, seed: int) -> str:
    """A string the regex matches fully (literals, classes, repeats, groups, alternatives)."""
    out: list[str] = []

    def walk(items: Any) -> None:
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "ANY":
                out.append("a")
            elif name == "IN":
                out.append(first_of_class(arg))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, high, sub = arg
                count = max(low, 1) if high else low
                for _ in range(min(count, 8)):
                    walk(sub)
            elif name == "SUBPATTERN":
                walk(arg[-1])
            elif name == "BRANCH":
                branches = arg[1]
                walk(branches[seed % len(branches)])
            elif name in ("AT", "ASSERT", "ASSERT_NOT"):
                continue

    walk(sre_parse.parse(pattern))
    return "".join(out)


def first_of_class(items: Any) -> str:
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return {"CATEGORY_DIGIT": "7", "CATEGORY_SPACE": " "}.get(str(arg), "k")
    return "k"


def structured_text(kind: str, spec: Any, prompt: str) -> str | None:
    """The answer text of a guided request (None: free text)."""
    seed = zlib.crc32(prompt.encode("utf-8"))
    broken = os.environ.get("FD_STANDIN_GUIDED_BREAK", "").strip()
    if kind == "json":
        value = instance(spec, seed)
        if broken == "schema" and isinstance(value, dict) and value:
            required = (spec or {}).get("required") or list(value)
            value.pop(required[0], None)
        text = json.dumps(value, ensure_ascii=False)
        return text[: max(1, len(text) // 2)] if broken == "json" else text
    if kind == "choice":
        return str(spec[seed % len(spec)])
    if kind == "regex":
        return regex_sample(spec, seed)
    return None


def tokens(text: str) -> list[str]:
    """Text cut into tokens of 1-3 characters (the answer arrives piece by piece)."""
    out, i, size = [], 0, 1
    while i < len(text):
        out.append(text[i : i + size])
        i += size
        size = size % 3 + 1
    return out


def tool_call(body: dict[str, Any], prompt: str) -> dict[str, Any] | None:
    """The call of the request's first function tool: (id, name, arguments as a JSON string)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    first = tools[0] if isinstance(tools[0], dict) else {}
    function = first.get("function") if isinstance(first.get("function"), dict) else {}
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = instance(function.get("parameters") or {"type": "object"}, zlib.crc32(prompt.encode()))
    if not isinstance(arguments, dict):
        arguments = {}
    # ernie_x1_tool_parser.py: random_tool_call_id(), json.dumps(..., ensure_ascii=False), "{}" when empty
    return {
        "id": f"chatcmpl-tool-{uuid.uuid4().hex}",
        "name": name,
        "arguments": json.dumps(arguments, ensure_ascii=False) if arguments else "{}",
    }


__all__ = [
    "StartError",
    "effective_backend",
    "guided_kind",
    "structured_text",
    "tokens",
    "tool_call",
]

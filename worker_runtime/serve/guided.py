"""Structured outputs (FastDeploy's guided decoding) in requests: which fields need a backend, the refusal
when it is off, the schema checks made before the engine sees a schema. Pure, except that the guidance
backend's checks use llguidance when it is importable. (The packages a backend needs at start:
engine/backend_packages.py.)"""

from __future__ import annotations

import json
from typing import Any

from worker_runtime.serve.errors import JobError

SETTING = "GUIDED_DECODING_BACKEND"
DOC = "docs/structured-outputs.md"
# Request fields that ask for guided decoding (FastDeploy's request models; response_format of type
# "text" asks for nothing).
FIELDS = (
    "response_format",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "structural_tag",
)
# JSON-schema keywords FastDeploy's xgrammar checker lists as unsupported, by the type they sit on. Its
# engine never applies the list (it is given the schema as a string), so the worker does.
XGRAMMAR_UNSUPPORTED: dict[str, tuple[str, ...]] = {
    "integer": ("multipleOf",),
    "number": ("multipleOf",),
    "array": ("uniqueItems", "contains", "minContains", "maxContains"),
    "string": ("format",),
    "object": ("minProperties", "maxProperties", "propertyNames", "patternProperties"),
}


def asked_field(body: dict[str, Any]) -> str | None:
    """The first field of the request that needs guided decoding (None: none does)."""
    for field in FIELDS:
        value = body.get(field)
        if value is None:
            continue
        if field == "response_format" and isinstance(value, dict) and value.get("type") in (None, "text"):
            continue
        return field
    return None


def check(body: dict[str, Any], backend: str) -> None:
    """Refuse what the engine would ignore (backend off) or fail on with a 500 (a schema the backend
    cannot compile); raises JobError (400)."""
    field = asked_field(body)
    if field is None:
        return
    if backend == "off":
        raise JobError(
            400,
            f"{field} asks for a structured output, but guided decoding is off on this worker and FastDeploy "
            f"would ignore it (free text, no error): set {SETTING} to xgrammar or guidance on an image that "
            f"has the backend (see {DOC})",
            code="guided_decoding_off",
            param=field,
        )
    schema, where = json_schema(body)
    if schema is not None:
        problem = schema_problem(schema, backend)
        if problem:
            raise JobError(400, f"{where}: {problem}", code="unsupported_schema", param=where.split(".")[0])
    pattern = body.get("guided_regex")
    if backend == "guidance" and isinstance(pattern, str):
        problem = llguidance_problem("regex", pattern)
        if problem:
            raise JobError(400, f"guided_regex: {problem}", code="unsupported_schema", param="guided_regex")


def json_schema(body: dict[str, Any]) -> tuple[Any, str]:
    """The JSON schema a request asks for and where it sits (None when it asks for none)."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        return (spec.get("schema") if isinstance(spec, dict) else None), "response_format.json_schema.schema"
    value = body.get("guided_json")
    if isinstance(value, str):
        try:
            return json.loads(value), "guided_json"
        except ValueError as exc:
            raise JobError(
                400, f"guided_json is not valid JSON ({exc})", code="invalid_value", param="guided_json"
            ) from None
    return value, "guided_json"


def schema_problem(schema: Any, backend: str) -> str | None:
    """Why the backend cannot take the schema (None: nothing known against it)."""
    if not isinstance(schema, dict):
        return "a JSON schema must be an object" if schema is not None else None
    if backend == "guidance":
        return llguidance_problem("json", schema)
    found = xgrammar_unsupported(schema, "")
    if found is None:
        return None
    path, kind, keyword = found
    return (
        f"{keyword!r} on type {kind!r} (at {path or 'the top level'}) is not supported by the xgrammar "
        "backend: the output would not be held to it; remove it or check it in your code"
    )


def xgrammar_unsupported(node: Any, path: str) -> tuple[str, str, str] | None:
    """(path, type, keyword) of the first unsupported keyword, walking every nested schema."""
    if isinstance(node, dict):
        kind = node.get("type")
        for keyword in XGRAMMAR_UNSUPPORTED.get(kind, ()) if isinstance(kind, str) else ():
            if keyword in node:
                return path, kind, keyword
        for key, value in node.items():
            found = xgrammar_unsupported(value, f"{path}/{key}" if path else str(key))
            if found:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = xgrammar_unsupported(value, f"{path}/{i}")
            if found:
                return found
    return None


def llguidance_problem(kind: str, spec: Any) -> str | None:
    """llguidance's own verdict (the guidance backend's library, run on the CPU); None when it accepts
    the spec or is not importable here."""
    try:
        import llguidance
    except ImportError:
        return None
    try:
        if kind == "json":
            grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(spec))
        else:
            grammar = llguidance.grammar_from(kind, spec)
        error = llguidance.LLMatcher.validate_grammar(grammar, None)
    except (ValueError, TypeError) as exc:
        error = str(exc)
    if not error:
        return None
    return f"the guidance backend cannot use it: {' '.join(str(error).split())[:300]}"

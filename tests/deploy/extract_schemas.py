"""Regenerate `runpod_v2_schemas.json`: the part of RunPod's REST v2 OpenAPI document a deploy touches.

    python -m tests.deploy.extract_schemas OPENAPI_JSON --commit SHA

OPENAPI_JSON is `api-reference-v2/openapi.json` of the public repository runpod/docs at commit SHA
(for example `git show SHA:api-reference-v2/openapi.json > openapi.json` in a clone). The output keeps
the request and response schemas of the operations below, everything they reference, and the source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("runpod_v2_schemas.json")
REPOSITORY = "runpod/docs"
PATH = "api-reference-v2/openapi.json"
OPERATIONS = [
    ("GET", "/v2/templates"),
    ("POST", "/v2/templates"),
    ("PATCH", "/v2/templates/{id}"),
    ("GET", "/v2/serverless"),
    ("POST", "/v2/serverless"),
    ("PATCH", "/v2/serverless/{id}"),
    ("GET", "/v2/registries"),
    ("POST", "/v2/registries"),
    ("GET", "/v2/catalog/gpus"),
]


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _schema_name(content: dict[str, Any]) -> str | None:
    for media in content.values():
        ref = media.get("schema", {}).get("$ref", "")
        if ref:
            return ref.rsplit("/", 1)[1]
    return None


def extract(document: dict[str, Any], commit: str) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    operations: dict[str, Any] = {}
    wanted: set[str] = {"ErrorResponse"}
    for method, path in OPERATIONS:
        op = document["paths"][path][method.lower()]
        entry: dict[str, Any] = {"operationId": op["operationId"]}
        body = op.get("requestBody", {}).get("content")
        if body:
            entry["request"] = _schema_name(body)
        for code, answer in op["responses"].items():
            if code.startswith("2"):
                entry["status"] = int(code)
                entry["response"] = _schema_name(answer.get("content", {}))
        operations[f"{method} {path}"] = entry
        wanted |= {v for k, v in entry.items() if k in ("request", "response") and v}
    closure: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        todo += sorted(_refs(schemas[name]) - closure)
    examples = {
        name: next(iter(resp["content"]["application/problem+json"]["examples"].values()))["value"]
        for name, resp in document["components"]["responses"].items()
    }
    return {
        "source": {"repository": REPOSITORY, "path": PATH, "commit": commit,
                   "openapi": document["openapi"], "version": document["info"]["version"]},
        "servers": document.get("servers", []),
        "operations": operations,
        "error_examples": examples,
        "components": {"schemas": {name: schemas[name] for name in sorted(closure)}},
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("openapi", type=Path, help="RunPod's api-reference-v2/openapi.json")
    p.add_argument("--commit", required=True, help="the runpod/docs commit the file comes from")
    args = p.parse_args()
    data = extract(json.loads(args.openapi.read_text()), args.commit)
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(
        f"wrote {OUT.name}: {len(data['components']['schemas'])} schemas, "
        f"{len(data['operations'])} operations"
    )


if __name__ == "__main__":
    main()

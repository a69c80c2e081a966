"""builder.variant.schema: the committed JSON Schema is current; variant files carry its header."""

from __future__ import annotations

import json

from tests.builder.helpers import ROOT


def test_schema_is_committed_and_current(cli):
    result = cli("--schema")
    assert result.returncode == 0
    committed = (ROOT / "variants" / "variant.schema.json").read_text(encoding="utf-8")
    assert result.stdout == committed, "regenerate: python build.py schema > variants/variant.schema.json"
    schema = json.loads(committed)
    assert schema["additionalProperties"] is False
    assert "description" in schema["properties"]["engine"]


def test_variant_files_carry_schema_header():
    for path in sorted((ROOT / "variants").glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=./variant.schema.json", path

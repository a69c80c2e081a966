"""builder.variant.loader: YAML files and `extends` chains (merging, origins, cycles, missing bases,
syntax errors, duplicate keys)."""

from __future__ import annotations

import pytest

from builder.variant.loader import load_variant
from tests.builder.helpers import MINIMAL_VARIANT

GOOD = MINIMAL_VARIANT

CASES = {
    # case id: (file text, expected fragments of stderr)
    "missing-extends-target": (
        GOOD.replace("extends: _base", "extends: _bsae"),
        ["extends", "'_bsae'", "does not exist", "did you mean '_base'"],
    ),
    "yaml-syntax-error": (GOOD + "engine: {quantization: wint4\n", ["YAML syntax error at line"]),
    "empty-file": ("", ["the file is empty"]),
    "comment-only-file": ("# nothing here\n", ["the file is empty"]),
    "duplicate-key": (GOOD + "title: again\n", ["YAML syntax error", "duplicate key 'title'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_naming_file_and_field(case, refused):
    text, fragments = CASES[case]
    refused(case, text, fragments)


def test_extends_chain_merges_mappings_and_replaces_lists(tmp_path):
    (tmp_path / "_a.yaml").write_text(
        "engine: {cuda: '12.6', quantization: wint8}\nhub: {gpu_ids: [AMPERE_80]}\n"
    )
    (tmp_path / "_b.yaml").write_text("extends: _a\nengine: {quantization: wint4}\n")
    (tmp_path / "c.yaml").write_text("extends: _b.yaml\nhub: {gpu_ids: [ADA_24, AMPERE_24]}\n")
    loaded = load_variant(tmp_path / "c.yaml")
    assert loaded.data["engine"] == {"cuda": "12.6", "quantization": "wint4"}
    assert loaded.data["hub"]["gpu_ids"] == ["ADA_24", "AMPERE_24"]
    assert loaded.file_for(("engine", "quantization")).endswith("_b.yaml")
    assert loaded.file_for(("engine", "cuda")).endswith("_a.yaml")
    assert loaded.file_for(("hub", "gpu_ids", 1)).endswith("c.yaml")
    assert loaded.file_for(("hub", "gpu_count")).endswith("c.yaml")
    assert [p.name for p in loaded.chain] == ["c.yaml", "_b.yaml", "_a.yaml"]


def test_extends_cycle(cli, write_variant):
    write_variant("a", "extends: b\nname: a\n")
    b = write_variant("b", "extends: a\n")
    result = cli("--variant", str(b), "--render-only")
    assert result.returncode == 2
    assert "extends cycle" in result.stderr and "a.yaml" in result.stderr and "b.yaml" in result.stderr


def test_error_in_base_names_the_base_file(cli, write_variant):
    write_variant("_mybase", "extends: _base\nengine:\n  quantization: wint3\n")
    path = write_variant("child", GOOD.replace("_base", "_mybase").replace("{name}", "child"))
    result = cli("--variant", str(path), "--render-only")
    assert result.returncode == 2
    assert "_mybase.yaml: engine.quantization: 'wint3'" in result.stderr

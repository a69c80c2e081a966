"""builder.tools.import_engine_flags: a published release from the flags table, an unreleased one read
from FastDeploy's source tree (a checkout, or a clone at a git revision), and a paragraph, not a
traceback, when an input is missing."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from builder.tools.import_engine_flags import main

# A FastDeploy source tree in miniature: each construct the reader meets in the real files.
SOURCE = {
    "setup.py": 'FASTDEPLOY_VERSION = os.environ.get("FASTDEPLOY_VERSION", "2.6.0")\n',
    "fastdeploy/entrypoints/openai/utils.py": """
        import os
        def make_arg_parser(parser):
            _is_multi_server = os.environ.get("FD_ENABLE_MULTI_API_SERVER") == "1"
            parser.add_argument("--port", default=8000, type=int, help="port")
            parser.add_argument("--workers", default=1 if _is_multi_server else 4, type=int)
            parser.add_argument("--api-key", type=str, action="append")
            parser = EngineArgs.add_cli_args(parser)
            return parser
    """,
    "fastdeploy/engine/args_utils.py": """
        import argparse, json
        from dataclasses import dataclass, field
        @dataclass
        class EngineArgs:
            model: str = "baidu/ernie-45-turbo"
            tensor_parallel_size: int = 1
            enable_prefix_caching: bool = True
            ips: list = field(default=None)
            def add_cli_args(parser):
                group = parser.add_argument_group("Model")
                group.add_argument("--model", type=str, default=EngineArgs.model)
                group.add_argument(
                    "--tensor-parallel-size", "-tp", type=int, default=EngineArgs.tensor_parallel_size
                )
                group.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction,
                                   default=EngineArgs.enable_prefix_caching)
                group.add_argument("--enable-logprob", action="store_true")
                group.add_argument(
                    "--ips", type=lambda s: s.split(",") if s else None, default=EngineArgs.ips
                )
                group.add_argument(
                    "--cache-queue-port", type=lambda s: [int(x) for x in s.split(",")] if s else None
                )
                group.add_argument("--limit-mm-per-prompt", type=json.loads, default=None)
                group.add_argument("--logits-processors", type=str, nargs="+", default=None)
                group.add_argument("--model-impl", type=str, default="auto", choices=["auto", "fastdeploy"])
                return parser
    """,
    "fastdeploy/model_executor/layers/quantization/__init__.py": (
        'QUANTIZATION_METHODS: List[str] = ["wint4", "wint8"]\n'
    ),
    "fastdeploy/reasoning/__init__.py": "",
    "fastdeploy/reasoning/qwen3_reasoning_parsers.py": """
        @ReasoningParserManager.register_module("qwen3")
        class Qwen3ReasoningParser: ...
    """,
    "fastdeploy/entrypoints/openai/tool_parsers/ernie_x1_tool_parser.py": """
        @ToolParserManager.register_module("ernie-x1")
        class ErnieX1ToolParser: ...
    """,
    "fastdeploy/config.py": """
        class LoadChoices(str, Enum):
            DEFAULT = "default"
            DEFAULT_V1 = "default_v1"
    """,
}
PUBLISHED = {
    "flags": {"--port": {"type": "int", "default": 8000}},
    "quantization": [],
    "reasoning_parsers": [],
}
EXPECTED_FLAGS = {
    "--api-key": {"type": "str", "action": "append", "default": None},
    "--cache-queue-port": {"type": "int_list_csv", "default": None},
    "--enable-logprob": {"type": "bool", "action": "store_true", "default": False},
    "--enable-prefix-caching": {
        "type": "bool",
        "action": "BooleanOptionalAction",
        "negative_form": "--no-enable-prefix-caching",
        "default": True,
    },
    "--ips": {"type": "str_list_csv", "default": None},
    "--limit-mm-per-prompt": {"type": "json", "default": None},
    "--logits-processors": {"type": "str", "default": None, "nargs": "+"},
    "--model": {"type": "str", "default": "baidu/ernie-45-turbo"},
    "--model-impl": {"type": "str", "default": "auto", "choices": ["auto", "fastdeploy"]},
    "--port": {"type": "int", "default": 8000},
    "--tensor-parallel-size": {"type": "int", "default": 1, "aliases": ["-tp"]},
    "--workers": {"type": "int", "default": 4},  # the environment unset
}


def write_tree(root: Path) -> Path:
    for rel, text in SOURCE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def flags_file(tmp_path: Path) -> Path:
    out = tmp_path / "engine_flags.json"
    out.write_text(json.dumps({"releases": {"2.5.0": PUBLISHED}}), encoding="utf-8")
    return out


def test_a_checkout_becomes_an_unreleased_entry_beside_the_published_ones(tmp_path, capsys) -> None:
    tree, out = write_tree(tmp_path / "FastDeploy"), flags_file(tmp_path)
    assert main(["--source", str(tree), "--out", str(out)]) == 0
    releases = json.loads(out.read_text())["releases"]
    assert list(releases) == ["2.5.0", "2.6.0"] and releases["2.5.0"] == PUBLISHED
    entry = releases["2.6.0"]
    assert entry["unreleased"] is True and "source" not in entry  # a folder has no revision
    assert entry["flags"] == EXPECTED_FLAGS
    assert entry["quantization"] == ["wint4", "wint8"]
    assert (entry["reasoning_parsers"], entry["tool_parsers"]) == (["qwen3"], ["ernie-x1"])
    assert entry["load_choices"] == ["default", "default_v1"]
    assert "FastDeploy 2.6.0 (unreleased)" in capsys.readouterr().out


def test_a_clone_is_read_at_a_revision_and_the_entry_records_its_commit(tmp_path) -> None:
    tree, out = write_tree(tmp_path / "clone"), flags_file(tmp_path)
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tree"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tree / "setup.py").unlink()  # the work tree no longer matters: the revision is read
    assert main(["--source", str(tree), "--rev", "HEAD", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["releases"]["2.6.0"]
    assert entry["source"] == commit and entry["flags"] == EXPECTED_FLAGS


def test_a_table_import_keeps_unreleased_entries_until_the_table_has_the_release(tmp_path) -> None:
    tree, out = write_tree(tmp_path / "FastDeploy"), flags_file(tmp_path)
    main(["--source", str(tree), "--out", str(out)])
    table = tmp_path / "fastdeploy-flags.yaml"
    table.write_text(yaml.safe_dump({"releases": {"2.5.0": PUBLISHED}}), encoding="utf-8")
    assert main([str(table), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["releases"]["2.6.0"]["unreleased"] is True
    table.write_text(yaml.safe_dump({"releases": {"2.5.0": PUBLISHED, "2.6.0": PUBLISHED}}), encoding="utf-8")
    assert main([str(table), "--out", str(out)]) == 0
    assert "unreleased" not in json.loads(out.read_text())["releases"]["2.6.0"]  # published now
    assert main(["--source", str(tree), "--out", str(out)]) == 2  # a branch does not replace it


@pytest.mark.parametrize(
    "args", [["missing.yaml"], ["--source", "missing-clone"], ["--source", "tree", "--rev", "nope"]]
)
def test_a_missing_input_is_a_paragraph_saying_where_it_comes_from(tmp_path, capsys, args: list[str]) -> None:
    write_tree(tmp_path / "tree")
    subprocess.run(["git", "-C", str(tmp_path / "tree"), "init", "-q"], check=True)
    args = [str(tmp_path / a) if not a.startswith("-") and a != "nope" else a for a in args]
    out = flags_file(tmp_path)
    before = out.read_text()
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1
    assert "github.com/PaddlePaddle/FastDeploy" in err
    if args[0].endswith(".yaml"):
        assert "not part of this repository" in err and "--source" in err
    assert out.read_text() == before  # nothing written

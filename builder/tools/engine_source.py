"""Read one FastDeploy release's api_server flags and choice lists from FastDeploy's own source tree.

The same facts ``fastdeploy-flags.yaml`` holds for published releases, read with Python's ``ast`` (never
imported, never run): every ``add_argument`` call in ``make_arg_parser`` (``entrypoints/openai/utils.py``,
the server's flags) and ``EngineArgs.add_cli_args`` (``engine/args_utils.py``), defaults written as
``EngineArgs.<field>`` resolved to that dataclass field; the quantization names (``QUANTIZATION_METHODS``),
the registered reasoning and tool-call parsers, and the ``LoadChoices`` values. A default that depends on
the environment (``a if os.environ... else b``, e.g. ``--workers`` on release/2.6) is taken with the
environment unset: ``b``.

The tree is a checkout folder, or a git repository read at a revision (``git show REV:path``).
"""

from __future__ import annotations

import ast
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_FILE = "fastdeploy/entrypoints/openai/utils.py"
ENGINE_FILE = "fastdeploy/engine/args_utils.py"
QUANT_FILE = "fastdeploy/model_executor/layers/quantization/__init__.py"
CONFIG_FILE = "fastdeploy/config.py"
PARSER_DIRS = {
    "reasoning_parsers": ("fastdeploy/reasoning", "ReasoningParserManager"),
    "tool_parsers": ("fastdeploy/entrypoints/openai/tool_parsers", "ToolParserManager"),
}
# argparse type= callables of FastDeploy -> the flag table's type names
TYPE_NAMES = {"int": "int", "float": "float", "str": "str", "nullable_str": "nullable_str"}


class SourceError(Exception):
    """The source tree cannot be read (missing folder, revision or file)."""


@dataclass(frozen=True)
class SourceTree:
    """A FastDeploy checkout (``rev`` None) or a git repository at revision ``rev``."""

    path: Path
    rev: str | None = None

    def read(self, rel: str) -> str:
        if self.rev is None:
            try:
                return (self.path / rel).read_text(encoding="utf-8")
            except OSError as exc:
                raise SourceError(f"{self.path / rel} cannot be read ({exc.strerror})") from None
        return self._git("show", f"{self.rev}:{rel}")

    def names(self, rel: str) -> list[str]:
        """The ``.py`` files of folder ``rel``, sorted."""
        if self.rev is None:
            folder = self.path / rel
            if not folder.is_dir():
                raise SourceError(f"{folder} is not a folder")
            return sorted(p.name for p in folder.glob("*.py"))
        out = self._git("ls-tree", "--name-only", f"{self.rev}:{rel}")
        return sorted(n for n in out.split() if n.endswith(".py"))

    def _git(self, *args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(self.path), *args], capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise SourceError(f"git cannot be run ({exc.strerror})") from None
        if done.returncode != 0:
            raise SourceError(f"git {' '.join(args)} in {self.path}: {done.stderr.strip()}")
        return done.stdout


def _parse(tree: SourceTree, rel: str) -> ast.Module:
    try:
        return ast.parse(tree.read(rel), filename=rel)
    except SyntaxError as exc:
        raise SourceError(f"{rel} is not Python this tool can parse: {exc}") from None


def _function(module: ast.Module, name: str) -> ast.FunctionDef:
    for node in ast.walk(module):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise SourceError(f"no function {name}() found")


def dataclass_defaults(module: ast.Module, cls: str) -> dict[str, Any]:
    """Field -> default of a dataclass (literal defaults and ``field(default=...)`` only)."""
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            out: dict[str, Any] = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value:
                    value = item.value
                    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":
                        kw = {k.arg: k.value for k in value.keywords}
                        value = kw.get("default")
                        if value is None:
                            continue
                    try:
                        out[item.target.id] = ast.literal_eval(value)
                    except ValueError:
                        continue
            return out
    raise SourceError(f"no class {cls} found")


def _type_name(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Name):
        return TYPE_NAMES.get(node.id, node.id)
    if isinstance(node, ast.Attribute):  # json.loads
        return "json" if node.attr == "loads" else node.attr
    if isinstance(node, ast.Lambda):  # the comma-separated lists of args_utils.py
        text = ast.unparse(node.body)
        if "split" in text:
            return "int_list_csv" if "int(" in text else "str_list_csv"
    return ast.unparse(node)


def _value(node: ast.expr, fields: dict[str, Any]) -> Any:
    if isinstance(node, ast.IfExp):
        return _value(node.orelse, fields)  # the environment unset
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "EngineArgs":
        return fields.get(node.attr)
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def add_argument_flags(function: ast.FunctionDef, fields: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ``*.add_argument(...)`` of ``function`` as a flag-table entry, keyed by its long name."""
    flags: dict[str, dict[str, Any]] = {}
    for node in ast.walk(function):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        longs = [n for n in names if n.startswith("--")]
        if not longs:
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        action_node = kw.get("action")
        action = None
        if isinstance(action_node, ast.Constant):
            action = action_node.value
        elif isinstance(action_node, ast.Attribute):
            action = action_node.attr
        elif isinstance(action_node, ast.Name):
            action = action_node.id
        spec: dict[str, Any] = {}
        boolean = action in ("store_true", "BooleanOptionalAction", "DeprecatedOptionWarning")
        spec["type"] = "bool" if boolean else (_type_name(kw.get("type")) or "str")
        if action is not None:
            spec["action"] = action
        if action == "BooleanOptionalAction":
            spec["negative_form"] = "--no-" + longs[0][2:]
        if "default" in kw:
            spec["default"] = _value(kw["default"], fields)
        else:  # argparse: False for store_true, else None
            spec["default"] = False if action in ("store_true", "DeprecatedOptionWarning") else None
        if "choices" in kw:
            spec["choices"] = list(_value(kw["choices"], fields))
        aliases = [n for n in names if n != longs[0]]
        if aliases:
            spec["aliases"] = aliases
        if "nargs" in kw:
            spec["nargs"] = _value(kw["nargs"], fields)
        flags[longs[0]] = spec
    return flags


def string_list(module: ast.Module, name: str) -> list[str]:
    """A module-level list of strings (``NAME = [...]`` or ``NAME: List[str] = [...]``)."""
    for node in module.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            return list(ast.literal_eval(node.value))
    raise SourceError(f"no list {name} found")


def enum_values(module: ast.Module, cls: str) -> list[str]:
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return [
                item.value.value
                for item in node.body
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
            ]
    raise SourceError(f"no class {cls} found")


def registered_names(tree: SourceTree, folder: str, manager: str) -> list[str]:
    """Names registered with ``@<manager>.register_module("name")`` in a folder's modules."""
    out: list[str] = []
    for name in tree.names(folder):
        for node in ast.walk(_parse(tree, f"{folder}/{name}")):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "register_module"
                and getattr(node.func.value, "id", "") == manager
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                out.append(node.args[0].value)
    return sorted(set(out))


def read_release(tree: SourceTree) -> dict[str, Any]:
    """One release's entry of ``worker_runtime/config/engine_flags.json``, read from its source tree."""
    engine = _parse(tree, ENGINE_FILE)
    fields = dataclass_defaults(engine, "EngineArgs")
    flags = add_argument_flags(_function(_parse(tree, SERVER_FILE), "make_arg_parser"), fields)
    flags.update(add_argument_flags(_function(engine, "add_cli_args"), fields))
    entry: dict[str, Any] = {"flags": dict(sorted(flags.items()))}
    entry["quantization"] = string_list(_parse(tree, QUANT_FILE), "QUANTIZATION_METHODS")
    for key, (folder, manager) in PARSER_DIRS.items():
        entry[key] = registered_names(tree, folder, manager)
    entry["load_choices"] = enum_values(_parse(tree, CONFIG_FILE), "LoadChoices")
    return entry

"""The structure docs/ARCHITECTURE.md describes: every builder package has a layer there, imports go
downward only (no sibling imports within a layer), the runtime never imports the builder, the builder reads
only the runtime's configuration package, the runtime's packages import downward only (config <- engine <-
serve), no module imports itself through a cycle (imports inside functions included), and
docs/development.md's module list names exactly the files of builder/."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "builder"
RUNTIME = ROOT / "worker_runtime"
# The one package of the runtime the builder may import: what it declares, nothing that serves.
RUNTIME_PACKAGE_THE_BUILDER_READS = "worker_runtime.config"
# Each runtime package -> the runtime packages it may import (its own always).
RUNTIME_PACKAGE_MAY_IMPORT = {
    "config": set(),
    "engine": {"config"},
    "serve": {"config", "engine"},
}


def layers() -> dict[str, int]:
    """unit of builder/ (a package folder, or a module file) -> its layer, from ARCHITECTURE.md's table."""
    out = {}
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for layer, units in re.findall(r"^\| (\d+) \| ([^|]+) \|", text, re.MULTILINE):
        for unit in re.findall(r"`([^`]+)`", units):
            out[unit.rstrip("/")] = int(layer)
    return out


def unit_of(path: Path) -> str:
    """The top-level unit of builder/ a file belongs to: 'variant' for builder/variant/checks/x.py."""
    return path.relative_to(BUILDER).parts[0]


def imports(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """(imported module, line) of every import in a file, nested ones included, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.append((base, node.lineno))
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return out


def target_unit(module: str) -> str | None:
    """The builder unit an imported name lands in (None: not the builder, or the package itself)."""
    parts = module.split(".")
    if parts[0] != "builder" or len(parts) == 1:
        return None
    name = parts[1]
    if (BUILDER / name).is_dir() or (BUILDER / f"{name}.py").is_file():
        return name if (BUILDER / name).is_dir() else f"{name}.py"
    return "__init__.py"  # `from builder import __version__`


def builder_files() -> list[Path]:
    return sorted(p for p in BUILDER.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_builder_package_has_a_layer():
    known = layers()
    units = {unit_of(p) for p in builder_files()}
    assert units - set(known) == set(), "add the package to the layer table of docs/ARCHITECTURE.md"
    assert set(known) - units == set(), "docs/ARCHITECTURE.md names a package builder/ does not have"


def test_builder_imports_go_downward_only():
    layer = layers()
    wrong = []
    for path in builder_files():
        source = unit_of(path)
        for module, line in imports(path):
            target = target_unit(module)
            if target is None or target == source:
                continue
            if layer[target] > layer[source] or (layer[target] == layer[source]):
                where = f"{path.relative_to(ROOT)}:{line}"
                wrong.append(
                    f"{where}: {source} (layer {layer[source]}) imports {module} (layer {layer[target]})"
                )
    assert wrong == [], "\n".join(wrong)


def test_the_runtime_never_imports_the_builder():
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "worker_runtime").rglob("*.py"))
        for module, line in imports(path)
        if module.split(".")[0] == "builder"
    ]
    assert wrong == []


def builder_reads_outside_config(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Imports of the runtime, in ``paths``, that land outside its configuration package."""
    wrong = []
    for path in paths:
        for module, line in imports(path, root):
            parts = module.split(".")
            if parts[0] != "worker_runtime":
                continue
            if len(parts) == 1:  # `from worker_runtime import x`: x decides
                continue
            if ".".join(parts[:2]) != RUNTIME_PACKAGE_THE_BUILDER_READS:
                wrong.append(f"{path.relative_to(root).as_posix()}:{line}: {module}")
    return wrong


def test_the_builder_reads_only_the_runtimes_config_package():
    assert builder_reads_outside_config(builder_files()) == []


def runtime_package_of(module: str) -> str | None:
    """'serve' for worker_runtime.serve.handler; None for the top-level package and its __main__."""
    parts = module.split(".")
    if parts[0] != "worker_runtime" or len(parts) < 2 or parts[1] not in RUNTIME_PACKAGE_MAY_IMPORT:
        return None
    return parts[1]


def runtime_imports_against_the_package_rule(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Imports, in ``paths``, from one runtime package into another it may not import."""
    wrong = []
    for path in paths:
        rel = path.relative_to(root / "worker_runtime").parts
        source = rel[0] if len(rel) > 1 else None  # files at the top (__main__) may import any package
        for module, line in imports(path, root):
            target = runtime_package_of(module)
            if source is None or target is None or target == source:
                continue
            if target not in RUNTIME_PACKAGE_MAY_IMPORT[source]:
                wrong.append(f"{path.relative_to(root).as_posix()}:{line}: {source} imports {module}")
    return wrong


def runtime_files() -> list[Path]:
    return sorted(p for p in RUNTIME.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_runtime_package_has_a_rule():
    packages = {p.name for p in RUNTIME.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert packages == set(RUNTIME_PACKAGE_MAY_IMPORT)


def test_runtime_packages_import_downward_only():
    """config imports neither engine nor serve; engine may import config; serve config and engine."""
    assert runtime_imports_against_the_package_rule(runtime_files()) == []


def test_the_package_rules_catch_a_violation(tmp_path: Path):
    """The two rules above fail on imports that break them (in a copy of the layout, not the repository)."""
    bad_config = tmp_path / "worker_runtime" / "config" / "probe.py"
    bad_engine = tmp_path / "worker_runtime" / "engine" / "probe.py"
    bad_builder = tmp_path / "builder" / "probe.py"
    for path in (bad_config, bad_engine, bad_builder):
        path.parent.mkdir(parents=True)
    bad_config.write_text("from ..engine import ports\n", encoding="utf-8")
    bad_engine.write_text("def f():\n    import worker_runtime.serve.handler\n", encoding="utf-8")
    bad_builder.write_text("from worker_runtime.engine.ports import free_ports\n", encoding="utf-8")
    assert runtime_imports_against_the_package_rule([bad_config, bad_engine], tmp_path) == [
        "worker_runtime/config/probe.py:1: config imports worker_runtime.engine",
        "worker_runtime/config/probe.py:1: config imports worker_runtime.engine.ports",
        "worker_runtime/engine/probe.py:2: engine imports worker_runtime.serve.handler",
    ]
    assert builder_reads_outside_config([bad_builder], tmp_path) == [
        "builder/probe.py:1: worker_runtime.engine.ports",
        "builder/probe.py:1: worker_runtime.engine.ports.free_ports",
    ]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles(paths: list[Path], root: Path = ROOT) -> list[list[str]]:
    """Every cycle of imports among ``paths`` (imports inside functions included), each as the modules
    on it, sorted; an import of a name resolves to the module that defines it."""
    modules = {module_name(p, root): p for p in paths}

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in modules:
                return ".".join(parts[:end])
        return None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(resolve(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                edges.update(resolve(f"{base}.{a.name}") for a in node.names)
        graph[name] = {e for e in edges if e is not None and e != name}
    # Tarjan's strongly connected components: a component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def test_no_import_cycle_in_the_builder_or_the_runtime():
    """Shared pieces live in leaf modules: no module reaches itself through imports, hidden or not."""
    assert import_cycles(builder_files()) == []
    assert import_cycles(runtime_files()) == []


def test_a_planted_cycle_is_found(tmp_path: Path):
    """local -> lb at the top, lb -> endpoint inside a function, endpoint -> local by a relative import."""
    package = tmp_path / "builder" / "verify"
    package.mkdir(parents=True)
    (tmp_path / "builder" / "__init__.py").write_text("", encoding="utf-8")
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "local.py").write_text("from builder.verify.lb import run\n", encoding="utf-8")
    (package / "lb.py").write_text("def run():\n    from builder.verify import endpoint\n", encoding="utf-8")
    (package / "endpoint.py").write_text("from .local import Progress\n", encoding="utf-8")
    (package / "report.py").write_text("from builder.verify.local import Progress\n", encoding="utf-8")
    paths = sorted(tmp_path.rglob("*.py"))
    assert import_cycles(paths, tmp_path) == [
        ["builder.verify.endpoint", "builder.verify.lb", "builder.verify.local"]
    ]
    (package / "lb.py").write_text("def run():\n    pass\n", encoding="utf-8")
    assert import_cycles(paths, tmp_path) == []


def test_importing_the_cli_loads_no_runtime_dependency_nor_the_docker_sdk():
    code = "import sys, builder.cli; print(sorted({m.split('.')[0] for m in sys.modules}))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(ast.literal_eval(result.stdout))
    assert loaded & {"runpod", "aiohttp", "docker", "openai", "requests"} == set()


def _readme_lists(top: str, names: str) -> dict[str, set[str]]:
    """docs/development.md "How it works": each folder under ``top`` -> the names (regex ``names``)
    its bullet lists."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    section = text[text.index("## How it works") : text.index("## Commands")]
    listed: dict[str, set[str]] = {}
    for bullet in re.split(r"\n- ", section)[1:]:
        head = re.match(rf"`({top}/[^`]*)`", bullet)
        if head:
            listed[head.group(1).rstrip("/")] = set(re.findall(names, bullet[head.end() :]))
    return listed


def test_readme_module_list_agrees_with_the_builder_folder():
    listed = _readme_lists("builder", r"`([\w.]+(?:\.py|\.yaml|/))`")
    folders = sorted(p for p in [BUILDER, *BUILDER.rglob("*")] if p.is_dir() and p.name != "__pycache__")
    expected = {p.relative_to(ROOT).as_posix() for p in folders}
    assert set(listed) == expected, "one bullet per folder in docs/development.md"
    for folder in folders:
        actual = {
            p.name + ("/" if p.is_dir() else "")
            for p in folder.iterdir()
            if p.name != "__pycache__"
            and p.name != "__init__.py"
            and (p.is_dir() or p.suffix in (".py", ".yaml"))
        }
        names = listed[folder.relative_to(ROOT).as_posix()] - {"__init__.py"}
        where = f"docs/development.md 'How it works', `{folder.relative_to(ROOT)}/`"
        assert names <= actual, f"{where} lists what is not there: {sorted(names - actual)}"
        assert actual <= names, f"{where} does not list: {sorted(actual - names)}"


def test_the_runtime_module_list_agrees_with_the_runtime_folder():
    """One bullet per folder of worker_runtime/ in docs/development.md, naming exactly its files."""
    listed = _readme_lists("worker_runtime", r"`([\w.]+\.(?:py|json|txt))`")
    folders = sorted(p for p in [RUNTIME, *RUNTIME.rglob("*")] if p.is_dir() and p.name != "__pycache__")
    assert set(listed) == {p.relative_to(ROOT).as_posix() for p in folders}, "one bullet per folder"
    for folder in folders:
        actual = {p.name for p in folder.iterdir() if p.suffix in (".py", ".json", ".txt")}
        actual.discard("__init__.py")
        names = listed[folder.relative_to(ROOT).as_posix()]
        where = f"docs/development.md 'How it works', `{folder.relative_to(ROOT)}/`"
        assert names <= actual, f"{where} lists what is not there: {sorted(names - actual)}"
        assert actual <= names, f"{where} does not list: {sorted(actual - names)}"

"""The README's way to run the runtime from the checkout works as a user types it: its install file covers
every package the runtime imports, and its command serves a working `--local` endpoint on the engine
stand-in, without a GPU, that the README's `openai` snippet calls."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import sys
from pathlib import Path

from tests.runtime.conftest import LOCAL_READY, RuntimeProcess
from worker_runtime.engine.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_START = README.index("### Run the runtime from the checkout")
SECTION = README[_START : README.index("\n## ", _START)]
BASH = [
    line.strip() for block in re.findall(r"```bash\n(.*?)```", SECTION, re.S) for line in block.splitlines()
]
(PYTHON_SNIPPET,) = re.findall(r"```python\n(.*?)```", SECTION, re.S)


def _requirement_names(path: Path) -> set[str]:
    """Names pinned by a requirements file, following its -r and -c lines."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(("-r ", "-c ")):
            names |= _requirement_names(path.parent / line[3:].strip())
        elif "==" in line:
            names.add(line.split("==")[0].strip().lower())
    return names


def test_the_install_file_covers_every_package_the_runtime_imports():
    (install,) = [line for line in BASH if line.startswith("pip install")]
    target = ROOT / shlex.split(install)[-1]
    assert target.is_file(), install
    installed = _requirement_names(target)
    imported = set()
    for path in (ROOT / "worker_runtime").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # An import guarded by `except ImportError` is optional (llguidance: the guidance backend's library,
        # in the image's guided decoding layer when that backend is on), not one the runtime needs.
        optional = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.Try)
            and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers
            )
            for stmt in node.body
            for inner in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"worker_runtime", "__future__"}
    assert {"runpod", "aiohttp"} <= third_party and third_party <= installed, sorted(third_party - installed)


def test_the_readme_command_serves_a_local_endpoint_the_snippet_calls(tmp_path: Path):
    (command,) = [line for line in BASH if "worker_runtime" in line and "--local" in line]
    words = shlex.split(command)
    assignments = {}
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        assignments[key] = value
    assert words[:3] == ["python", "-m", "worker_runtime"], command
    args = words[3:]
    port = free_ports(1)[0]  # the machine is shared: the README's port may be taken
    args[args.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FD_", "RUNPOD_", "PYTHON"))}
    env.update(assignments, FD_LOG_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    runtime = RuntimeProcess(args, env, port)
    try:
        runtime.wait_output(LOCAL_READY, timeout=60)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(PYTHON_SNIPPET.replace(":8000/", f":{port}/"), {})
        assert printed.getvalue().strip(), runtime.output
        assert "Traceback" not in runtime.output
    finally:
        runtime.stop()

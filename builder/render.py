"""Rendering: Jinja templates -> the files of a build directory (pure), and writing/comparing them.

StrictUndefined everywhere; `dockerfile` quotes a value for ENV/LABEL/ARG (newlines and control
characters refused), `dockerjson` for exec-form lists and JSON-form COPY, `shell` for shell-form RUN
words, `tojson` for the JSON manifests (validated after rendering).
"""

from __future__ import annotations

import json
import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .compat import Compat
from .hub import check_hub_json, check_tests_json, hub_json, tests_json
from .paths import RUNTIME_DIR, TEMPLATES_DIR
from .resolve import Resolved
from .settings_spec import BY_ENV

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PLACEHOLDER_MARK = "<!-- build-context placeholder -->"
# Folders of the build directory whose contents are staged (not rendered): --check and golden files
# compare only their placeholder.
STAGED_DIRS = ("weights", "wheels")
RUNTIME_IGNORE = ("__pycache__", ".pytest_cache", ".ruff_cache")


class RenderError(Exception):
    """A value cannot be placed safely, or a rendered manifest is invalid."""


def _refuse_control(value: Any) -> str:
    text = str(value)
    if _CONTROL.search(text):
        raise RenderError(f"value {text!r} contains a newline or control character; refused in a Dockerfile")
    return text


def dockerfile_quote(value: Any) -> str:
    """A double-quoted Dockerfile word for ENV, LABEL and ARG (Docker unescapes \\\\, \\" and \\$)."""
    text = _refuse_control(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def dockerjson(value: Any) -> str:
    """A JSON string for exec-form instructions (no variable expansion there)."""
    return json.dumps(_refuse_control(value))


def shell_quote(value: Any) -> str:
    return shlex.quote(_refuse_control(value))


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@lru_cache(maxsize=2)
def environment(templates_dir: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(dockerfile=dockerfile_quote, dockerjson=dockerjson, shell=shell_quote, tojson=to_json)
    return env


def _runtime_files(runtime_dir: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(runtime_dir.rglob("*")):
        rel = path.relative_to(runtime_dir)
        if (
            path.is_dir()
            or any(part in RUNTIME_IGNORE for part in rel.parts)
            or path.suffix in (".pyc", ".pyo")
        ):
            continue
        out[f"worker_runtime/{rel.as_posix()}"] = path.read_bytes()
    return out


def _placeholder(kind: str) -> str:
    if kind == "wheels":
        body = (
            "Optional wheelhouse. `python build.py --wheelhouse DIR` puts wheels here; when this folder "
            "holds wheels the image installs the runtime requirements from it with --no-index."
        )
    else:
        body = (
            "Model weights. Filled by `python build.py --weights-from DIR` (or a host-side download of a "
            "gated model); when only this file is here the build downloads the pinned revision."
        )
    return f"{PLACEHOLDER_MARK}\n{body}\n"


def context(resolved: Resolved, compat: Compat) -> dict[str, Any]:
    env = resolved.env_strings()
    image_env = {k: v for k, v in env.items() if k != "FASTDEPLOY_VERSION"}
    settings_rows = []
    for setting in BY_ENV.values():
        if not setting.in_hub:
            continue
        value = env.get(setting.env)
        if value is None and setting.default not in (None, ""):
            value = (
                str(setting.default).lower() if isinstance(setting.default, bool) else str(setting.default)
            )
        exposed = setting.env in resolved.expose
        advanced = setting.advanced if resolved.advanced is None else setting.env in resolved.advanced
        settings_rows.append(
            {
                "env": setting.env,
                "value": value if value not in (None, "") else "(unset)",
                "hub": ("advanced" if advanced else "yes") if exposed else "no",
                "description": setting.description,
            }
        )
    return {
        "r": resolved,
        "image_env": image_env,
        "settings_rows": settings_rows,
        "served_name": env.get("SERVED_MODEL_NAME", env.get("MODEL", "")),
        "hub": hub_json(resolved, compat),
        "tests": tests_json(resolved),
        "weights_spec": {
            "repo": resolved.model_id,
            "revision": resolved.revision,
            "source": resolved.model_source,
            "allow_patterns": resolved.allow_patterns,
            "gated": resolved.gated,
            "dest": resolved.model_dir,
        },
    }


def render_files(resolved: Resolved, compat: Compat, runtime_dir: Path = RUNTIME_DIR) -> dict[str, bytes]:
    """Every file of the build directory, path -> bytes (staged contents excluded)."""
    env = environment()
    ctx = context(resolved, compat)
    text: dict[str, str] = {}
    try:
        text["Dockerfile"] = env.get_template("Dockerfile.j2").render(ctx)
        text[".runpod/hub.json"] = env.get_template("hub.json.j2").render(ctx)
        text[".runpod/tests.json"] = env.get_template("tests.json.j2").render(ctx)
        text["README.md"] = env.get_template("README.md.j2").render(ctx)
        text["handler.py"] = env.get_template("handler.py.j2").render(ctx)
        if resolved.bake:
            text["fetch_weights.py"] = (TEMPLATES_DIR / "fetch_weights.py").read_text(encoding="utf-8")
            text["weights.json"] = to_json(ctx["weights_spec"]) + "\n"
            text["weights/README.md"] = _placeholder("weights")
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template uses an undefined value: {exc}") from exc
    text["wheels/README.md"] = _placeholder("wheels")
    expected = sorted(resolved.expose, key=[s.env for s in BY_ENV.values()].index)
    problems = [f".runpod/hub.json: {p}" for p in check_hub_json(text[".runpod/hub.json"], expected)]
    problems += [f".runpod/tests.json: {p}" for p in check_tests_json(text[".runpod/tests.json"])]
    if problems:
        raise RenderError("rendered manifests are invalid:\n  " + "\n  ".join(problems))
    files = {path: body.encode("utf-8") for path, body in text.items()}
    for name in ("requirements.txt", "constraints.txt"):  # the runtime's pins, read by the deps stage
        files[name] = (runtime_dir / name).read_bytes()
    files.update(_runtime_files(runtime_dir))
    return dict(sorted(files.items()))


def _is_staged(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] in STAGED_DIRS and rel != f"{parts[0]}/README.md"


def write_files(out: Path, files: dict[str, bytes]) -> list[str]:
    """Write the rendered files; stale rendered files are removed, staged weights/wheels kept.
    Returns the paths that changed."""
    changed = []
    out.mkdir(parents=True, exist_ok=True)
    for rel in diff_files(out, files)["extra"]:
        (out / rel).unlink()
    for rel, body in files.items():
        target = out / rel
        if target.is_file() and target.read_bytes() == body:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        changed.append(rel)
    for kind in STAGED_DIRS:
        if f"{kind}/README.md" in files:
            (out / kind).mkdir(exist_ok=True)
    return changed


def diff_files(out: Path, files: dict[str, bytes]) -> dict[str, list[str]]:
    """Differences between a directory and a fresh render: missing, changed, extra (staged ignored)."""
    missing, changed, extra = [], [], []
    for rel, body in files.items():
        target = out / rel
        if not target.is_file():
            missing.append(rel)
        elif target.read_bytes() != body:
            changed.append(rel)
    if out.is_dir():
        for path in sorted(out.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(out).as_posix()
            if rel in files or _is_staged(rel) or any(p in RUNTIME_IGNORE for p in rel.split("/")):
                continue
            if rel.endswith((".pyc", ".pyo")):
                continue
            extra.append(rel)
    return {"missing": missing, "changed": changed, "extra": extra}

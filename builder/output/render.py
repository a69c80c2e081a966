"""Rendering: Jinja templates -> the files of a build directory (pure), and writing/comparing them.

StrictUndefined everywhere; `dockerfile` quotes a value for ENV/LABEL/ARG (newlines and control
characters refused), `dockerjson` for exec-form lists and JSON-form COPY, `shell` for shell-form RUN
words, `tojson` for the JSON manifests (validated after rendering).
"""

from __future__ import annotations

import json
import os
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from builder.compat import Compat
from builder.errors import BuilderError
from builder.output.hub import check_hub_json, check_tests_json, hub_json, runtime_problems, tests_json
from builder.paths import RUNTIME_DIR, TEMPLATES_DIR
from builder.variant.models import CONTROL_CHARS
from builder.variant.resolve import CACHED_ONLY, Resolved
from builder.variant.settings_spec import BY_ENV, FIXED_BY_LISTING, in_settings_order

PLACEHOLDER_MARK = "<!-- build-context placeholder -->"
# Folders of the build directory whose contents are staged (not rendered): --check and golden files
# compare only their placeholder.
STAGED_DIRS = ("weights", "wheels")
RUNTIME_IGNORE = ("__pycache__", ".pytest_cache", ".ruff_cache")
# Written into every build directory: the rendered paths. A re-render removes only files listed there.
MANIFEST = ".rendered"
MANIFEST_HEADER = "# Rendered by build.py; a re-render removes only listed files no longer rendered.\n"
# Every file is written beside its place under this suffix, then renamed over it: an interrupted render
# leaves whole files only (old or new), and such a leftover, which the next render removes.
WRITING_SUFFIX = ".rendering"


# The guided decoding backend's pins, read by the Dockerfile's guided stage (only when a backend is on).
GUIDED_REQUIREMENTS = "guided-requirements.txt"


def guided_requirements(resolved: Resolved) -> str:
    """The backend's exact pins, one a line (the release's requirements_guided_decoding.txt entries)."""
    header = (
        f"# Guided decoding backend {resolved.guided_backend} of FastDeploy {resolved.release}: "
        "its exact pins (builder/compat/fastdeploy_releases.yaml).\n"
    )
    return header + "".join(f"{pin}\n" for pin in resolved.guided_packages)


class RenderError(BuilderError):
    """A value cannot be placed safely, or a rendered manifest is invalid (exit status 2)."""


def _refuse_control(value: Any) -> str:
    text = str(value)
    if CONTROL_CHARS.search(text):
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


def copied_files(resolved: Resolved, runtime_dir: Path = RUNTIME_DIR) -> dict[str, Path]:
    """The files of a build directory copied as they are (not rendered): path there -> source file.
    The worker_runtime/ package (caches left out), its pins, and the fixed files of templates/."""
    out = {
        ".dockerignore": TEMPLATES_DIR / "dockerignore",
        # Run by every data stage of the Dockerfile: fixed times, modes and owners for reproducible layers.
        "normalize_tree.py": TEMPLATES_DIR / "normalize_tree.py",
    }
    if resolved.bake:
        out["fetch_weights.py"] = TEMPLATES_DIR / "fetch_weights.py"
    for name in ("requirements.txt", "constraints.txt"):  # the runtime's pins, read by the deps stage
        out[name] = runtime_dir / name
    for path in sorted(runtime_dir.rglob("*")):
        rel = path.relative_to(runtime_dir)
        if (
            path.is_dir()
            or any(part in RUNTIME_IGNORE for part in rel.parts)
            or path.suffix in (".pyc", ".pyo")
        ):
            continue
        out[f"worker_runtime/{rel.as_posix()}"] = path
    return out


def placeholder(kind: str) -> str:
    if kind == "wheels":
        body = (
            "Optional wheelhouse. `python build.py --wheelhouse DIR` puts wheels here; when this folder "
            "holds wheels the image installs the runtime requirements (and the guided decoding backend's "
            "pins, when one is on) from it with --no-index."
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
        if not setting.in_hub or (setting.env in CACHED_ONLY and resolved.weights != "cached"):
            continue
        value = env.get(setting.env)
        if value is None and setting.default not in (None, ""):
            value = (
                str(setting.default).lower() if isinstance(setting.default, bool) else str(setting.default)
            )
        exposed = setting.env in resolved.expose
        advanced = setting.advanced if resolved.advanced is None else setting.env in resolved.advanced
        hub = ("advanced" if advanced else "yes") if exposed else "no"
        settings_rows.append(
            {
                "env": setting.env,
                "value": value if value not in (None, "") else "(unset)",
                "hub": "fixed" if exposed and setting.env in FIXED_BY_LISTING else hub,
                "description": setting.description,
            }
        )
    return {
        "r": resolved,
        "image_env": image_env,
        # The port a load-balancing image serves on (the runtime's PORT default); None for queue images.
        "lb_port": BY_ENV["PORT"].default if resolved.endpoint_type == "load_balancer" else None,
        "settings_rows": settings_rows,
        "served_name": env.get("SERVED_MODEL_NAME") or resolved.model_id,
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
    """Every file of the build directory, path -> bytes: the rendered ones and the copied ones (staged
    weights and wheels excluded)."""
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
            text["weights.json"] = to_json(ctx["weights_spec"]) + "\n"
            text["weights/README.md"] = placeholder("weights")
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template uses an undefined value: {exc}") from exc
    text["wheels/README.md"] = placeholder("wheels")
    if resolved.guided_packages:
        text[GUIDED_REQUIREMENTS] = guided_requirements(resolved)
    expected = in_settings_order(resolved.expose)
    problems = [f".runpod/hub.json: {p}" for p in check_hub_json(text[".runpod/hub.json"], expected)]
    problems += [f".runpod/tests.json: {p}" for p in check_tests_json(text[".runpod/tests.json"])]
    # What the image sets and hub.json offers must be what the runtime accepts for the release.
    problems += [f"runtime settings: {p}" for p in runtime_problems(resolved, compat, ctx["hub"])]
    if problems:
        raise RenderError("rendered manifests are invalid:\n  " + "\n  ".join(problems))
    files = {path: body.encode("utf-8") for path, body in text.items()}
    files.update((rel, source.read_bytes()) for rel, source in copied_files(resolved, runtime_dir).items())
    return dict(sorted(files.items()))


def _is_staged(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] in STAGED_DIRS and rel != f"{parts[0]}/README.md"


def _is_cache(rel: str) -> bool:
    return any(p in RUNTIME_IGNORE for p in rel.split("/")) or rel.endswith((".pyc", ".pyo"))


def _is_leftover(rel: str) -> bool:
    """A file an interrupted render was writing (never renamed into place)."""
    name = rel.rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(WRITING_SUFFIX) and not _is_staged(rel)


def _write_whole(target: Path, body: bytes) -> None:
    """`body` at `target`, all or nothing: written beside it, then renamed over it (a rename replaces the
    name, so a hard link or symlink at `target` is never written through)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    beside = target.with_name(f".{target.name}{WRITING_SUFFIX}")
    beside.write_bytes(body)
    os.replace(beside, target)


def _remove_leftovers(out: Path) -> None:
    for path in sorted(out.rglob(f"*{WRITING_SUFFIX}")):
        if path.is_file() and _is_leftover(path.relative_to(out).as_posix()):
            path.unlink()


def manifest_text(files: dict[str, bytes]) -> str:
    """The `.rendered` manifest: every rendered path, sorted, one a line (byte-stable)."""
    return MANIFEST_HEADER + "".join(f"{rel}\n" for rel in sorted(files))


def read_manifest(out: Path) -> list[str] | None:
    """Paths listed by the build directory's manifest (None: no manifest). Unsafe entries are dropped."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    paths = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        rel = line.strip()
        if not rel or rel.startswith("#"):
            continue
        parts = rel.split("/")
        if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts) or rel == MANIFEST:
            continue
        paths.append(rel)
    return paths


def _foreign_files(out: Path, files: dict[str, bytes]) -> list[str]:
    """Files of a directory without a manifest that a render would overwrite or could not account for:
    anything but staged weights/wheels, caches and files identical to the fresh render."""
    foreign = []
    for path in sorted(out.rglob("*")):
        if path.is_dir():
            continue
        rel = path.relative_to(out).as_posix()
        if _is_staged(rel) or _is_cache(rel) or _is_leftover(rel):
            continue
        if rel in files and path.is_file() and not path.is_symlink() and path.read_bytes() == files[rel]:
            continue
        foreign.append(rel)
    return foreign


def write_files(out: Path, files: dict[str, bytes]) -> list[str]:
    """Write the rendered files and the `.rendered` manifest. Only files listed in the previous manifest
    and no longer rendered are removed; nothing else is ever deleted (staged weights/wheels and unrelated
    files stay). A non-empty directory without a manifest is refused unless it holds only staged files
    and files identical to this render. Returns the paths that changed.

    No interruption leaves a directory the next render refuses or cannot complete: the manifest is written
    first listing every path this render may leave (the previous ones and the new ones), then each file
    whole (`_write_whole`), then the final manifest."""
    previous = read_manifest(out) if out.is_dir() else None
    if previous is None and out.is_dir():
        foreign = _foreign_files(out, files)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise RenderError(
                f"{out} is not empty and was not rendered by build.py (it has no {MANIFEST} manifest): "
                f"rendering would overwrite or mix with {shown}. Choose a new or empty --out directory, or "
                "remove that directory first if it is an old build directory"
            )
    changed = []
    out.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    manifest = manifest_text(files).encode("utf-8")
    if previous is None or set(previous) != set(files):
        _write_whole(out / MANIFEST, manifest_text(dict.fromkeys([*(previous or []), *files], b"")).encode())
    for rel in _stale(out, files, previous):
        target = out / rel
        target.unlink()
        changed.append(rel)
        parent = target.parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    for rel, body in files.items():
        target = out / rel
        if target.is_file() and not target.is_symlink() and target.read_bytes() == body:
            continue
        if target.is_dir() and not target.is_symlink():
            raise RenderError(f"{target} is a directory where build.py renders a file: remove it")
        _write_whole(target, body)
        changed.append(rel)
    for kind in STAGED_DIRS:
        if f"{kind}/README.md" in files:
            (out / kind).mkdir(exist_ok=True)
    if not (out / MANIFEST).is_file() or (out / MANIFEST).read_bytes() != manifest:
        _write_whole(out / MANIFEST, manifest)
    return changed


def _stale(out: Path, files: dict[str, bytes], previous: list[str] | None) -> list[str]:
    """Files listed in the previous manifest, no longer rendered, still present (staged ones excepted)."""
    return [
        rel
        for rel in previous or []
        if rel not in files and not _is_staged(rel) and ((out / rel).is_file() or (out / rel).is_symlink())
    ]


def unrelated_files(out: Path, files: dict[str, bytes]) -> list[str]:
    """Files of a build directory that no render wrote (not rendered, not in the manifest, not staged
    weights/wheels, not caches): a render leaves them, and they travel in the build context."""
    if not out.is_dir():
        return []
    listed = set(read_manifest(out) or [])
    return [
        rel
        for rel in (p.relative_to(out).as_posix() for p in sorted(out.rglob("*")) if not p.is_dir())
        if rel not in files
        and rel != MANIFEST
        and rel not in listed
        and not _is_staged(rel)
        and not _is_cache(rel)
        and not _is_leftover(rel)
    ]


def diff_files(out: Path, files: dict[str, bytes]) -> dict[str, list[str]]:
    """Differences between a directory and a fresh render: missing, changed (the manifest included), and
    extra (files the previous manifest lists that are no longer rendered). Unrelated files are ignored."""
    missing, changed = [], []
    for rel, body in files.items():
        target = out / rel
        if not target.is_file():
            missing.append(rel)
        elif target.read_bytes() != body:
            changed.append(rel)
    previous = read_manifest(out) if out.is_dir() else None
    manifest = out / MANIFEST
    if previous is None:
        missing.append(MANIFEST)
    elif manifest.read_bytes() != manifest_text(files).encode("utf-8"):
        changed.append(MANIFEST)
    return {"missing": missing, "changed": changed, "extra": _stale(out, files, previous)}

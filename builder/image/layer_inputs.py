"""Labels that record what determines each data layer of an image, so anyone can tell why a layer changed.

    io.runpod.fastdeploy.layer.weights  {"model", "revision", "source", "files"} (files: hash of the staged
                                        weights, "sha256  size  path" lines) or, for an in-build download,
                                        {"model", "revision", "source", "allow_patterns"}
    io.runpod.fastdeploy.layer.deps     {"lock": hash of requirements.txt + constraints.txt,
                                         "wheels": hash of the wheel file names, or "index"}
    io.runpod.fastdeploy.layer.guided   {"backend", "packages": its pins, "wheels": as deps} (a backend on)
    io.runpod.fastdeploy.layer.code     {"code": hash of handler.py + worker_runtime/ (path and content)}
    org.opencontainers.image.base.name  the base image reference the build used (a digest when pinned)

Same inputs, same values: these labels never differ between two builds that give the same layers.
Pure functions over the build directory (reads files, writes nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from builder.variant.resolve import Resolved

WEIGHTS = "io.runpod.fastdeploy.layer.weights"
DEPS = "io.runpod.fastdeploy.layer.deps"
GUIDED = "io.runpod.fastdeploy.layer.guided"
CODE = "io.runpod.fastdeploy.layer.code"
BASE_NAME = "org.opencontainers.image.base.name"

# Kept out of every layer by the context's .dockerignore and the stages' normalization.
_SKIPPED_PARTS = {"__pycache__", ".cache", ".huggingface"}
_CHUNK = 1 << 20


def _staged_files(folder: Path) -> list[Path]:
    """Files that reach a layer from a staged folder (its README placeholder and caches excluded)."""
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or _SKIPPED_PARTS & set(rel.parts) or path.suffix in (".pyc", ".pyo"):
            continue
        files.append(path)
    return files


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_hash(root: Path, files: Iterable[Path]) -> str:
    """sha256 of "sha256  size  relative/path" lines, one per file, sorted by path."""
    lines = sorted(
        f"{_file_sha256(p)}  {p.stat().st_size}  {p.relative_to(root).as_posix()}\n" for p in files
    )
    return "sha256:" + hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _compact(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def is_placeholder(path: Path) -> bool:
    return path.name == "README.md" and path.read_text(encoding="utf-8", errors="replace").startswith(
        "<!-- build-context placeholder -->"
    )


def layer_labels(build_dir: Path, resolved: Resolved, base_image: str | None) -> dict[str, str]:
    """The data-layer labels of a staged build directory."""
    build_dir = Path(build_dir)
    labels: dict[str, str] = {}
    if base_image:
        labels[BASE_NAME] = base_image
    if resolved.bake:
        weights = build_dir / "weights"
        files = [p for p in _staged_files(weights) if not is_placeholder(p)]
        record = {"model": resolved.model_id, "revision": resolved.revision, "source": resolved.model_source}
        if files:
            record["files"] = tree_hash(weights, files)
        else:
            record["allow_patterns"] = list(resolved.allow_patterns)
        labels[WEIGHTS] = _compact(record)
    lock = hashlib.sha256()
    for name in ("requirements.txt", "constraints.txt"):
        lock.update(name.encode() + b"\0" + (build_dir / name).read_bytes() + b"\0")
    wheels = sorted(p.name for p in _staged_files(build_dir / "wheels") if p.suffix == ".whl")
    wheels_hash = "sha256:" + hashlib.sha256("\n".join(wheels).encode()).hexdigest() if wheels else "index"
    labels[DEPS] = _compact({"lock": "sha256:" + lock.hexdigest(), "wheels": wheels_hash})
    if resolved.guided_packages:
        labels[GUIDED] = _compact(
            {"backend": resolved.guided_backend, "packages": resolved.guided_packages, "wheels": wheels_hash}
        )
    code = [build_dir / "handler.py", *_staged_files(build_dir / "worker_runtime")]
    labels[CODE] = _compact({"code": tree_hash(build_dir, code)})
    return labels

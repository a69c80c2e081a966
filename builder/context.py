"""Build-context staging: fill weights/ (--weights-from, or a host-side download of a gated model)
and wheels/ (--wheelhouse) of a rendered build directory. Hard links when possible, else copies.
A token is only ever used here, on the host: never in a build argument, layer or label."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from .resolve import Resolved


class StagingError(Exception):
    """A staging input is missing or unusable; the CLI prints it and exits with status 2."""


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def fill_dir(source: Path, target: Path, *, suffixes: tuple[str, ...] = ()) -> int:
    """Link or copy every file of `source` into `target` (keeping the relative layout). Returns the count."""
    if not source.is_dir():
        raise StagingError(f"{source} is not a directory")
    count = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file() or (suffixes and not path.name.endswith(suffixes)):
            continue
        rel = path.relative_to(source)
        if any(part.startswith(".cache") for part in rel.parts):
            continue
        _link_or_copy(path, target / rel)
        count += 1
    return count


def stage(
    build_dir: Path,
    resolved: Resolved,
    *,
    weights_from: Path | None = None,
    wheelhouse: Path | None = None,
    environ: Mapping[str, str] | None = None,
    log=print,
) -> None:
    environ = os.environ if environ is None else environ
    if wheelhouse is not None:
        n = fill_dir(wheelhouse, build_dir / "wheels", suffixes=(".whl",))
        if n == 0:
            raise StagingError(f"--wheelhouse {wheelhouse}: no .whl files found")
        log(f"staged {n} wheels into {build_dir / 'wheels'}")
    if weights_from is not None:
        if not resolved.bake:
            raise StagingError(
                f"--weights-from: variant {resolved.name} does not bake weights (model.bake: false)"
            )
        n = fill_dir(weights_from, build_dir / "weights")
        log(f"staged {n} weight files into {build_dir / 'weights'}")
    elif resolved.bake and resolved.gated:
        staged = [p for p in (build_dir / "weights").rglob("*") if p.is_file() and p.name != "README.md"]
        if staged:
            return
        token = environ.get("HF_TOKEN")
        if not token or resolved.model_source != "huggingface":
            raise StagingError(
                f"{resolved.model_id} is gated: set HF_TOKEN on this host (the builder downloads the weights "
                "here; the token never enters the image) or pass --weights-from DIR"
            )
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise StagingError(
                "downloading a gated model on the host needs huggingface_hub installed "
                "(or pass --weights-from DIR)"
            ) from exc
        log(f"downloading {resolved.model_id} on the host into {build_dir / 'weights'}")
        snapshot_download(
            repo_id=resolved.model_id,
            revision=resolved.revision or "main",
            local_dir=str(build_dir / "weights"),
            allow_patterns=resolved.allow_patterns or None,
            token=token,
        )

"""Build-context staging: fill weights/ (--weights-from, or a host-side download of a gated model)
and wheels/ (--wheelhouse) of a rendered build directory. Hard links when possible, else copies.
A token is only ever used here, on the host: never in a build argument, layer or label.

Every build resets both folders to exactly what its flags give (their README placeholders kept), so a
build without --weights-from never bakes weights left by an earlier one and two --weights-from never
merge. The one reuse: a host download of a gated model is kept for the same repository, revision and
patterns (recorded in weights/.cache/, which .dockerignore keeps out of the image)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from builder.compat import load_compat
from builder.errors import BuilderError, redact
from builder.image.weights_folder import folder_heads_problems, folder_problems
from builder.output.render import placeholder
from builder.variant.resolve import Resolved

HOST_DOWNLOAD_MARK = Path(".cache") / "fastdeploy-runpod-host-download.json"


class StagingError(BuilderError):
    """A staging input is missing or unusable; the CLI prints it and exits with status 2."""


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        # Never read multi-GB shards to compare them: the same file (hard link), or a copy with the same
        # size and modification time (copy2 keeps it), is kept.
        if dst.exists() and not dst.is_symlink():
            if os.path.samefile(src, dst):
                return
            a, b = src.stat(), dst.stat()
            if a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns:
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


def reset_dir(target: Path, kind: str) -> None:
    """Empty a staged folder, leaving only its README placeholder."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    if target.is_dir():
        for child in list(target.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    target.mkdir(parents=True, exist_ok=True)
    (target / "README.md").write_text(placeholder(kind), encoding="utf-8")


def _download_spec(resolved: Resolved) -> dict:
    return {
        "repo": resolved.model_id,
        "revision": resolved.revision or "main",
        "allow_patterns": list(resolved.allow_patterns),
    }


def _host_download_kept(weights: Path, resolved: Resolved) -> bool:
    mark = weights / HOST_DOWNLOAD_MARK
    try:
        return json.loads(mark.read_text(encoding="utf-8")) == _download_spec(resolved)
    except (OSError, ValueError):
        return False


def host_download(weights: Path, resolved: Resolved, token: str, log=print) -> None:
    """Download a gated model on the host into weights/; every failure is one StagingError paragraph
    (the token is never printed)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise StagingError(
            f"{resolved.model_id} is gated and is downloaded on this host, which needs the huggingface_hub "
            "package: pip install huggingface_hub (or download it yourself and pass --weights-from DIR)"
        ) from exc
    log(f"downloading {resolved.model_id} on the host into {weights}")
    try:
        snapshot_download(
            repo_id=resolved.model_id,
            revision=resolved.revision or "main",
            local_dir=str(weights),
            allow_patterns=resolved.allow_patterns or None,
            token=token,
        )
    except Exception as exc:  # HTTP, auth, network and disk errors all end the same way
        detail = " ".join(redact(str(exc), [token]).split())[:400]
        raise StagingError(
            f"downloading the gated model {resolved.model_id} (revision {resolved.revision or 'main'}) on "
            f"this host failed ({type(exc).__name__}: {detail}). Check that HF_TOKEN is valid and that its "
            "account has accepted the model's license on huggingface.co, and that this host can reach "
            "huggingface.co; or download the weights yourself and pass --weights-from DIR"
        ) from None
    mark = weights / HOST_DOWNLOAD_MARK
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(json.dumps(_download_spec(resolved), sort_keys=True) + "\n", encoding="utf-8")


def check_weights_from(weights_from: Path, resolved: Resolved) -> None:
    """StagingError, one paragraph, unless `weights_from` is a model folder the variant can bake: a build
    would otherwise bake a model no worker can start."""
    if not resolved.bake:
        raise StagingError(
            f"--weights-from: variant {resolved.name} does not bake weights (model.bake: false)"
        )
    if not weights_from.is_dir():
        raise StagingError(f"--weights-from {weights_from} is not a directory")
    advice = (
        "point it at the downloaded model folder (config.json, the weight files, the tokenizer), or leave "
        "it out to download the weights during the build"
    )
    if not any(p.is_file() for p in weights_from.rglob("*")):
        raise StagingError(
            f"--weights-from {weights_from} holds no file: an image without weights cannot serve "
            f"{resolved.model_id}; {advice}"
        )
    problems = folder_problems(weights_from, load_compat().releases_file.model_folder)
    if not problems:
        problems = folder_heads_problems(weights_from, resolved.gpu_count)
    if problems:
        raise StagingError(
            f"--weights-from {weights_from} is not a model folder FastDeploy can start on: "
            f"{'; '.join(problems)}. A worker of this image would fail at start; {advice}. Nothing was built."
        )


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
    if weights_from is not None:
        check_weights_from(weights_from, resolved)
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise StagingError(f"--wheelhouse {wheelhouse} is not a directory")
    for flag, source, kind in (
        ("--weights-from", weights_from, "weights"),
        ("--wheelhouse", wheelhouse, "wheels"),
    ):
        if source is None:
            continue
        a, b = source.resolve(), (build_dir / kind).resolve()
        if a == b or a in b.parents or b in a.parents:
            raise StagingError(
                f"{flag} {source} overlaps the build directory's {kind}/ folder, which every build empties "
                "and refills: pass a folder outside it"
            )
    reset_dir(build_dir / "wheels", "wheels")
    if wheelhouse is not None:
        n = fill_dir(wheelhouse, build_dir / "wheels", suffixes=(".whl",))
        if n == 0:
            raise StagingError(f"--wheelhouse {wheelhouse}: no .whl files found")
        log(f"staged {n} wheels into {build_dir / 'wheels'}")
    if not resolved.bake:
        return
    weights = build_dir / "weights"
    if weights_from is not None:
        reset_dir(weights, "weights")
        n = fill_dir(weights_from, weights)
        log(f"staged {n} weight files into {weights}")
    elif resolved.gated:
        if _host_download_kept(weights, resolved):
            log(f"reusing the host download of {resolved.model_id} in {weights}")
            return
        reset_dir(weights, "weights")
        token = environ.get("HF_TOKEN")
        if not token or resolved.model_source != "huggingface":
            raise StagingError(
                f"{resolved.model_id} is gated: set HF_TOKEN on this host (the builder downloads the weights "
                "here; the token never enters the image) or pass --weights-from DIR"
            )
        host_download(weights, resolved, token, log)
    else:
        reset_dir(weights, "weights")

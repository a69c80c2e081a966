"""Build with BuildKit through the Docker CLI (``build.py build --builder buildkit``).

The Docker SDK speaks only the classic builder's API, so BuildKit builds run the ``docker`` command: the
buildx plugin (``docker buildx build --load``) when it is installed, else a client before 23.0 with
BuildKit built in (``DOCKER_BUILDKIT=1 docker build``). The context is the same archive the classic route
sends (fixed times, modes and owners; see context_tar), written to the command's standard input, so both
builders produce the same layers. BuildKit runs the weights, dependency and code stages in parallel; the
image also carries BuildKit's inline cache, so a later ``--cache-from`` of it can reuse its layers.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from builder.errors import redact
from builder.image import context_tar
from builder.image.docker import (
    ImageError,
    base_image_of,
    build_error_paragraph,
    report_built,
    require_tags,
    secrets_of_env,
)


def _docker_clis() -> list[str]:
    """Every distinct ``docker`` executable on PATH (a newer client may lack plugins an older one has)."""
    found: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "docker"
        known = {str(Path(f).resolve()) for f in found}
        if candidate.is_file() and os.access(candidate, os.X_OK) and str(candidate.resolve()) not in known:
            found.append(str(candidate))
    return found


def _quiet(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def buildkit_cli() -> tuple[list[str], dict[str, str]] | None:
    """(argv prefix, extra environment) of a Docker CLI that builds with BuildKit into the engine, or None."""
    clis = _docker_clis()
    for cli in clis:
        if _quiet([cli, "buildx", "version"]).returncode == 0:
            return [cli, "buildx", "build", "--load"], {}
    for cli in clis:
        version = _quiet([cli, "version", "--format", "{{.Client.Version}}"]).stdout.strip()
        match = re.match(r"(\d+)\.", version)
        if match and int(match.group(1)) < 23:
            return [cli, "build"], {"DOCKER_BUILDKIT": "1"}
    return None


def buildkit_argv(
    prefix: Sequence[str],
    *,
    tags: Sequence[str],
    labels: Mapping[str, str],
    build_args: Mapping[str, str],
    cache_from: Sequence[str],
    iidfile: Path,
) -> list[str]:
    """The command line of one build whose context comes from standard input (pure)."""
    argv = [*prefix, "--progress=plain", "--iidfile", str(iidfile)]
    for tag in tags:
        argv += ["--tag", tag]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    for key, value in {**build_args, "BUILDKIT_INLINE_CACHE": "1"}.items():
        argv += ["--build-arg", f"{key}={value}"]
    for ref in cache_from:
        argv += ["--cache-from", ref]
    return [*argv, "-"]


def failure_message(lines: Sequence[str]) -> str:
    """The most telling line of a failed BuildKit build's output (pure)."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith(("ERROR:", "error:", "failed to solve", "ERROR ")) or "failed to solve" in text:
            return re.sub(r"^(ERROR|error):\s*", "", text)
    tail = [line.strip() for line in lines if line.strip()]
    return tail[-1] if tail else "the docker command failed without output"


def from_failure(message: str) -> bool:
    """Whether BuildKit failed while resolving a FROM image (its messages for that phase; pure)."""
    phrases = ("failed to create LLB definition", "failed to resolve source metadata")
    return any(phrase in message for phrase in phrases)


def _feed(process: subprocess.Popen, context_dir: Path, errors: list[BaseException]) -> None:
    try:
        for chunk in context_tar.stream(context_dir):
            process.stdin.write(chunk)
    except BrokenPipeError:
        pass  # the command stopped reading: its own output says why
    except OSError as exc:
        errors.append(exc)
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()


def build_image_buildkit(
    context_dir: Path,
    *,
    tags: Sequence[str],
    labels: Mapping[str, str],
    build_args: Mapping[str, str],
    out: TextIO,
    cache_from: Sequence[str] = (),
) -> str:
    """Build ``context_dir`` with BuildKit, apply every tag, return the image id (``sha256:...``)."""
    require_tags(tags)
    found = buildkit_cli()
    if found is None:
        raise ImageError(
            "BuildKit builds need the Docker CLI with the buildx plugin (or a docker client before 23.0, "
            "which has BuildKit built in), and none was found on PATH. Install the buildx plugin or build "
            "with --builder classic."
        )
    prefix, env = found
    base_image = base_image_of(Path(context_dir), build_args)
    secrets = secrets_of_env()
    on = f" on {base_image}" if base_image else ""
    out.write(f"Building {tags[0]} from {context_dir} with BuildKit{on}\n")
    out.flush()
    with tempfile.TemporaryDirectory(prefix="buildkit-") as tmp:
        iidfile = Path(tmp) / "iid"
        argv = buildkit_argv(
            prefix, tags=tags, labels=labels, build_args=build_args, cache_from=cache_from, iidfile=iidfile
        )
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        errors: list[BaseException] = []
        feeder = threading.Thread(target=_feed, args=(process, Path(context_dir), errors), daemon=True)
        feeder.start()
        last: deque[str] = deque(maxlen=60)
        assert process.stdout is not None
        for raw in process.stdout:
            line = redact(raw.decode("utf-8", errors="replace"), secrets)
            last.append(line)
            out.write(line)
            out.flush()
        status = process.wait()
        feeder.join(timeout=60)
        if errors:
            raise ImageError(f"The build context could not be sent: {errors[0]}.")
        if status != 0:
            message = failure_message(list(last))
            raise ImageError(
                build_error_paragraph(
                    message,
                    step="",
                    in_from_step=bool(base_image and base_image in message) or from_failure(message),
                    base_image=base_image,
                )
            )
        image_id = iidfile.read_text(encoding="utf-8").strip() if iidfile.is_file() else ""
    if not image_id:
        raise ImageError(
            "BuildKit finished without reporting an image id; the output above shows what happened."
        )
    report_built(out, image_id, tags)
    return image_id

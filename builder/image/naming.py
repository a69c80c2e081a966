"""How a built image is named and described: its tags and its labels, in one place.

Tags: ``<repository>:<variant>-<toolkit version>``, ``<repository>:<variant>``, the variant's
``image.tags`` and each ``--tag``; ``--registry HOST[/NAMESPACE]`` replaces everything before the image's
own name (a registry that ends with that name is taken as the whole repository, and says so).
Labels: the variant's own (``Resolved.labels``, also rendered into the Dockerfile), plus what
only the build knows (OCI ``created``, ``revision``, ``source``) and the resolved variant as JSON.
The grammar of repositories and tags is the variant model's (``builder.variant.models``).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import subprocess
from collections.abc import Sequence

from builder.errors import UsageError
from builder.paths import ROOT
from builder.variant.models import TAG_PATTERN
from builder.variant.resolve import Resolved

VARIANT_LABEL = "io.runpod.fastdeploy.variant"


def check_tags(tags: Sequence[str]) -> None:
    """Each ``--tag`` is a valid image tag, else UsageError."""
    for tag in tags:
        if not re.match(TAG_PATTERN, tag):
            raise UsageError(
                f"--tag {tag!r} is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)"
            )


def image_name(repository: str) -> str:
    """The image's own name: the last part of its repository."""
    return repository.rsplit("/", 1)[-1]


def names_the_repository(repository: str, registry: str | None) -> bool:
    """Whether `--registry` already ends with the image's own name: a whole repository
    (`ghcr.io/acme/fastdeploy-worker`, as image.repository is written), not a namespace to append it to."""
    return (
        bool(registry)
        and "/" in registry.rstrip("/")
        and image_name(registry.rstrip("/")) == image_name(repository)
    )


def with_registry(repository: str, registry: str | None) -> str:
    """`--registry HOST[/NAMESPACE]` replaces everything before the image's own name; a registry that ends
    with that name is the whole repository (never the name twice)."""
    if not registry:
        return repository
    if names_the_repository(repository, registry):
        return registry.rstrip("/")
    return f"{registry.rstrip('/')}/{image_name(repository)}"


def registry_note(repository: str, registry: str | None) -> str | None:
    """One line saying that `--registry` was read as a whole repository, or None."""
    if not names_the_repository(repository, registry):
        return None
    assert registry is not None
    whole = registry.rstrip("/")
    return (
        f"note: registry {whole} ends with the image's name {image_name(repository)!r}, so it is used as the "
        f"whole repository ({whole}:TAG), not as a namespace ({whole}/{image_name(repository)}:TAG)"
    )


def image_tags(resolved: Resolved, registry: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    repo = with_registry(resolved.repository, registry)
    tags = [f"{resolved.name}-{resolved.toolkit_version}", resolved.name, *resolved.extra_tags, *extra]
    return list(dict.fromkeys(f"{repo}:{t}" for t in tags))


def git_revision() -> str | None:
    """The commit of the toolkit's checkout, or None (not a git checkout, no git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def variant_label(resolved: Resolved) -> str:
    """The resolved variant as compact JSON (the value of the ``io.runpod.fastdeploy.variant`` label)."""
    return json.dumps(resolved.to_dict(), sort_keys=True, separators=(",", ":"))


def image_labels(
    resolved: Resolved, *, created: str | None = None, revision: str | None = None
) -> dict[str, str]:
    labels = dict(resolved.labels)
    labels["org.opencontainers.image.created"] = created or _dt.datetime.now(_dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    rev = revision if revision is not None else git_revision()
    if rev:
        labels["org.opencontainers.image.revision"] = rev
    if resolved.source_url:
        labels["org.opencontainers.image.source"] = resolved.source_url
    labels[VARIANT_LABEL] = variant_label(resolved)
    return dict(sorted(labels.items()))

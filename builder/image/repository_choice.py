"""Where images go: a repository the user chose, never the shipped example.

The shipped base (variants/_base.yaml) names ``EXAMPLE_REPOSITORY`` so that render, check, list, print
and matrix work on a fresh clone. build, push, test and deploy need a repository the user chose: the
``--registry`` flag, the environment variable ``REGISTRY_ENV`` (same meaning as the flag), or
``image.repository`` in their own variant file.
"""

from __future__ import annotations

import os
import re

from builder.errors import BuilderError
from builder.variant.models import REPOSITORY_PATTERN
from builder.variant.resolve import Resolved

# The placeholder of variants/_base.yaml (a test keeps the two equal): it names no real repository.
EXAMPLE_REPOSITORY = "docker.io/example/fastdeploy-worker"
REGISTRY_ENV = "FASTDEPLOY_RUNPOD_REGISTRY"


class RepositoryNotChosen(BuilderError):
    """An image would go to the example repository; the message names the three ways to choose one."""

    def lines(self) -> list[str]:
        return [f"error: {self}"]


def chosen_registry(flag: str | None, environ: dict[str, str] | None = None) -> str | None:
    """``--registry`` when given, else the environment variable; a malformed value is refused."""
    environ = os.environ if environ is None else environ
    if flag:
        source, value = "--registry", flag
    elif environ.get(REGISTRY_ENV):
        source, value = REGISTRY_ENV, environ[REGISTRY_ENV]
    else:
        return None
    if not re.match(REPOSITORY_PATTERN, value):
        raise RepositoryNotChosen(f"{source} {value!r} is not HOST[:PORT][/NAMESPACE] in lower case")
    return value


def is_example(repository: str) -> bool:
    return repository == EXAMPLE_REPOSITORY


def require_chosen(resolved: Resolved, registry: str | None, verb: str) -> None:
    """Refuse to `verb` an image of the example repository unless a registry replaces it."""
    if registry or not is_example(resolved.repository):
        return
    raise RepositoryNotChosen(
        f"`{verb}` of {resolved.name} would use {EXAMPLE_REPOSITORY}, the placeholder repository of the "
        f"shipped base file, which is nobody's registry. Choose yours in one of three ways: pass --registry "
        f"HOST[/NAMESPACE] (e.g. --registry docker.io/yourname), set the environment variable "
        f"{REGISTRY_ENV} to the same value, or set image.repository in your variant file "
        f"(e.g. image: {{repository: docker.io/yourname/fastdeploy-worker}})."
    )

"""The Python packages FastDeploy imports at start for a guided decoding backend, checked before the engine
starts so that a missing one is one paragraph, not an engine traceback after the weights loaded."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

SETTING = "GUIDED_DECODING_BACKEND"
# FastDeploy's config imports xgrammar for every backend but off, llguidance for guidance, and both import
# torch (docs/upstream-notes.md).
PACKAGES: dict[str, tuple[str, ...]] = {
    "xgrammar": ("xgrammar", "torch"),
    "guidance": ("llguidance", "xgrammar", "torch"),
}


class BackendMissing(Exception):
    """The guided decoding backend's packages are not in the image (exit 1)."""


def missing_packages(backend: str, find_spec: Callable[[str], Any] = importlib.util.find_spec) -> str | None:
    """One paragraph when the backend's packages are not importable by the engine (None: they are)."""
    missing = [name for name in PACKAGES.get(backend, ()) if find_spec(name) is None]
    if not missing:
        return None
    return (
        f"{SETTING}={backend} needs the Python packages {', '.join(PACKAGES[backend])}, and this image "
        f"lacks {', '.join(missing)}: FastDeploy would fail to start. Use an image built from a variant with "
        f"engine.guided_decoding_backend: {backend} (it installs the release's pins), or set {SETTING}=off "
        "(structured-output requests are then refused). See docs/structured-outputs.md."
    )

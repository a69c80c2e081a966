"""Semantic checks of a parsed variant against the compatibility data, composed: each check is a function
of one ``Context`` that adds what it finds to the one error list, and declares the fields it reads (a
check whose fields failed to parse is skipped: see ``builder.variant.parse``).

The checks, in the order their errors are reported: ``model`` (name, baking), ``release`` (release,
install route, CUDA, the release's lists and flags, extra engine arguments), ``guided`` (the guided
decoding backend), ``settings`` (engine.settings, engine.env), ``pools`` (pools, GPU count), ``sizing``
(memory, disk, context length), ``archs`` (GPU architectures of quantization kernels and release builds),
``hub`` (offered settings, presets, test jobs), then ``model`` again (baking a local path, weights and bake
agreeing, cached weights pinned).
"""

from __future__ import annotations

from builder.compat import Compat
from builder.errors import ErrorList
from builder.variant.checks import (
    archs,
    guided,
    hub,
    model,
    pools,
    release,
    revision,
    settings,
    sizing,
)
from builder.variant.checks.context import Check, Context
from builder.variant.loader import Loaded
from builder.variant.models import Variant

CHECKS: tuple[Check, ...] = (
    model.name_matches_file,
    model.download_keeps_what_fastdeploy_reads,
    revision.revision_is_a_git_revision,
    model.loader_reads_the_weights_format,
    *release.CHECKS,
    *guided.CHECKS,
    *settings.CHECKS,
    *pools.CHECKS,
    *sizing.CHECKS,
    *archs.CHECKS,
    *hub.CHECKS,
    model.bake_needs_a_download,
    model.weights_and_bake_agree,
    model.cached_weights_are_a_pinned_huggingface_commit,
)


def run_checks(
    variant: Variant,
    loaded: Loaded,
    compat: Compat,
    errors: ErrorList,
    dropped: frozenset[tuple[str, ...]] = frozenset(),
) -> None:
    """Every check whose fields parsed; each adds its problems to `errors`."""
    ctx = Context(variant, loaded, compat, errors)
    for check in CHECKS:
        if not check.blocked_by(dropped):
            check(ctx)


__all__ = ["CHECKS", "Check", "Context", "run_checks"]

"""The endpoint's cached model, for variants whose weights come from RunPod's model cache: the model
reference RunPod takes and the one step that sets it, printed by the deploy (pure).

Why a printed step and not a request: REST v2, which every other write of the deploy uses, has no field for
it; only GraphQL ``saveEndpoint`` does, and that mutation replaces the whole endpoint, so a call from here
would have to restate every field the REST v2 deploy set (GPU exclusions, endpoint type, ...) or silently
reset them, and GraphQL itself is being retired (sources: docs/upstream-notes.md). Neither REST v2 nor
GraphQL's read gives the reference back to REST v2 clients, so the deploy cannot tell whether it is set: it
prints the step on every run, once, and a worker without the cache still starts (download fallback) and says
so in its log."""

from __future__ import annotations

from collections.abc import Callable

from builder.variant.resolve import Resolved

HF_BASE = "https://huggingface.co"


def model_reference(resolved: Resolved, env: dict[str, str]) -> str | None:
    """``https://huggingface.co/ORG/NAME:REVISION`` (the form runpodctl's ``--model-reference`` takes) for a
    cached variant, with ``--env`` overrides of MODEL and
    MODEL_REVISION; None for other variants."""
    if resolved.weights != "cached":
        return None
    model = env.get("MODEL") or resolved.model_id
    revision = env.get("MODEL_REVISION") or resolved.revision or "main"
    return f"{HF_BASE}/{model}:{revision}"


def print_cache_step(
    reference: str | None, endpoint_name: str, endpoint_id: str, say: Callable[[str], None]
) -> None:
    """The step that makes RunPod cache the model for the endpoint (nothing for other variants)."""
    if reference is None:
        return
    say(
        "cached model: workers of this variant read the weights from RunPod's model cache; the endpoint "
        "must name the model, which RunPod's REST API cannot set. Set it once (again after a change of "
        "model or revision):"
    )
    say(f"  console: Serverless > {endpoint_name} > Manage > Edit Endpoint > Model: {reference}")
    say(f"  or:      runpodctl serverless update {endpoint_id} --model-reference {reference}")
    say("  until then workers download the weights at start (logged with a warning; MODEL_CACHE_FALLBACK)")

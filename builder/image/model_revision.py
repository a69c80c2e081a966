"""Which commit a build bakes: a variant that names a branch (or no revision, i.e. ``main``) is resolved
to the commit the branch points to now, once, on the host, before anything slow happens.

Why here and not in the image: the commit then lands in the Dockerfile's weights spec, the weights layer
label and ``io.runpod.fastdeploy.model-revision``, so the image says which weights it holds, Docker's
layer cache is keyed on the commit (a cached layer of last month's ``main`` is never reused once the
branch moves) and a misspelt model id or a refused token fails in a second instead of after the base
image pull. The variant file is not changed: ``python -m builder.tools.pin_revisions`` writes pins.

The hub is asked as ``huggingface_hub``'s ``HfApi.model_info`` asks it:
``GET {endpoint}/api/models/{repo}/revision/{quote(rev, safe='')}``, the commit in ``sha``; the endpoint
is ``HF_ENDPOINT`` when set (as huggingface_hub reads it), ``HF_TOKEN`` is sent when set and never printed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from builder.compat import Compat
from builder.errors import BuilderError, redact
from builder.paths import display
from builder.variant.checks.revision import is_commit
from builder.variant.pipeline import Prepared
from builder.variant.resolve import resolve

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_BRANCH = "main"


class HubError(BuilderError):
    """The hub could not name a commit. Exit 2 when it answered (no such model or branch, a refused
    token): the variant or the token is wrong; 1 when it could not be reached."""

    def __init__(self, where: str, reason: str, exit_code: int = 2):
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.exit_code = exit_code


def hub_endpoint(environ: Mapping[str, str]) -> str:
    return environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def hub_commit(endpoint: str, model_id: str, branch: str, token: str | None = None) -> str:
    """The commit `branch` of `model_id` points to now, from the hub's model-info API."""
    url = f"{endpoint.rstrip('/')}/api/models/{model_id}/revision/{urllib.parse.quote(branch, safe='')}"
    where = f"{model_id}@{branch}"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as reply:
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        # huggingface_hub's hf_raise_for_status reads these two headers; a 401 is also what a missing
        # repository gets (the hub does not tell it from a private one).
        said = [exc.headers.get(h) for h in ("X-Error-Code", "X-Error-Message")] if exc.headers else []
        detail = ": ".join(x for x in said if x)
        raise HubError(
            where, f"{url} answered HTTP {exc.code} {exc.reason}" + (f" ({detail})" if detail else "")
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise HubError(where, f"{endpoint} cannot be read ({redact(str(exc), [token])})", 1) from None
    sha = body.get("sha") if isinstance(body, dict) else None
    if not is_commit(sha):
        raise HubError(where, f"the hub sent no commit id in 'sha' ({sha!r})", 1)
    return sha


def branch_to_resolve(prepared: Prepared, weights_from: Path | None) -> str | None:
    """The branch a build of `prepared` must turn into a commit, or None: pinned already, nothing baked,
    weights staged from a folder (nothing is downloaded), or a source this hub client does not speak."""
    r = prepared.resolved
    if not r.bake or weights_from is not None or r.model_source != "huggingface" or is_commit(r.revision):
        return None
    return r.revision or DEFAULT_BRANCH


def at_commit(prepared: Prepared, commit: str, compat: Compat) -> Prepared:
    """`prepared` with `model.revision` set to `commit` and resolved again (pure): every rendered file and
    label that names the revision names the commit."""
    variant = prepared.variant
    model = variant.model.model_copy(update={"revision": commit})
    pinned = variant.model_copy(update={"model": model})
    return Prepared(prepared.path, prepared.loaded, pinned, resolve(pinned, compat))


def unreachable_advice(error: HubError, prepared: Prepared, branch: str) -> HubError:
    """The hub error as the build reports it: what failed, and the ways on (one paragraph)."""
    r = prepared.resolved
    if error.exit_code == 1:
        why = (
            "Check that this host reaches the hub (HF_ENDPOINT names a mirror): the in-build download "
            "needs it too"
        )
    else:
        why = (
            f"Check model.id ({r.model_id}) and model.revision ({branch}); a private or gated model needs "
            "HF_TOKEN set on this host (a token of an account that may read it)"
        )
    return HubError(
        "",
        f"{r.name}: the hub cannot say which commit {r.model_id}@{branch} is, so nothing was built "
        f"({error.reason}). {why}; "
        "or set model.revision to a commit id (`python -m builder.tools.pin_revisions "
        f"{display(prepared.path)}` writes it), or pass --weights-from DIR with the downloaded model",
        error.exit_code,
    )

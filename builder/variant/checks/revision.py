"""model.revision is something a model hub can resolve: a commit id (40 or 64 hex digits) or a branch or
tag name as `git check-ref-format` accepts one (plus no angle brackets or quotes: placeholders such as
`<commit id>` are refused before they reach the Dockerfile, a label and weights.json)."""

from __future__ import annotations

import re

from builder.variant.checks.context import Context, check

COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# git check-ref-format: no ASCII control character, space, ~ ^ : ? * [ \ ; we add < > " ' ` (never in a
# real branch of a model repository, always in a copied placeholder).
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\<>\"'`]")
RULE = (
    "a commit id (40 or 64 hex digits), or a branch or tag name: no spaces, control characters or "
    "~ ^ : ? * [ \\ < > quotes, no '..' or '@{', no part starting with '.' or ending with '.lock', "
    "not starting with '/' or '-' or ending with '/' or '.'"
)


def revision_problem(revision: str) -> str | None:
    """None when `revision` can name a git revision, else what is wrong with it (pure)."""
    if COMMIT.match(revision):
        return None
    if not revision:
        return "is empty"
    bad = sorted(set(_FORBIDDEN.findall(revision)))
    if bad:
        return f"contains {' '.join(repr(c) for c in bad)}"
    if ".." in revision or "@{" in revision or revision == "@" or "//" in revision:
        return "contains '..', '@{' or '//', or is '@'"
    if revision.startswith(("/", "-")) or revision.endswith(("/", ".")):
        return "starts with '/' or '-', or ends with '/' or '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in revision.split("/")):
        return "has a part starting with '.' or ending with '.lock'"
    return None


def is_commit(revision: str | None) -> bool:
    return bool(revision) and bool(COMMIT.match(revision or ""))


@check("model.revision", "model.source")
def revision_is_a_git_revision(ctx: Context) -> None:
    """model.revision names a commit, branch or tag (not a placeholder): else the in-build download fails
    only after the base image was pulled."""
    model = ctx.variant.model
    if model.revision is None or model.source == "local":
        return
    problem = revision_problem(model.revision)
    if problem:
        ctx.add(("model", "revision"), f"{problem}; model.revision must be {RULE}", model.revision)

"""builder/image/model_revision.py: which variants a build turns from a branch into a commit, the variant
at that commit (every rendered file and label names it), and the hub client's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.compat import load_compat
from builder.image.model_revision import HubError, at_commit, branch_to_resolve, hub_commit
from builder.output.render import render_files
from builder.variant.pipeline import find_variant, prepare
from tests.builder.helpers import MINIMAL_VARIANT

COMMIT = "ab" * 20


def _prepared(name: str):
    return prepare(find_variant(name))


def test_only_a_baked_hugging_face_branch_is_resolved(write_variant):
    assert branch_to_resolve(_prepared("ernie-0.3b"), None) == "main"
    assert branch_to_resolve(_prepared("ernie-0.3b"), Path("weights")) is None  # nothing downloaded
    assert branch_to_resolve(_prepared("qwen3-8b"), None) is None  # a commit already
    assert branch_to_resolve(_prepared("ernie-300b-a47b-wint4-tp4"), None) is None  # not baked
    assert branch_to_resolve(_prepared("qwen3-8b-cached"), None) is None  # not baked
    tagged = write_variant("tagged", MINIMAL_VARIANT.format(name="tagged") + "  revision: v1.2\n")
    assert branch_to_resolve(prepare(tagged), None) == "v1.2"
    scope = write_variant("scope", MINIMAL_VARIANT.format(name="scope") + "  source: modelscope\n")
    assert branch_to_resolve(prepare(scope), None) is None  # no commit API spoken for ModelScope


def test_at_commit_names_the_commit_everywhere_the_revision_appears():
    compat = load_compat()
    before = _prepared("ernie-0.3b")
    after = at_commit(before, COMMIT, compat)
    assert before.resolved.revision is None and after.resolved.revision == COMMIT
    assert after.variant.model.revision == COMMIT and before.variant.model.revision is None
    assert after.resolved.labels["io.runpod.fastdeploy.model-revision"] == COMMIT
    files = render_files(after.resolved, compat)
    assert f'"revision": "{COMMIT}"' in files["weights.json"].decode()
    assert COMMIT in files["Dockerfile"].decode() and COMMIT in files["README.md"].decode()
    # Nothing else changes: the same files, only the revision lines differ.
    unpinned = render_files(before.resolved, compat)
    assert set(files) == set(unpinned)
    changed = {k for k in files if files[k] != unpinned[k]}
    assert changed <= {"weights.json", "Dockerfile", "README.md", ".runpod/hub.json"}


def test_hub_client_errors_say_which_side_failed(hub):
    hub.every_main = False  # only the repositories and branches set here exist
    hub.branches[("org/model", "release/1")] = COMMIT
    assert hub_commit(hub.url, "org/model", "release/1") == COMMIT
    assert hub.asked[-1] == "/api/models/org/model/revision/release%2F1"  # quoted like huggingface_hub
    with pytest.raises(HubError) as no_branch:
        hub_commit(hub.url, "org/model", "dev")
    assert no_branch.value.exit_code == 2 and "HTTP 404 Not Found (RevisionNotFound" in no_branch.value.reason
    with pytest.raises(HubError) as no_repo:  # the hub answers a missing repository 401, as a private one
        hub_commit(hub.url, "org/none", "main")
    assert no_repo.value.exit_code == 2 and "HTTP 401 Unauthorized (RepoNotFound" in no_repo.value.reason
    with pytest.raises(HubError) as away:
        hub_commit("http://127.0.0.1:9", "org/model", "main", token="hf_PLANTED")
    assert away.value.exit_code == 1 and "cannot be read" in str(away.value)
    assert "PLANTED" not in str(away.value)

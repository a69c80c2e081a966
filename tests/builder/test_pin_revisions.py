"""`python -m builder.tools.pin_revisions` against a local fake of the hub's model-info API
(huggingface_hub's HfApi.model_info: GET {endpoint}/api/models/{repo}/revision/{quote(rev, safe='')},
the commit in `sha`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.builder.fake_hub import FakeHub
from tests.builder.helpers import ROOT

OLD, NEW = "1" * 40, "2" * 40


@pytest.fixture
def hub(monkeypatch) -> Iterator[FakeHub]:
    """A strict fake: only the branches a test sets exist (the conftest's answers every `main`)."""
    fake = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def variants(tmp_path):
    folder = tmp_path / "variants"
    shutil.copytree(ROOT / "variants", folder)
    return folder


def pin(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "builder.tools.pin_revisions", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_pins_every_baked_variant_and_rewrites_only_its_revision_line(hub, variants):
    before = (variants / "ernie-0.3b.yaml").read_text()
    ernie = ("0.3B-Paddle", "21B-A3B-Thinking", "21B-A3B-Paddle", "VL-28B-A3B-Paddle")
    for repo in (*(f"baidu/ERNIE-4.5-{e}" for e in ernie), "Qwen/Qwen3-8B"):
        hub.branches[(repo, "main")] = NEW
    result = pin("--endpoint", hub.url, "--variants-dir", str(variants))
    assert result.returncode == 0, result.stderr
    after = (variants / "ernie-0.3b.yaml").read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == [f'  revision: "{NEW}"  # main']
    assert after.replace(f'  revision: "{NEW}"  # main\n', "") == before
    assert "/api/models/baidu/ERNIE-4.5-0.3B-Paddle/revision/main" in hub.asked
    # Not baked: the 300B variant downloads at start and is not asked for.
    assert not any("300B" in path for path in hub.asked)
    assert "pinned   " in result.stdout and "ernie-0.3b.yaml" in result.stdout
    # The rewritten files are valid variants and pass --check.
    check = pin("--endpoint", hub.url, "--variants-dir", str(variants), "--check")
    assert check.returncode == 0 and "differs" not in check.stdout
    render = subprocess.run(
        [sys.executable, "build.py", "render", "ernie-0.3b", "--variants-dir", str(variants),
         "--out", str(variants.parent / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert render.returncode == 0, render.stderr
    assert f'"revision": "{NEW}"' in (variants.parent / "out" / "weights.json").read_text()


def test_check_exits_1_when_the_branch_moved_and_names_it(hub, variants):
    path = variants / "ernie-0.3b.yaml"
    path.write_text(
        path.read_text().replace(
            "  source: huggingface\n", f"  revision: {OLD}  # dev\n  source: huggingface\n"
        )
    )
    hub.branches[("baidu/ERNIE-4.5-0.3B-Paddle", "dev")] = NEW
    result = pin("--endpoint", hub.url, "--variants-dir", str(variants), "--check", "ernie-0.3b")
    assert result.returncode == 1
    assert f"baidu/ERNIE-4.5-0.3B-Paddle@dev -> {NEW} (the file pins {OLD})" in result.stdout
    assert f"revision: {OLD}  # dev" in path.read_text()  # --check changes nothing
    hub.branches[("baidu/ERNIE-4.5-0.3B-Paddle", "dev")] = OLD
    same = pin("--endpoint", hub.url, "--variants-dir", str(variants), "--check", "ernie-0.3b")
    assert same.returncode == 0 and "same" in same.stdout


def test_a_branch_named_as_revision_is_followed_and_replaced_by_its_commit(hub, variants):
    path = variants / "ernie-0.3b.yaml"
    path.write_text(
        path.read_text().replace(
            "  source: huggingface\n", "  revision: v2  # a tag\n  source: huggingface\n"
        )
    )
    hub.branches[("baidu/ERNIE-4.5-0.3B-Paddle", "v2")] = NEW
    assert pin("--endpoint", hub.url, "--variants-dir", str(variants), "ernie-0.3b").returncode == 0
    assert f'  revision: "{NEW}"  # v2\n' in path.read_text()


def test_an_unknown_revision_is_one_line_exit_2_and_the_token_is_sent_not_printed(hub, variants):
    import os

    hub.token = "hf_PLANTEDsecret"
    hub.branches[("baidu/ERNIE-4.5-0.3B-Paddle", "dev")] = NEW  # the repository exists, `main` does not
    env = {**os.environ, "HF_TOKEN": "hf_PLANTEDsecret", "HF_ENDPOINT": hub.url}
    result = pin("--variants-dir", str(variants), "ernie-0.3b", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "baidu/ERNIE-4.5-0.3B-Paddle@main" in result.stderr and "HTTP 404" in result.stderr
    assert "PLANTED" not in result.stderr + result.stdout
    assert hub.auth == ["Bearer hf_PLANTEDsecret"]


def test_a_model_block_it_cannot_rewrite_is_one_line_exit_2_and_the_others_are_pinned(hub, variants):
    flow = variants / "flow.yaml"
    flow.write_text(
        "extends: _base\nname: flow\ntitle: Flow\ndescription: A flow-style model block.\n"
        "model: {id: baidu/ERNIE-4.5-0.3B-Paddle, bake: true}\nhub:\n  gpu_ids: [ADA_24]\n"
    )
    before = flow.read_text()
    hub.branches[("baidu/ERNIE-4.5-0.3B-Paddle", "main")] = NEW
    result = pin("--endpoint", hub.url, "--variants-dir", str(variants), "flow", "ernie-0.3b")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "flow.yaml" in result.stderr and "block style" in result.stderr
    assert flow.read_text() == before
    assert f'  revision: "{NEW}"  # main\n' in (variants / "ernie-0.3b.yaml").read_text()

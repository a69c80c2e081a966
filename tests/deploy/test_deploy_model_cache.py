"""Deploying a variant whose weights come from RunPod's model cache: the REST v2 requests are the usual
ones (REST v2 has no model-reference field: the fake, validating against RunPod's OpenAPI schemas, refuses
one), and the deploy prints the one step that names the model on the endpoint, on every run, with the
endpoint's id, under --dry-run too, and never for other variants."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.deploy.conftest import cli

VARIANT = "qwen3-8b-cached"
IMAGE = "registry.example.com/team/fastdeploy-worker:qwen3-8b-cached-1.0.0"
REFERENCE = "https://huggingface.co/Qwen/Qwen3-8B:b968826d9c46dd6066d109eabc6255188de91218"


def deploy(*extra: str, variant: str = VARIANT):
    return cli("deploy", "--variant", variant, "--image", IMAGE, "--no-image-check", *extra)


def step_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("cached model:"))
    return lines[start : start + 4]


def test_deploy_prints_the_model_reference_step_and_stays_idempotent(fake_api):
    first = deploy()
    assert first.code == 0, first.text
    assert fake_api.invalid == []
    (endpoint,) = fake_api.endpoints.values()
    eid = endpoint["id"]
    # Nothing about the cache goes through REST v2: the worker finds the model itself.
    assert all("huggingface.co" not in (r.body or "") for r in fake_api.writes)
    steps = step_lines(first.out)
    assert "RunPod's REST API cannot set" in steps[0]
    assert steps[1] == f"  console: Serverless > {VARIANT} > Manage > Edit Endpoint > Model: {REFERENCE}"
    assert steps[2] == f"  or:      runpodctl serverless update {eid} --model-reference {REFERENCE}"
    assert first.out.count("cached model:") == 1

    writes = len(fake_api.writes)
    second = deploy()
    assert second.code == 0, second.text
    assert len(fake_api.writes) == writes and "no change" in second.out
    assert step_lines(second.out) == steps  # the same step again: REST v2 cannot tell whether it is set


def test_dry_run_prints_the_step_without_an_endpoint_id_or_a_request(fake_api, api_key):
    ran = deploy("--dry-run")
    assert ran.code == 0, ran.text
    assert fake_api.log == [] and api_key not in ran.text
    assert f"runpodctl serverless update <endpoint id> --model-reference {REFERENCE}" in ran.out


def test_env_overrides_of_model_and_revision_follow_into_the_reference(fake_api):
    commit = "0123456789abcdef0123456789abcdef01234567"
    ran = deploy("--dry-run", "--env", f"MODEL_REVISION={commit}", "--env", "MODEL=Qwen/Qwen3-0.6B")
    assert ran.code == 0, ran.text
    assert f"Model: https://huggingface.co/Qwen/Qwen3-0.6B:{commit}" in ran.out
    # The overrides go through the variant's checks: a branch is no cached snapshot.
    branch = deploy("--dry-run", "--env", "MODEL_REVISION=refs-pr-1")
    assert branch.code == 2 and "--env MODEL_REVISION=refs-pr-1" in branch.err


def test_other_variants_print_no_step(fake_api):
    ran = deploy(variant="ernie-0.3b")
    assert ran.code == 0, ran.text
    assert "cached model:" not in ran.out and "--model-reference" not in ran.out


def test_rest_v2_has_no_model_reference_field(fake_api, api_key):
    """Why the step is printed: RunPod's OpenAPI document refuses modelReferences on an endpoint."""
    body = {
        "name": "x", "type": "QUEUE", "image": "img:1", "gpu": {"pools": ["AMPERE_48"]},
        "modelReferences": [REFERENCE],
    }  # fmt: skip
    request = urllib.request.Request(
        f"{fake_api.url}/v2/serverless",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=30)
        status = 201
    except urllib.error.HTTPError as err:
        status = err.code
    assert status == 422
    assert any("modelReferences" in problem for problem in fake_api.invalid), fake_api.invalid
    fake_api.invalid.clear()

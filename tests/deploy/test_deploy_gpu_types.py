"""`deploy` and the GPU types of the pools: the types the variant's FastDeploy build cannot run travel as
`gpu.excludedTypes` (checked by the fake against its catalogue), stay on every PATCH of the pools, are
printed with the reason, and a variant that would keep no type is refused before any request."""

from __future__ import annotations

import json
import shutil

import requests

from tests.builder.helpers import MINIMAL_VARIANT, ROOT
from tests.deploy.conftest import VARIANT, cli
from tests.deploy.fake_management import FakeManagementApi, schema_errors
from worker_runtime.config.catalog import DEFAULT_RELEASE

IMAGE = "registry.example.com/team/fastdeploy-worker:ernie-0.3b-1.0.0"
MIG = "NVIDIA RTX PRO 6000 Blackwell Server Edition MIG {}"
SLICES = [MIG.format("1g.24gb"), MIG.format("2g.48gb")]  # sm120, in AMPERE_24 and ADA_48_PRO


def deploy(*extra: str, variant: str = VARIANT):
    return cli("deploy", "--variant", variant, "--image", IMAGE, "--no-image-check", *extra)


def test_first_deploy_excludes_the_types_the_build_cannot_run_and_says_why(fake_api):
    ran = deploy()
    assert ran.code == 0, ran.text
    create = json.loads(fake_api.writes[-1].body)
    assert create["gpu"]["excludedTypes"] == SLICES
    (endpoint,) = fake_api.endpoints.values()
    assert endpoint["gpu"]["excludedTypes"] == SLICES
    assert "excluded GPU types of the pools (2, sent as gpu.excludedTypes):" in ran.out
    assert (
        f"  {SLICES[0]}: sm120: the FastDeploy {DEFAULT_RELEASE} image is built for "
        "sm80, sm86, sm89, sm90 only" in ran.out
    )
    # Every type left in the selection is one the build runs (the catalogue is RunPod's, not ours).
    kept = {g["id"] for g in fake_api.gpus if g["pool"] in create["gpu"]["pools"]} - set(SLICES)
    assert "NVIDIA L4" in kept and "NVIDIA RTX A5000" in kept and not {t for t in kept if "Blackwell" in t}


def test_second_identical_deploy_writes_nothing(fake_api):
    assert deploy().code == 0
    writes = len(fake_api.writes)
    ran = deploy()
    assert ran.code == 0, ran.text
    assert len(fake_api.writes) == writes and "no change" in ran.out


def test_a_patch_of_the_pools_restates_the_exclusions(fake_api):
    assert deploy().code == 0
    (endpoint,) = fake_api.endpoints.values()
    # Someone changed the pools in the console; RunPod dropped the exclusions with them.
    endpoint["gpu"]["pools"] = ["ADA_24"]
    endpoint["gpu"].pop("excludedTypes")
    writes = len(fake_api.writes)
    ran = deploy()
    assert ran.code == 0, ran.text
    (patch,) = fake_api.writes[writes:]
    body = json.loads(patch.body)
    assert body["gpu"]["excludedTypes"] == SLICES and "AMPERE_24" in body["gpu"]["pools"]
    assert endpoint["gpu"]["excludedTypes"] == SLICES
    assert deploy().code == 0 and len(fake_api.writes) == writes + 1  # settled


def test_exclusions_cleared_on_runpod_are_sent_back_with_their_pools(fake_api):
    assert deploy().code == 0
    (endpoint,) = fake_api.endpoints.values()
    endpoint["gpu"].pop("excludedTypes")
    writes = len(fake_api.writes)
    ran = deploy()
    assert ran.code == 0, ran.text
    (patch,) = fake_api.writes[writes:]
    assert json.loads(patch.body) == {"gpu": {"pools": endpoint["gpu"]["pools"], "excludedTypes": SLICES}}
    assert f"gpu.excludedTypes: [] -> {json.dumps(SLICES)}" in ran.out


def test_a_variant_whose_pools_keep_no_runnable_type_is_refused_before_any_request(fake_api, tmp_path):
    folder = tmp_path / "variants"
    folder.mkdir()
    shutil.copy(ROOT / "variants" / "_base.yaml", folder / "_base.yaml")
    path = folder / "old-ada.yaml"
    # FastDeploy 2.3.0's image is built for sm80/sm90; ADA_24 holds only the sm89 RTX 4090.
    text = (
        MINIMAL_VARIANT.replace("{name}", "old-ada")
        + "engine:\n  fastdeploy: 2.3.0\nhub:\n  gpu_ids: [ADA_24]\n"
    )
    path.write_text(text)
    ran = deploy(variant=str(path))
    assert ran.code == 2, ran.text
    assert "hub.gpu_ids[0]" in ran.err and "holds no GPU type a worker can run" in ran.err
    assert (
        "NVIDIA GeForce RTX 4090 (sm89: the FastDeploy 2.3.0 image is built for sm80, sm90 only)" in ran.err
    )
    assert "Traceback" not in ran.text and fake_api.log == []


def _post_endpoint(fake: FakeManagementApi, gpu: dict) -> requests.Response:
    body = {"name": "e", "type": "QUEUE", "image": "i", "gpu": gpu,
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}}  # fmt: skip
    return requests.post(
        f"{fake.url}/v2/serverless",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {fake.api_key}", "Content-Type": "application/json"},
        timeout=10,
    )


def test_the_fake_serves_a_valid_catalogue_and_refuses_what_runpod_refuses():
    fake = FakeManagementApi("key-for-the-fake").start()
    try:
        resp = requests.get(
            f"{fake.url}/v2/catalog/gpus", headers={"Authorization": "Bearer key-for-the-fake"}, timeout=10
        )
        assert resp.status_code == 200 and schema_errors("ListGpuTypesResponse", resp.json()) == []
        assert {g["pool"] for g in resp.json()["gpus"] if g["id"] in SLICES} == {"AMPERE_24", "ADA_48_PRO"}
        outside = _post_endpoint(fake, {"pools": ["ADA_24"], "excludedTypes": ["NVIDIA L4"]})
        assert outside.status_code == 400 and "not a GPU type in one of pools" in outside.json()["detail"]
        nothing = _post_endpoint(fake, {"pools": ["ADA_24"], "excludedTypes": ["NVIDIA GeForce RTX 4090"]})
        assert nothing.status_code == 400 and "leaves no GPU type" in nothing.json()["detail"]
        assert _post_endpoint(fake, {"pools": ["AMPERE_24"], "excludedTypes": SLICES[:1]}).status_code == 201
        assert fake.invalid == []
    finally:
        fake.stop()


def test_pools_changed_on_runpod_exit_1_with_the_refresh_advice(fake_api):
    """RunPod moved a slice out of AMPERE_24: excluding it is now a 400 (BaseEndpointGpuConfig)."""
    for g in fake_api.gpus:
        if g["id"] == SLICES[0]:
            g["pool"] = None
    ran = deploy()
    assert ran.code == 1
    assert "answered 400" in ran.err and "not a GPU type in one of pools" in ran.err
    assert "python -m builder.tools.refresh_pools" in ran.err and "Traceback" not in ran.text

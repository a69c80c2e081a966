"""`deploy` of a load-balancing variant through the CLI against the fake management API: the create
request RunPod's schema takes for `type: LOAD_BALANCER`, a settled rerun, the refused change of kind
(both ways, before any write), `--dry-run` and `--plan`, and the URLs printed."""

from __future__ import annotations

import json

import pytest

from tests.deploy.conftest import cli
from tests.deploy.test_deploy_cli import only_endpoint

LB = "ernie-0.3b-lb"
IMAGE = "registry.example.com/team/fastdeploy-worker:ernie-0.3b-lb-1.0.0"


def deploy(variant: str = LB, *extra: str):
    return cli("deploy", "--variant", variant, "--image", IMAGE, "--no-image-check", *extra)


def test_lb_create_sends_kind_scaling_and_port_and_a_rerun_writes_nothing(fake_api):
    ran = deploy()
    assert ran.code == 0, ran.text
    assert [(r.method, r.path) for r in fake_api.writes] == [
        ("POST", "/v2/templates"),
        ("POST", "/v2/serverless"),
    ]
    template = json.loads(fake_api.writes[0].body)
    assert template["ports"] == ["80/http"]
    create = json.loads(fake_api.writes[1].body)
    assert create["type"] == "LOAD_BALANCER"
    assert create["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 4}
    assert create["workers"] == {"min": 0, "max": 3, "idleTimeout": 5}
    assert create["ports"] == ["80/http"]
    endpoint = only_endpoint(fake_api)
    eid = endpoint["id"]
    base = f"https://{eid}.api.runpod.ai"
    assert endpoint["type"] == "LOAD_BALANCER" and endpoint["requestUrls"]["base"] == base
    assert f"endpoint id: {eid} (load balancing)" in ran.out
    assert f"URL:         {base}  (POST /v1/chat/completions" in ran.out
    assert f"health:      {base}/ping  (204 while the model loads, 200 when ready)" in ran.out
    assert f'base_url="{base}/v1"' in ran.out and "from openai import OpenAI" in ran.out
    assert "/openai/v1" not in ran.out and "api.runpod.ai/v2" not in ran.out
    # A rerun finds everything as wanted (ports, idleTimeout, scaling included) and writes nothing.
    writes = len(fake_api.writes)
    again = deploy()
    assert again.code == 0 and "no change: template and endpoint" in again.out, again.text
    assert len(fake_api.writes) == writes


def test_port_override_reaches_ports_and_env_and_a_change_is_one_patch(fake_api):
    assert deploy(LB, "--env", "PORT=8000", "--env", "PORT_HEALTH=8001").code == 0
    endpoint = only_endpoint(fake_api)
    assert endpoint["ports"] == ["8000/http", "8001/http"]
    assert endpoint["env"] == {"PORT": "8000", "PORT_HEALTH": "8001"}
    writes = len(fake_api.writes)
    ran = deploy(LB, "--env", "PORT=8000", "--env", "HEALTH_CHECK_PATH=/health")
    assert ran.code == 0, ran.text
    new = fake_api.writes[writes:]
    assert [r.method for r in new] == ["PATCH", "PATCH"]  # the template's ports, the endpoint's
    assert json.loads(new[0].body) == {"ports": ["8000/http"]}
    body = json.loads(new[1].body)
    # PORT_HEALTH follows PORT explicitly (the OpenAPI document's default for it is 80).
    env = {"HEALTH_CHECK_PATH": "/health", "PORT": "8000", "PORT_HEALTH": "8000"}
    assert body == {"env": env, "ports": ["8000/http"]}
    assert "type" not in body  # UpdateEndpointRequest has none
    assert f"https://{endpoint['id']}.api.runpod.ai/health  (204" in ran.out


@pytest.mark.parametrize(
    "first, second, have, suggested",
    [
        ("ernie-0.3b", LB, "is a queue endpoint", "--name shared-lb"),
        (LB, "ernie-0.3b", "is a load-balancing endpoint", "--name shared-queue"),
    ],
)
def test_changing_the_kind_of_an_endpoint_is_refused_before_any_write(
    fake_api, first, second, have, suggested
):
    assert deploy(first, "--name", "shared").code == 0
    writes, before = len(fake_api.writes), json.dumps(fake_api.endpoints, sort_keys=True)
    for extra in ((), ("--plan",)):
        ran = deploy(second, "--name", "shared", *extra)
        assert ran.code == 1, ran.text
        assert have in ran.err and "cannot be changed in place" in ran.err
        assert suggested in ran.err and "Nothing was sent" in ran.err
        assert "Traceback" not in ran.text
    assert len(fake_api.writes) == writes
    assert json.dumps(fake_api.endpoints, sort_keys=True) == before
    # The way out the message gives works: a new name is a new endpoint of the right kind.
    name = suggested.split()[-1]
    assert deploy(second, "--name", name).code == 0
    kinds = sorted(e["type"] for e in fake_api.endpoints.values())
    assert kinds == ["LOAD_BALANCER", "QUEUE"]


def test_dry_run_prints_the_lb_requests_and_sends_nothing(fake_api, api_key):
    ran = deploy(LB, "--dry-run")
    assert ran.code == 0, ran.text
    assert fake_api.log == []
    assert f"would send: POST {fake_api.url}/v2/serverless" in ran.out
    assert '"type": "LOAD_BALANCER"' in ran.out and '"type": "REQUEST_COUNT"' in ran.out
    assert '"80/http"' in ran.out and '"requestCount": 4' in ran.out
    assert "endpoint id: <endpoint id> (load balancing)" in ran.out
    assert 'base_url="https://<endpoint id>.api.runpod.ai/v1"' in ran.out
    assert api_key not in ran.text


def test_plan_prints_the_patch_of_an_lb_endpoint_without_sending_it(fake_api):
    assert deploy().code == 0
    writes = len(fake_api.writes)
    ran = deploy(LB, "--plan", "--workers-max", "5", "--scaler-value", "8")
    assert ran.code == 0, ran.text
    assert len(fake_api.writes) == writes
    eid = only_endpoint(fake_api)["id"]
    assert f"would send: PATCH {fake_api.url}/v2/serverless/{eid}" in ran.out
    assert '"max": 5' in ran.out and '"requestCount": 8' in ran.out
    assert "LOAD_BALANCER" not in ran.out.split("would send: PATCH")[1]


@pytest.mark.parametrize(
    "variant, extra, message",
    [
        (LB, ("--scaler", "queue-delay"), "scales on requests per worker"),
        ("ernie-0.3b", ("--env", "PORT=8000"), "read on a load-balancing endpoint only"),
        (LB, ("--env", "ENDPOINT_TYPE=queue"), "set by the variant's endpoint.type"),
        (LB, ("--env", "PORT=0"), "PORT"),
    ],
)
def test_wrong_lb_options_exit_2_before_any_request(fake_api, variant, extra, message):
    ran = deploy(variant, *extra)
    assert ran.code == 2, ran.text
    assert message in ran.err and "Traceback" not in ran.text
    assert fake_api.log == []

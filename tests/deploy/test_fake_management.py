"""The fake management API itself: it refuses what RunPod's schemas refuse (so a passing deploy means
something) and answers in RunPod's error shape."""

from __future__ import annotations

import json

import pytest
import requests

from tests.deploy.fake_management import SPEC, FakeManagementApi, schema_errors


def test_the_schema_subset_records_its_source():
    assert SPEC["source"]["repository"] == "runpod/docs"
    assert len(SPEC["source"]["commit"]) == 40
    assert SPEC["servers"][0]["url"] == "https://api.runpod.io"


@pytest.mark.parametrize(
    "schema, body, fragment",
    [
        ("CreateTemplateRequest", {"name": "t", "image": "i", "bogus": 1}, "bogus"),
        ("CreateTemplateRequest", {"name": "t"}, "'image' is a required property"),
        ("CreateTemplateRequest", {"name": "t", "image": "i", "allowedCudaVersions": ["12"]},
         "does not match"),
        ("CreateEndpointRequest", {"name": "e", "type": "QUEUE", "image": "i"}, "'scaling' is a required"),
        ("CreateEndpointRequest", {"name": "e", "type": "QUEUE", "image": "i",
                                   "scaling": {"type": "QUEUE_DELAY", "queueDelay": 0.1}},
         "is not valid under any"),
        ("UpdateEndpointRequest", {"gpu": {"excludedTypes": ["NVIDIA L40"]}}, "'pools' is a dependency"),
        ("UpdateEndpointRequest", {"workers": {"idleTimeout": 0}}, "minimum"),
        ("CreateRegistryRequest", {"name": "r", "username": "u"}, "'password' is a required"),
        # Load balancing: type on create only, request-count scaling only.
        ("CreateEndpointRequest", {"name": "e", "image": "i",
                                   "scaling": {"type": "REQUEST_COUNT", "requestCount": 4}},
         "'type' is a required"),
        ("CreateEndpointRequest", {"name": "e", "type": "LOAD_BALANCER", "image": "i",
                                   "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}},
         "'QUEUE_DELAY' is not one of ['REQUEST_COUNT']"),
        ("UpdateEndpointRequest", {"type": "LOAD_BALANCER"}, "Unevaluated properties"),
    ],
)  # fmt: skip
def test_schemas_refuse_bad_bodies(schema, body, fragment):
    errors = schema_errors(schema, body)
    assert any(fragment in e for e in errors), errors


def test_an_invalid_request_is_answered_422_in_runpods_error_shape():
    fake = FakeManagementApi("key-for-the-fake").start()
    try:
        resp = requests.post(
            f"{fake.url}/v2/templates",
            data=json.dumps({"name": "t", "image": "i", "bogus": True}),
            headers={"Authorization": "Bearer key-for-the-fake", "Content-Type": "application/json"},
            timeout=10,
        )
        assert resp.status_code == 422
        assert resp.headers["Content-Type"] == "application/problem+json"
        problem = resp.json()
        assert schema_errors("ErrorResponse", problem) == []
        assert problem["title"] == "Unprocessable Entity" and problem["errors"]
        assert fake.invalid and fake.templates == {}
        resp = requests.get(f"{fake.url}/v2/templates", timeout=10)
        assert resp.status_code == 401 and resp.json()["detail"]
    finally:
        fake.stop()


def test_load_balancing_endpoints_answer_base_and_health_urls_and_keep_request_count():
    key = "key-for-the-fake"
    fake = FakeManagementApi(key).start()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = {"name": "e", "type": "LOAD_BALANCER", "image": "i", "gpu": {"pools": ["ADA_24"]},
            "ports": ["80/http"], "env": {"HEALTH_CHECK_PATH": "/health"},
            "workers": {"min": 0, "max": 2, "idleTimeout": 5},
            "scaling": {"type": "REQUEST_COUNT", "requestCount": 4}}  # fmt: skip
    try:
        created = requests.post(
            f"{fake.url}/v2/serverless", data=json.dumps(body), headers=headers, timeout=10
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        eid = endpoint["id"]
        base = f"https://{eid}.api.runpod.ai"
        assert endpoint["requestUrls"] == {"base": base, "health": f"{base}/health"}
        assert endpoint["workers"]["idleTimeout"] == 5 and endpoint["ports"] == ["80/http"]
        queue_delay = {"scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}}
        refused = requests.patch(
            f"{fake.url}/v2/serverless/{eid}", data=json.dumps(queue_delay), headers=headers, timeout=10
        )
        assert refused.status_code == 400 and "queue-based endpoints only" in refused.json()["detail"]
        assert fake.endpoints[eid]["scaling"] == body["scaling"]
    finally:
        fake.stop()
    assert fake.invalid == []

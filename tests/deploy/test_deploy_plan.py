"""The pure parts of a deploy: desired state from the variant and the diff against RunPod's objects."""

from __future__ import annotations

import pytest

from builder.compat import load_compat
from builder.deploy.plan import (
    MISSING,
    EndpointOptions,
    diff,
    endpoint_fields,
    patch_body,
    template_fields,
)
from builder.deploy.redact import MASK, Redactor
from builder.variant.pipeline import find_variant, prepare
from tests.deploy.fake_management import schema_errors

MIG = "NVIDIA RTX PRO 6000 Blackwell Server Edition MIG {}"


@pytest.fixture(scope="module")
def resolved():
    return prepare(find_variant("ernie-0.3b"), load_compat()).resolved


def test_endpoint_fields_follow_the_variant(resolved):
    fields = endpoint_fields(resolved, "r.example/x:1", None, EndpointOptions(name="e"))
    assert fields["gpu"] == {
        "pools": ["ADA_24", "AMPERE_24", "AMPERE_16", "AMPERE_48", "ADA_48_PRO", "AMPERE_80"],
        "excludedTypes": [MIG.format("1g.24gb"), MIG.format("2g.48gb")],  # sm120: not in 2.5's build
        "count": 1,
        "allowedCudaVersions": list(resolved.allowed_cuda_versions),
    }
    assert fields["disk"] == resolved.container_disk_gb
    assert fields["env"] == {}  # the baked defaults are in the image
    assert fields["timeout"] == 600_000


def test_request_count_scaling_drops_idle_timeout(resolved):
    opts = EndpointOptions(name="e", scaler="REQUEST_COUNT", scaler_value=2)
    fields = endpoint_fields(resolved, "i", None, opts)
    assert fields["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 2}
    assert "idleTimeout" not in fields["workers"]
    body = {"name": "e", "type": "QUEUE", "image": "i", **{k: v for k, v in fields.items() if v is not None}}
    assert schema_errors("CreateEndpointRequest", body) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"workers_min": 3, "workers_max": 1},
        {"scaler": "QUEUE_DELAY", "scaler_value": 0.1},
        {"scaler": "REQUEST_COUNT", "scaler_value": 1.5},
        {"idle_timeout": 0},
    ],
)
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError):
        EndpointOptions(name="e", **bad)


def test_diff_env_and_patch_body(resolved):
    opts = EndpointOptions(name="e", env={"MAX_MODEL_LEN": "8192"})
    desired = endpoint_fields(resolved, "i", None, opts)
    current = {**endpoint_fields(resolved, "i", None, EndpointOptions(name="e")), "id": "x", "extra": 1}
    current["env"] = {"OLD": "1"}
    changes = diff(current, desired)
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("env.MAX_MODEL_LEN", MISSING, "8192"),
        ("env.OLD", "1", MISSING),
    ]
    assert patch_body(desired, changes) == {"env": {"MAX_MODEL_LEN": "8192"}}


def test_diff_ignores_cuda_order_but_not_pool_order(resolved):
    desired = template_fields(resolved, "i", None)
    current = {**desired, "allowedCudaVersions": list(reversed(desired["allowedCudaVersions"]))}
    assert diff(current, desired) == []
    efields = endpoint_fields(resolved, "i", None, EndpointOptions(name="e"))
    swapped = {**efields, "gpu": {**efields["gpu"], "pools": list(reversed(efields["gpu"]["pools"]))}}
    changes = diff(swapped, efields)
    assert [c.path for c in changes] == ["gpu.pools"]
    # A PATCH of pools without excludedTypes would clear the exclusions: they are restated.
    selection = {"pools": efields["gpu"]["pools"], "excludedTypes": efields["gpu"]["excludedTypes"]}
    assert patch_body(efields, changes) == {"gpu": selection}
    assert schema_errors("UpdateEndpointRequest", patch_body(efields, changes)) == []


def test_exclusions_changed_alone_are_sent_with_the_pools(resolved):
    efields = endpoint_fields(resolved, "i", None, EndpointOptions(name="e"))
    current = {**efields, "gpu": {k: v for k, v in efields["gpu"].items() if k != "excludedTypes"}}
    changes = diff(current, efields)
    assert [(c.path, c.old) for c in changes] == [("gpu.excludedTypes", [])]
    assert patch_body(efields, changes) == {
        "gpu": {"pools": efields["gpu"]["pools"], "excludedTypes": efields["gpu"]["excludedTypes"]}
    }
    reordered = {**efields, "gpu": {**efields["gpu"], "excludedTypes": efields["gpu"]["excludedTypes"][::-1]}}
    assert diff(reordered, efields) == []  # a set: RunPod's order is not a change


def test_redactor_masks_secrets_and_secret_looking_env():
    red = Redactor(["s3cr3t-value"])
    body = {
        "password": "pw",
        "username": "me",
        "env": {"HF_TOKEN": "hf_x", "MAX_MODEL_LEN": "8"},
        "n": "a s3cr3t-value",
    }
    assert red.body(body) == {
        "password": MASK,
        "username": MASK,
        "env": {"HF_TOKEN": MASK, "MAX_MODEL_LEN": "8"},
        "n": f"a {MASK}",
    }

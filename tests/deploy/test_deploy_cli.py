"""`deploy` through the CLI against the fake management API (real HTTP, schema-validated, stateful)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import VARIANT, cli

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/team/fastdeploy-worker:ernie-0.3b-1.0.0"


def deploy(*extra: str):
    # The image is not in a registry these tests reach: the registry check has its own test.
    return cli("deploy", "--variant", VARIANT, "--image", IMAGE, "--no-image-check", *extra)


def only_endpoint(fake):
    (endpoint,) = fake.endpoints.values()
    return endpoint


def test_first_deploy_creates_template_and_endpoint_from_the_variant(fake_api):
    ran = deploy()
    assert ran.code == 0, ran.text
    assert fake_api.invalid == []
    assert [(r.method, r.path) for r in fake_api.writes] == [
        ("POST", "/v2/templates"),
        ("POST", "/v2/serverless"),
    ]
    (template,) = fake_api.templates.values()
    assert template["name"] == VARIANT and template["image"] == IMAGE and template["serverless"] is True
    endpoint = only_endpoint(fake_api)
    assert endpoint["name"] == VARIANT and endpoint["image"] == IMAGE and endpoint["type"] == "QUEUE"
    assert endpoint["gpu"]["pools"] == [
        "ADA_24",
        "AMPERE_24",
        "AMPERE_16",
        "AMPERE_48",
        "ADA_48_PRO",
        "AMPERE_80",
    ]
    assert endpoint["gpu"]["count"] == 1
    assert endpoint["gpu"]["allowedCudaVersions"] == ["12.6", "12.7", "12.8", "12.9", "13.0"]
    assert endpoint["env"] == {}
    create = json.loads(fake_api.writes[1].body)
    assert create["templateId"] == template["id"]
    eid = endpoint["id"]
    assert f"endpoint id: {eid}" in ran.out
    assert f"job API:     https://api.runpod.ai/v2/{eid}  (POST /run, /runsync" in ran.out
    assert f"https://api.runpod.ai/v2/{eid}/openai/v1" in ran.out
    assert 'model="baidu/ERNIE-4.5-0.3B-Paddle"' in ran.out and "from openai import OpenAI" in ran.out


def test_second_deploy_reports_no_change_and_sends_no_write(fake_api):
    assert deploy().code == 0
    writes = len(fake_api.writes)
    ran = deploy()
    assert ran.code == 0, ran.text
    assert "no change" in ran.out
    assert len(fake_api.writes) == writes
    assert fake_api.invalid == []


def test_changed_env_is_one_patch_with_exactly_that_change(fake_api):
    assert deploy().code == 0
    writes = len(fake_api.writes)
    ran = deploy("--env", "MAX_MODEL_LEN=8192")
    assert ran.code == 0, ran.text
    new = fake_api.writes[writes:]
    eid = only_endpoint(fake_api)["id"]
    assert [(r.method, r.path) for r in new] == [("PATCH", f"/v2/serverless/{eid}")]
    assert json.loads(new[0].body) == {"env": {"MAX_MODEL_LEN": "8192"}}
    assert 'env.MAX_MODEL_LEN: (unset) -> "8192"' in ran.out
    assert "template ernie-0.3b: no change" in ran.out
    assert deploy("--env", "MAX_MODEL_LEN=8192").code == 0
    assert len(fake_api.writes) == writes + 1  # and now it is settled
    assert fake_api.invalid == []


def test_changed_image_and_workers_update_in_place_with_a_diff(fake_api):
    assert deploy().code == 0
    writes = len(fake_api.writes)
    other = IMAGE.replace("1.0.0", "1.0.1")
    ran = cli("deploy", "--variant", VARIANT, "--image", other, "--no-image-check",
              "--workers-max", "5", "--flashboot", "off")  # fmt: skip
    assert ran.code == 0, ran.text
    new = fake_api.writes[writes:]
    assert [r.method for r in new] == ["PATCH", "PATCH"]
    assert json.loads(new[0].body) == {"image": other}
    assert json.loads(new[1].body) == {"image": other, "workers": {"max": 5}, "flashboot": "OFF"}
    assert f'image: "{IMAGE}" -> "{other}"' in ran.out
    assert "workers.max: 3 -> 5" in ran.out
    assert only_endpoint(fake_api)["workers"] == {"min": 0, "max": 5, "idleTimeout": 5}
    assert fake_api.invalid == []


def test_dry_run_prints_the_requests_and_sends_nothing(fake_api, api_key):
    ran = deploy("--dry-run", "--env", "MAX_MODEL_LEN=8192")
    assert ran.code == 0, ran.text
    assert fake_api.log == []
    assert f"would send: POST {fake_api.url}/v2/templates" in ran.out
    assert f"would send: POST {fake_api.url}/v2/serverless" in ran.out
    assert "Authorization: Bearer ***" in ran.out
    assert '"MAX_MODEL_LEN": "8192"' in ran.out
    assert api_key not in ran.text


def test_dry_run_needs_no_api_key(clean_env):
    ran = deploy("--dry-run")
    assert ran.code == 0, ran.text
    assert "would send: POST https://api.runpod.io/v2/templates" in ran.out


def test_plan_reads_and_prints_the_patch_without_sending_it(fake_api):
    assert deploy().code == 0
    writes = len(fake_api.writes)
    ran = deploy("--plan", "--workers-min", "1")
    assert ran.code == 0, ran.text
    assert len(fake_api.writes) == writes
    eid = only_endpoint(fake_api)["id"]
    assert f"would send: PATCH {fake_api.url}/v2/serverless/{eid}" in ran.out
    assert '"min": 1' in ran.out


@pytest.mark.parametrize(
    "env, message",
    [
        ("MAX_MODEL_LEN=abc", "MAX_MODEL_LEN='abc' is invalid"),
        ("MAX_MODEL_LENGTH=8192", "did you mean MAX_MODEL_LEN"),
        ("QUANTIZATION=int3", "QUANTIZATION"),
        ("FASTDEPLOY_VERSION=2.4.0", "fixed by the image"),
        ("NOEQUALS", "is not KEY=VALUE"),
    ],
)
def test_bad_env_exits_2_before_any_request(fake_api, env, message):
    ran = deploy("--env", env)
    assert ran.code == 2, ran.text
    assert message in ran.err and "Traceback" not in ran.text
    assert fake_api.log == []


@pytest.mark.parametrize(
    "method, path, status, detail, extra, expect",
    [
        ("POST", "/v2/serverless", 400, "unknown GPU pool 'ADA_24'", {}, "A GPU pool was refused"),
        ("POST", "/v2/templates", 409, "template name 'ernie-0.3b' is taken", {}, "The name is taken"),
        ("POST", "/v2/serverless", 400, "max workers quota exceeded (5)", {}, "account limit"),
        ("GET", "/v2/templates", 429, "rate limit exceeded for the minute window",
         {"headers": {"Retry-After": "12"}}, "wait 12 s"),
        ("POST", "/v2/templates", 500, "internal error", {}, "run the deploy again later"),
        ("POST", "/v2/serverless", 422, "Request validation failed.",
         {"errors": ["$: additional properties 'bogus' not allowed"]}, "additional properties 'bogus'"),
    ],
)  # fmt: skip
def test_error_answers_exit_1_with_one_paragraph(fake_api, method, path, status, detail, extra, expect):
    fake_api.fail_next(method, path, status, detail, **extra)
    ran = deploy()
    assert ran.code == 1, ran.text
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1, ran.err
    assert f"answered {status}" in lines[0] and detail in lines[0] and expect in lines[0]
    assert "Traceback" not in ran.text


def test_refused_key_exits_1_and_says_what_to_do(fake_api, clean_env):
    clean_env.setenv("RUNPOD_API_KEY", "rpa_wrong")
    ran = deploy()
    assert ran.code == 1
    assert "answered 401 Unauthorized" in ran.err and "RUNPOD_API_KEY" in ran.err
    assert "rpa_wrong" not in ran.text


def test_no_api_key_anywhere_exits_1(fake_api, clean_env):
    clean_env.delenv("RUNPOD_API_KEY")
    ran = deploy()
    assert ran.code == 1 and "no RunPod API key" in ran.err
    assert fake_api.log == []


def test_api_key_from_the_runpod_config_file(fake_api, clean_env, api_key):
    clean_env.delenv("RUNPOD_API_KEY")
    config = Path(os.environ["HOME"]) / ".runpod" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[default]\napi_key = "{api_key}"\n')  # what `runpod config` writes
    ran = deploy()
    assert ran.code == 0, ran.text
    assert api_key not in ran.text


def test_same_name_twice_is_refused(fake_api):
    assert deploy().code == 0
    (endpoint,) = fake_api.endpoints.values()
    fake_api.endpoints["ep_copy"] = {**endpoint, "id": "ep_copy"}
    ran = deploy()
    assert ran.code == 1 and "2 endpoints are named 'ernie-0.3b'" in ran.err


def test_registry_credential_is_created_once_then_reused(fake_api, clean_env):
    clean_env.setenv("REGISTRY_USERNAME", "ci-bot")
    clean_env.setenv("REGISTRY_PASSWORD", "pw_" + "x" * 20)
    assert deploy().code == 0
    (registry,) = fake_api.registries.values()
    assert registry["name"] == "registry.example.com-ci-bot"
    assert only_endpoint(fake_api)["registry"] == registry["id"]
    assert next(iter(fake_api.templates.values()))["registry"] == registry["id"]
    writes = len(fake_api.writes)
    ran = deploy()
    assert ran.code == 0 and "registry credential registry.example.com-ci-bot: no change" in ran.out
    assert len(fake_api.writes) == writes
    assert fake_api.invalid == []


def test_planted_api_key_and_registry_password_appear_nowhere(fake_api, clean_env, api_key):
    password = "pw_PLANTED_" + api_key[-12:]
    clean_env.setenv("REGISTRY_USERNAME", "ci-bot")
    clean_env.setenv("REGISTRY_PASSWORD", password)
    runs = [deploy("--dry-run"), deploy(), deploy("--plan", "--env", "HF_TOKEN=hf_PLANTEDtoken"), deploy()]
    fake_api.fail_next("GET", "/v2/serverless", 500, f"echo {api_key} {password}")  # a server that echoes
    runs.append(deploy())
    for ran in runs:
        for secret in (api_key, password, "hf_PLANTEDtoken"):
            assert secret not in ran.text, ran.text
    assert runs[-1].code == 1
    for entry in fake_api.log:
        auth = entry.headers.get("Authorization", "")
        assert auth == f"Bearer {api_key}"
        assert api_key not in entry.path + entry.body
        if (entry.method, entry.path) != ("POST", "/v2/registries"):
            assert password not in entry.body
    (create,) = [e for e in fake_api.log if (e.method, e.path) == ("POST", "/v2/registries")]
    assert json.loads(create.body)["password"] == password  # sent where it belongs, once


def test_deploy_in_a_subprocess_reads_the_environment(fake_api, api_key):
    env = {**os.environ, "RUNPOD_API_BASE_URL": fake_api.url, "RUNPOD_API_KEY": api_key}
    ran = subprocess.run(
        [sys.executable, "build.py", "deploy", "--variant", VARIANT, "--image", IMAGE, "--no-image-check"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert len(fake_api.endpoints) == 1 and fake_api.invalid == []
    assert api_key not in ran.stdout + ran.stderr


def test_the_client_request_log_and_errors_hold_no_secret(fake_api, api_key):
    from builder.deploy.api import ApiError, Client
    from builder.deploy.plan import registry_create
    from builder.deploy.redact import Redactor

    password = "pw_PLANTED_" + api_key[-10:]
    client = Client(fake_api.url, api_key, Redactor([password]))
    client.call(registry_create("r", "ci-bot", password))
    fake_api.fail_next("POST", "/v2/registries", 500, f"echo {password} {api_key}")
    with pytest.raises(ApiError) as caught:
        client.call(registry_create("r2", "ci-bot", password))
    for text in (repr(client.sent), str(caught.value), repr(caught.value.args), caught.value.detail):
        assert password not in text and api_key not in text


def test_config_file_without_a_key_says_what_to_do(fake_api, clean_env):
    clean_env.delenv("RUNPOD_API_KEY")
    config = Path(os.environ["HOME"]) / ".runpod" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[other]\napi_key = "x"\n')
    ran = deploy()
    assert ran.code == 1 and "has no api_key in its [default] profile" in ran.err
    config.write_text("not toml = = \n")
    ran = deploy()
    assert ran.code == 1 and "is not a readable TOML file" in ran.err
    assert fake_api.log == []


def test_dry_run_shows_the_registry_request_with_the_password_masked(fake_api, clean_env):
    clean_env.setenv("REGISTRY_USERNAME", "ci-bot")
    clean_env.setenv("REGISTRY_PASSWORD", "pw_" + "y" * 20)
    ran = deploy("--dry-run")
    assert ran.code == 0, ran.text
    assert f"would send: POST {fake_api.url}/v2/registries" in ran.out
    assert '"password": "***"' in ran.out and "pw_" not in ran.out
    assert '"registry": "<id of the new registry credential registry.example.com-ci-bot>"' in ran.out


def test_one_variant_at_a_time(fake_api):
    ran = cli("deploy", "ernie-0.3b", "qwen3-8b", "--dry-run")
    assert ran.code == 2 and "deploy takes one variant, not 2" in ran.err


def test_wait_needs_a_live_deploy_and_the_openai_package(fake_api, monkeypatch):
    ran = deploy("--dry-run", "--wait")
    assert ran.code == 2 and "does not go with --dry-run" in ran.err
    monkeypatch.setitem(sys.modules, "openai", None)
    ran = deploy("--wait")
    assert ran.code == 1 and "pip install -r requirements.txt" in ran.err
    assert fake_api.log == []


def test_values_travel_as_json_not_spliced_into_a_query(fake_api):
    # runpod-python 1.12 builds GraphQL by string formatting (env values unescaped); REST v2 takes JSON.
    tricky = 'my "model" }, { key: "X'
    ran = deploy("--env", f"SERVED_MODEL_NAME={tricky}")
    assert ran.code == 0, ran.text
    assert only_endpoint(fake_api)["env"] == {"SERVED_MODEL_NAME": tricky}
    again = deploy("--env", f"SERVED_MODEL_NAME={tricky}")
    assert "endpoint ernie-0.3b: no change" in again.out and "nothing was sent" in again.out
    assert f"model={json.dumps(tricky)}," in again.out  # the snippet stays valid Python

"""deploy's first-contact traps (issue 15): overrides keep the variant consistent, option errors name
the flag, the image must exist in its registry, Ctrl-C leaves a state that is safe to rerun."""

from __future__ import annotations

import os

import pytest

from tests.deploy.conftest import VARIANT, cli

IMAGE = "registry.example.com/team/fastdeploy-worker:ernie-0.3b-1.0.0"


def deploy(*extra: str, variant: str = VARIANT):
    return cli("deploy", "--variant", variant, "--image", IMAGE, "--no-image-check", *extra)


@pytest.mark.parametrize(
    "variant, env, fragments",
    [
        (VARIANT, "TENSOR_PARALLEL_SIZE=2",
         ["--env TENSOR_PARALLEL_SIZE=2: engine.tensor_parallel_size: 2 must equal hub.gpu_count (1)"]),
        ("ernie-300b-a47b-wint4-tp4", "QUANTIZATION=wint8",
         ["with --env QUANTIZATION=wint8: ", "cannot hold baidu/ERNIE-4.5-300B-A47B-Paddle at wint8"]),
        # The backend's packages are in the image or not: the image fixes it.
        (VARIANT, "GUIDED_DECODING_BACKEND=xgrammar",
         ["--env GUIDED_DECODING_BACKEND: fixed by the image (it describes what was built), not settable"]),
    ],
)  # fmt: skip
def test_an_override_that_breaks_the_variant_exits_2_before_any_request(fake_api, variant, env, fragments):
    ran = deploy("--env", env, variant=variant)
    assert ran.code == 2, ran.text
    for fragment in fragments:
        assert fragment in ran.err, ran.err
    assert "Traceback" not in ran.text and fake_api.log == []


def test_a_consistent_override_deploys(fake_api):
    ran = deploy("--env", "MAX_MODEL_LEN=4096", "--env", "TENSOR_PARALLEL_SIZE=1")
    assert ran.code == 0, ran.text
    (endpoint,) = fake_api.endpoints.values()
    assert endpoint["env"] == {"MAX_MODEL_LEN": "4096", "TENSOR_PARALLEL_SIZE": "1"}


def test_ctrl_c_between_the_template_and_the_endpoint_is_safe_to_rerun(fake_api, monkeypatch):
    import builder.commands.deploy as deploy_verb

    def say(text: str = "") -> None:
        if text.startswith("endpoint ") and fake_api.templates:  # the template is written, the endpoint not
            raise KeyboardInterrupt

    monkeypatch.setattr(deploy_verb, "print", say, raising=False)
    ran = deploy()
    assert ran.code == 130, ran.text
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted (Ctrl-C): ") and "Traceback" not in ran.err
    assert "running the same command again is safe" in lines[0]
    assert len(fake_api.templates) == 1 and fake_api.endpoints == {}
    monkeypatch.delattr(deploy_verb, "print")
    again = deploy()
    assert again.code == 0, again.text
    assert len(fake_api.templates) == 1 and len(fake_api.endpoints) == 1
    assert "template ernie-0.3b: no change" in again.out and "endpoint ernie-0.3b: create" in again.out


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--idle-timeout", "0"], "--idle-timeout 0: Input should be greater than or equal to 1"),
        (["--workers-min", "5", "--workers-max", "2"], "--workers-min/--workers-max: workers max (2) is"),
        (["--execution-timeout", "0"], "--execution-timeout 0: "),
        (["--scaler-value", "0.1"], "--scaler/--scaler-value: "),
    ],
)
def test_option_errors_name_the_flag_the_user_typed(fake_api, extra, expect):
    ran = deploy(*extra)
    assert ran.code == 2 and expect in ran.err, ran.err
    for internal in ("idle_timeout", "workers_min", "execution_timeout_s", "options:"):
        assert internal not in ran.err
    assert fake_api.log == []


def test_no_api_key_is_said_before_the_registry_is_asked(clean_env, monkeypatch):
    """Local checks first: a missing RUNPOD_API_KEY is named on the first run, before the image check
    (a network request) could fail or pass."""
    import builder.image.manifest_check as manifest_check

    asked: list[str] = []
    monkeypatch.setattr(manifest_check, "manifest_exists", lambda ref, *a, **k: asked.append(ref) or False)
    ran = cli("deploy", VARIANT, "--image", IMAGE)
    assert ran.code == 1, ran.text
    assert "RUNPOD_API_KEY" in ran.err and "Traceback" not in ran.text
    assert asked == [], "the registry was asked before the missing key was said"


def test_a_tensor_parallel_override_is_checked_like_the_file(fake_api):
    ran = deploy("--env", "TENSOR_PARALLEL_SIZE=3")
    assert ran.code == 2, ran.text
    assert "--env TENSOR_PARALLEL_SIZE=3: engine.tensor_parallel_size: 3 is not a size FastDeploy 2.5.0 " \
        "splits a model over" in ran.err  # fmt: skip
    assert fake_api.log == []


@pytest.mark.parametrize(
    "variant, model",
    [("qwen3-8b-cached", "Qwen/Qwen3-0.6B"), (VARIANT, "baidu/ERNIE-4.5-0.3B-Base-Paddle")],
    ids=["cached (no baked name)", "baked (named by its repository id)"],
)
def test_a_deploy_time_model_change_is_served_under_the_new_models_name(fake_api, variant, model):
    """`--env MODEL=...` (as the Hub form's MODEL field): the worker answers to the new model's id, not
    the old one (clients naming the new model got FastDeploy's "unsupported model")."""
    from builder.compat import load_compat
    from builder.variant.pipeline import prepare
    from tests.builder.helpers import ROOT
    from worker_runtime.config.settings import load_settings
    from worker_runtime.engine.model_cache import plan_weights

    ran = deploy("--env", f"MODEL={model}", variant=variant)
    assert ran.code == 0, ran.text
    assert f"(model {model})" in ran.out, ran.out
    (endpoint,) = fake_api.endpoints.values()
    resolved = prepare(ROOT / "variants" / f"{variant}.yaml").resolved
    image_env = {"FASTDEPLOY_VERSION": resolved.release, **resolved.env_strings()}
    # What the worker does with the image's env and the endpoint's on top: the runtime's own code.
    settings = load_settings({**image_env, **endpoint["env"]}, flag_table=load_compat().flag_table(),
                             volume_dir=os.devnull + "/none")  # fmt: skip
    assert plan_weights(settings).served_name == model

"""hub.json and presets offer only what the variant's FastDeploy release accepts, and booleans can stay
unset. The strongest check: the image's ENV, every hub.json input default and each preset on top all
load with the runtime's own `load_settings` for the image's release."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from builder.compat import load_compat
from builder.errors import VariantErrors
from builder.output.hub import check_hub_json
from builder.output.render import RenderError, render_files
from builder.variant.loader import variant_files
from builder.variant.pipeline import prepare
from tests.builder.helpers import MINIMAL_VARIANT, ROOT
from worker_runtime.config.settings import SETTINGS, load_settings

BY_ENV = {s.env: s for s in SETTINGS}
SYNTHETIC = (
    MINIMAL_VARIANT
    + """\
engine:
  fastdeploy: "{release}"
  install: {install}
{engine_extra}hub:
  gpu_ids: [{pools}]
{extra}"""
)
RELEASES = {"2.0.0": "image", "2.1.0": "pip", "2.2.0": "image", "2.3.0": "image"}


def synthetic(write_variant, release, *, pools="AMPERE_80, HOPPER_141", extra="", engine="", name=None):
    name = name or "t-" + release.replace(".", "-")
    text = SYNTHETIC.format(
        name=name, release=release, install=RELEASES[release], pools=pools, extra=extra, engine_extra=engine
    )
    return write_variant(name, text)


def _dockerfile_env(text: str) -> dict[str, str]:
    joined = text.replace("\\\n", " ")
    env = {}
    for line in joined.splitlines():
        if not line.startswith("ENV "):
            continue
        for key, value in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line[4:]):
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            env[key] = value
    return env


def _input_string(spec):
    value = spec.get("default")
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def assert_everything_loads(prepared):
    """Dockerfile ENV, then each hub.json default, then each preset: load_settings for the release."""
    compat = load_compat()
    files = render_files(prepared.resolved, compat)
    env = {k: v for k, v in _dockerfile_env(files["Dockerfile"].decode()).items() if k in BY_ENV}
    release = env["FASTDEPLOY_VERSION"]
    assert release == prepared.resolved.release
    table = compat.flag_table()
    load_settings(env, flag_table=table, volume_dir="/nonexistent")
    hub = json.loads(files[".runpod/hub.json"])
    for entry in hub["config"]["env"]:
        if "value" in entry:  # fixed by the listing
            env[entry["key"]] = entry["value"]
            load_settings(env, flag_table=table, volume_dir="/nonexistent")
            continue
        value = _input_string(entry["input"])
        if value is not None:
            env[entry["key"]] = value
            load_settings(env, flag_table=table, volume_dir="/nonexistent")
        for option in entry["input"].get("options", []):  # every option the user can pick
            load_settings({**env, entry["key"]: option["value"]}, flag_table=table, volume_dir="/nonexistent")
    for preset in hub["config"].get("presets", []):
        on_top = {
            k: (
                ("true" if v else "false")
                if isinstance(v, bool)
                else json.dumps(v)
                if isinstance(v, dict)
                else str(v)
            )
            for k, v in preset["defaults"].items()
        }
        load_settings({**env, **on_top}, flag_table=table, volume_dir="/nonexistent")
    return hub


@pytest.mark.parametrize("name", [p.stem for p in variant_files(ROOT / "variants")])
def test_shipped_variant_settings_all_load_in_the_runtime(name):
    assert_everything_loads(prepare(ROOT / "variants" / f"{name}.yaml"))


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_synthetic_old_release_settings_all_load_in_the_runtime(release, write_variant):
    extra = (
        "  presets:\n"
        "    - name: long context\n"
        "      defaults: {MAX_MODEL_LEN: 8192, ENABLE_PREFIX_CACHING: false, QUANTIZATION: wint8}\n"
    )
    hub = assert_everything_loads(prepare(synthetic(write_variant, release, extra=extra)))
    keys = [e["key"] for e in hub["config"]["env"]]
    flags = load_compat().engine_release(release)["flags"]
    if release in ("2.0.0", "2.1.0"):
        assert "SERVED_MODEL_NAME" not in keys and "TOOL_CALL_PARSER" not in keys
    if release == "2.0.0":
        assert "MODEL_REVISION" not in keys and "LOAD_CHOICES" not in keys
    if release in ("2.2.0", "2.3.0"):
        assert {"SERVED_MODEL_NAME", "TOOL_CALL_PARSER", "LOAD_CHOICES", "MODEL_REVISION"} <= set(keys)
    assert "--served-model-name" in flags or "SERVED_MODEL_NAME" not in keys


def test_bool_settings_without_a_value_default_to_engine_default():
    hub = json.loads(
        render_files(prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved, load_compat())[
            ".runpod/hub.json"
        ]
    )
    inputs = {e["key"]: e["input"] for e in hub["config"]["env"] if "input" in e}
    for env in ("ENABLE_PREFIX_CACHING", "ENABLE_CHUNKED_PREFILL"):
        spec = inputs[env]
        assert spec["type"] == "string" and spec["default"] == ""
        assert spec["options"] == [
            {"label": "(engine default)", "value": ""},
            {"label": "true", "value": "true"},
            {"label": "false", "value": "false"},
        ]
        assert "falseValue" not in spec


def test_unset_option_of_a_setting_with_a_worker_default_names_that_default():
    """Leaving STOP_ON_DISCONNECT unset means the worker's default (true), not the engine's."""
    hub = json.loads(
        render_files(prepare(ROOT / "variants" / "ernie-0.3b.yaml").resolved, load_compat())[
            ".runpod/hub.json"
        ]
    )
    spec = {e["key"]: e["input"] for e in hub["config"]["env"] if "input" in e}["STOP_ON_DISCONNECT"]
    assert spec["options"][0] == {"label": "(worker default: true)", "value": ""}
    assert spec["default"] == "true"


def test_bool_setting_set_by_the_variant_is_its_default(write_variant):
    path = synthetic(
        write_variant, "2.3.0", engine="  settings: {ENABLE_PREFIX_CACHING: false}\n", name="t-bool"
    )
    hub = assert_everything_loads(prepare(path))
    spec = {e["key"]: e["input"] for e in hub["config"]["env"] if "input" in e}["ENABLE_PREFIX_CACHING"]
    assert spec["type"] == "string" and spec["default"] == "false"


def test_quantization_options_follow_the_pools_architectures(write_variant):
    ampere = assert_everything_loads(prepare(synthetic(write_variant, "2.3.0", pools="AMPERE_80")))
    hopper = assert_everything_loads(
        prepare(synthetic(write_variant, "2.3.0", pools="ADA_80_PRO, HOPPER_141", name="t-hopper"))
    )

    def options(hub):
        spec = {e["key"]: e["input"] for e in hub["config"]["env"] if "input" in e}["QUANTIZATION"]
        return [o["value"] for o in spec["options"]]

    assert "block_wise_fp8" not in options(ampere) and "wint4" in options(ampere)
    assert "block_wise_fp8" in options(hopper)


@pytest.mark.parametrize(
    ("release", "extra", "fragment"),
    [
        (
            "2.0.0",
            "  presets:\n    - name: p\n      defaults: {TOOL_CALL_PARSER: ernie-x1}\n",
            "TOOL_CALL_PARSER",
        ),
        ("2.1.0", "  presets:\n    - name: p\n      defaults: {SERVED_MODEL_NAME: m}\n", "SERVED_MODEL_NAME"),
        ("2.0.0", "  expose: [MODEL, MODEL_REVISION]\n", "FastDeploy 2.0.0 has no --revision flag"),
        (
            "2.3.0",
            "  presets:\n    - name: p\n      defaults: {QUANTIZATION: block_wise_fp8}\n",
            "block_wise_fp8",
        ),
    ],
)
def test_presets_and_expose_are_checked_against_the_release(write_variant, release, extra, fragment):
    with pytest.raises(VariantErrors) as info:
        prepare(synthetic(write_variant, release, extra=extra))
    assert fragment in str(info.value)


def test_render_runs_the_runtime_check(write_variant):
    prepared = prepare(synthetic(write_variant, "2.3.0"))
    # A preset value that slipped past validation: the post-render check refuses it.
    bad = dataclasses.replace(prepared.resolved, presets=[{"name": "p", "defaults": {"MAX_MODEL_LEN": 0}}])
    with pytest.raises(RenderError, match="MAX_MODEL_LEN"):
        render_files(bad, load_compat())


@pytest.mark.parametrize(
    ("release", "engine", "expected"),
    [
        ("2.5.0", "  reasoning_parser: ernie_x1\n", {"REASONING_PARSER": "ernie-x1"}),
        ("2.5.0", "  tool_call_parser: ERNIE_X1\n", {"TOOL_CALL_PARSER": "ernie-x1"}),
        (
            "2.2.0",
            "  reasoning_parser: ernie-x1\n  tool_call_parser: ernie-x1\n",
            {"REASONING_PARSER": "ernie_x1", "TOOL_CALL_PARSER": "ernie_x1"},
        ),
    ],
)
def test_parser_names_take_either_spelling_and_env_gets_the_release_spelling(
    write_variant, release, engine, expected
):
    # FastDeploy, and so the runtime, looks parser names up with "_" and "-" alike.
    text = SYNTHETIC.format(
        name="t-parser",
        release=release,
        install="image",
        pools="AMPERE_80, HOPPER_141",
        extra="",
        engine_extra=engine,
    )
    prepared = prepare(write_variant("t-parser", text))
    assert_everything_loads(prepared)
    files = render_files(prepared.resolved, load_compat())
    env = _dockerfile_env(files["Dockerfile"].decode())
    for key, value in expected.items():
        assert env[key] == value


def test_parser_name_not_in_release_is_still_refused(write_variant):
    with pytest.raises(VariantErrors, match=r"engine\.reasoning_parser"):
        prepare(synthetic(write_variant, "2.3.0", engine="  reasoning_parser: ernie_x2\n"))


def test_hub_gpu_ids_negate_the_types_the_build_cannot_run(write_variant):
    """The Hub's gpuIds takes pool ids "with optional GPU ID negations" (RunPod's publishing guide): a
    Hub deploy excludes what `deploy` excludes, the variant's own
    negations once, and the Hub tests run on a type the build runs."""
    from builder.output.hub import hub_json

    mig = "NVIDIA RTX PRO 6000 Blackwell Server Edition MIG 1g.24gb"
    text = MINIMAL_VARIANT.replace("{name}", "negated") + "hub:\n  gpu_ids: [AMPERE_24, -NVIDIA L4]\n"
    resolved = prepare(write_variant("negated", text)).resolved
    config = hub_json(resolved, load_compat())["config"]
    assert config["gpuIds"] == f"AMPERE_24,-NVIDIA L4,-{mig}"
    text = text.replace("-NVIDIA L4]", f"-{mig}]")
    again = prepare(write_variant("negated", text)).resolved
    assert hub_json(again, load_compat())["config"]["gpuIds"] == f"AMPERE_24,-{mig}"
    assert resolved.gpu_type_id == "NVIDIA RTX A5000"


def test_the_hub_check_takes_lb_and_no_other_endpoint_type():
    resolved = prepare(ROOT / "variants" / "ernie-0.3b-lb.yaml").resolved
    hub = json.loads(render_files(resolved, load_compat())[".runpod/hub.json"])
    keys = [e["key"] for e in hub["config"]["env"]]
    assert hub["config"]["endpointType"] == "LB"
    assert check_hub_json(json.dumps(hub), keys) == []
    hub["config"]["endpointType"] = "LOAD_BALANCER"  # the REST API's spelling, not the Hub's
    assert check_hub_json(json.dumps(hub), keys) == ["config.endpointType: must be LB when present"]

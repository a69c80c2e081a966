"""builder.variant.parse and builder.variant.checks: schema and semantic errors of a file together, checks
composed and skipped when a field they read failed to parse, allowed lists of accepted values only."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from builder.errors import VariantErrors
from builder.variant.checks import CHECKS
from builder.variant.models import Variant
from builder.variant.parse import _inner_model
from builder.variant.pipeline import prepare
from tests.builder.helpers import MINIMAL_VARIANT
from worker_runtime.config.catalog import DEFAULT_RELEASE

GOOD = MINIMAL_VARIANT

CASES = {
    # case id: (file text, expected fragments of stderr)
    "tp-beyond-what-2.0-asserts": (
        GOOD + "engine:\n  fastdeploy: 2.0.0\n  tensor_parallel_size: 12\nhub:\n  gpu_ids: [AMPERE_80]\n",
        ["engine.tensor_parallel_size", "12 must be at most 8: FastDeploy 2.0.0 asserts it at startup"],
    ),
    "patterns-drop-the-chat-template": (
        GOOD + "  allow_patterns: ['*.json', '*.safetensors', '*.model']\n",
        [
            "model.allow_patterns",
            "leave out chat_template.jinja",
            "which FastDeploy reads from the model folder",
        ],
    ),
    "unpublished-release": (
        GOOD + "engine:\n  fastdeploy: 2.6.0\n",
        [
            "engine.fastdeploy",
            "'2.6.0' is not published yet",
            "read from its release branch",
            "allowed: 2.0.0, 2.1.0, 2.2.0, 2.3.0, 2.4.0, 2.5.0",
        ],
    ),
    "guided-decoding-with-speculative-decoding": (
        GOOD
        + "engine:\n  guided_decoding_backend: xgrammar\n"
        + '  extra_args: [--speculative-config, \'{"method": "mtp"}\']\n',
        [
            "engine.extra_args[0]",
            "'--speculative-config' cannot be combined with engine.guided_decoding_backend xgrammar",
            "switches guided decoding off with only a log warning",
        ],
    ),
    "guided-decoding-on-a-release-not-read": (
        GOOD + "engine:\n  fastdeploy: 2.3.0\n  guided_decoding_backend: guidance\n",
        ["engine.guided_decoding_backend", "'guidance' is not known for FastDeploy 2.3.0", "allowed: off"],
    ),
    "guided-decoding-unknown-backend": (
        GOOD + "engine:\n  guided_decoding_backend: outlines\n",
        ["engine.guided_decoding_backend", "outlines"],
    ),
    "api-key-flag": (
        GOOD + "engine:\n  extra_args: [--api-key, secret]\n",
        ["engine.extra_args[0]", "'--api-key'", "401", "RunPod's API key"],
    ),
    "api-key-flag-equals": (
        GOOD + "engine:\n  extra_args: [--api-key=secret]\n",
        ["engine.extra_args[0]", "401"],
    ),
    "api-key-env": (
        GOOD + "engine:\n  env: {FD_API_KEY: secret}\n",
        ["engine.env.FD_API_KEY", "401", "127.0.0.1"],
    ),
    "runtime-owned-port": (
        GOOD + "engine:\n  extra_args: [--port, '9000']\n",
        ["engine.extra_args[0]", "chosen by the runtime"],
    ),
    "quantization-not-in-release": (
        GOOD + "engine:\n  quantization: wint3\n",
        [
            "engine.quantization",
            "'wint3'",
            f"not valid for FastDeploy {DEFAULT_RELEASE}",
            "allowed: wint2",
            "did you mean",
        ],
    ),
    "quantization-older-release": (
        GOOD + "engine:\n  fastdeploy: 2.3.0\n  quantization: mxfp4\n",
        ["engine.quantization", "'mxfp4'", "FastDeploy 2.3.0"],
    ),
    "tp4-on-one-gpu": (
        GOOD + "engine:\n  tensor_parallel_size: 4\nhub:\n  gpu_ids: [ADA_24]\n  gpu_count: 1\n",
        ["engine.tensor_parallel_size", "hub.gpu_count (1)"],
    ),
    "model-does-not-fit": (
        GOOD.replace("ERNIE-4.5-0.3B-Paddle", "ERNIE-4.5-300B-A47B-Paddle")
        + "engine:\n  quantization: wint8\n",
        ["hub.gpu_ids[0]", "'AMPERE_24'", "cannot hold baidu/ERNIE-4.5-300B-A47B-Paddle at wint8"],
    ),
    "quote-breaking-hub-json-key": (
        GOOD
        + "hub:\n  gpu_ids: [ADA_24]\n  presets:\n    - name: p\n      defaults: {'MAX_MODEL_LEN\"': 4}\n",
        ['hub.presets[0].defaults.MAX_MODEL_LEN"', "did you mean 'MAX_MODEL_LEN'"],
    ),
    "quote-in-env-name": (
        GOOD + "engine:\n  env:\n    'A\"B': x\n",
        ['engine.env.A"B', "not a valid environment"],
    ),
    "bad-pool": (GOOD + "hub:\n  gpu_ids: [ADA24]\n", ["hub.gpu_ids[0]", "did you mean 'ADA_24'"]),
    "fp8-needs-hopper": (
        GOOD + "engine:\n  quantization: block_wise_fp8\n",
        [
            "hub.gpu_ids[0]",
            "holds no GPU type a worker can run",
            "quantization block_wise_fp8 runs on sm90 only",
        ],
    ),
    "pools-hold-no-runnable-type": (
        GOOD + "hub:\n  gpu_ids: [ADA_24, -NVIDIA GeForce RTX 4090]\n",
        [
            "hub.gpu_ids[0]",
            "holds no GPU type a worker can run",
            "NVIDIA GeForce RTX 4090 negated in hub.gpu_ids",
            "A deploy excludes the types a worker cannot run (gpu.excludedTypes)",
        ],
    ),
    "negated-type-outside-the-pools": (
        GOOD + "hub:\n  gpu_ids: [ADA_24, -NVIDIA L4]\n",
        ["hub.gpu_ids[1]", "is not a GPU type of the variant's pools", "-NVIDIA GeForce RTX 4090"],
    ),
    "test-gpu-the-release-cannot-run": (
        GOOD
        + "hub:\n  gpu_ids: [AMPERE_24]\ntests:\n"
        + "  gpu_type_id: NVIDIA RTX PRO 6000 Blackwell Server Edition MIG 1g.24gb\n",
        [
            "tests.gpu_type_id",
            "is not a GPU type of the variant's pools that the worker can run",
            "NVIDIA GeForce RTX 3090, NVIDIA L4, NVIDIA RTX A5000",
        ],
    ),
    "cuda-not-offered": (
        GOOD + "engine:\n  cuda: '12.4'\n",
        ["engine.cuda", "'12.4'", "allowed: 12.6, 12.9"],
    ),
    "unknown-release": (GOOD + "engine:\n  fastdeploy: 2.6.0\n", ["engine.fastdeploy", "'2.6.0'", "2.5.0"]),
    "extra-flag-unknown": (
        GOOD + "engine:\n  extra_args: [--enable-logprobs]\n",
        [
            "engine.extra_args[0]",
            f"not a flag of FastDeploy {DEFAULT_RELEASE}",
            "did you mean 'engine.settings.LOGPROBS'",
        ],
    ),
    "extra-flag-is-a-setting": (
        GOOD + "engine:\n  extra_args: [--max-model-len, '4096']\n",
        ["engine.extra_args[0]", "set engine.max_model_len instead"],
    ),
    "parser-missing-in-release": (
        GOOD + "engine:\n  fastdeploy: 2.0.0\n  tool_call_parser: ernie-x1\nhub:\n  gpu_ids: [AMPERE_80]\n",
        ["engine.tool_call_parser", "FastDeploy 2.0.0 has no tool-call parser"],
    ),
    "disk-too-small": (
        GOOD + "hub:\n  gpu_ids: [ADA_24]\n  container_disk_gb: 5\n",
        ["hub.container_disk_gb", "needs at least 35"],
    ),
    "unknown-setting": (
        GOOD + "engine:\n  settings:\n    REQUEST_TIMEOUTS: 5\n",
        ["engine.settings.REQUEST_TIMEOUTS", "did you mean 'REQUEST_TIMEOUT'"],
    ),
    "setting-wrong-type": (
        GOOD + "engine:\n  settings:\n    ENABLE_PREFIX_CACHING: 'yes'\n",
        ["engine.settings.ENABLE_PREFIX_CACHING", "true or false"],
    ),
    "name-differs-from-file": (
        GOOD.replace("name: {name}", "name: other"),
        ["name", "must match the file name"],
    ),
    "endpoint-type-through-settings": (
        GOOD + "engine:\n  settings:\n    ENDPOINT_TYPE: load_balancer\n",
        ["engine.settings.ENDPOINT_TYPE", "set endpoint.type instead"],
    ),
    "endpoint-type-in-a-preset": (
        GOOD + "hub:\n  presets:\n    - name: p\n      defaults: {ENDPOINT_TYPE: load_balancer}\n",
        ["hub.presets[0].defaults.ENDPOINT_TYPE", "fixed by the listing: set endpoint.type instead"],
    ),
    "endpoint-type-unknown": (
        GOOD + "endpoint:\n  type: loadbalancer\n",
        ["endpoint.type", "load_balancer"],
    ),
    "port-through-settings": (
        GOOD + "engine:\n  settings:\n    PORT: 8000\n",
        ["engine.settings.PORT", "fixed by the image"],
    ),
    "old-image-lacks-ada": (
        GOOD + "engine:\n  fastdeploy: 2.3.0\n",
        ["hub.gpu_ids[0]", "sm86: the FastDeploy 2.3.0 image is built for sm80, sm90 only"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_naming_file_and_field(case, refused):
    text, fragments = CASES[case]
    refused(case, text, fragments)


def errors_of(write_variant, name: str, extra: str, model: str = "baidu/ERNIE-4.5-0.3B-Paddle") -> list[str]:
    text = MINIMAL_VARIANT.replace("{name}", name).replace("baidu/ERNIE-4.5-0.3B-Paddle", model)
    path = write_variant(name, text + extra)
    with pytest.raises(VariantErrors) as info:
        prepare(path)
    return [str(e) for e in info.value.errors]


def _is_field(path: tuple[str, ...]) -> bool:
    model: typing.Any = Variant
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return False
        model = _inner_model(model.model_fields[part].annotation)
    return True


def test_every_check_reads_fields_of_the_variant():
    for check in CHECKS:
        assert check.reads, check
        for path in check.reads:
            assert _is_field(path), (check, path)


def test_schema_and_semantic_errors_of_a_file_come_together(write_variant):
    errors = errors_of(
        write_variant,
        "both",
        "engine:\n  quantizaton: wint4\n  quantization: wint3\nhub:\n  gpu_ids: [ADA24]\n",
    )
    assert len(errors) == 3, errors
    assert "engine.quantizaton: unknown key 'quantizaton'" in errors[0]
    assert f"engine.quantization: 'wint3' is not valid for FastDeploy {DEFAULT_RELEASE}" in errors[1]
    assert "hub.gpu_ids[0]: 'ADA24' is not a RunPod GPU pool" in errors[2]


def test_a_check_whose_field_failed_to_parse_is_skipped(write_variant):
    # hub.gpu_ids failed: the memory and architecture checks would otherwise judge the default pools.
    errors = errors_of(
        write_variant,
        "skipped",
        "engine:\n  quantization: wint4\n  cuda: '12.4'\n  tensor_parallel: 2\nhub:\n  gpu_ids: ADA_24\n",
        model="baidu/ERNIE-4.5-300B-A47B-Paddle",
    )
    assert any("engine.tensor_parallel: unknown key" in e for e in errors)
    assert any("hub.gpu_ids: 'ADA_24' is invalid" in e for e in errors)
    assert any("engine.cuda: '12.4' is not offered" in e for e in errors)
    assert not any("cannot hold" in e for e in errors), errors
    assert len(errors) == 3


def test_a_missing_required_field_does_not_hide_the_semantic_errors(write_variant):
    path = write_variant(
        "missing",
        MINIMAL_VARIANT.replace("{name}", "missing").replace("title: Test variant\n", "")
        + "engine:\n  quantization: wint3\n",
    )
    with pytest.raises(VariantErrors) as info:
        prepare(path)
    errors = [str(e).split(": ", 1)[1] for e in info.value.errors]
    assert errors[0] == "title: is required"
    assert len(errors) == 2 and errors[1].startswith("engine.quantization: 'wint3' is not valid"), errors


def test_unknown_setting_lists_only_names_engine_settings_takes(write_variant):
    (error,) = errors_of(write_variant, "setting", "engine:\n  settings:\n    MAX_MODEL_LENN: 5\n")
    allowed = error.split("allowed: ", 1)[1]
    assert "REQUEST_TIMEOUT" in allowed
    assert "MAX_MODEL_LEN" not in allowed and "MODEL" not in allowed.split(", ")  # fields of their own
    assert "WORKER_DEPS_DIR" not in allowed  # fixed by the image


def test_expose_lists_only_what_the_release_offers(write_variant):
    errors = errors_of(
        write_variant,
        "expose",
        "engine:\n  fastdeploy: 2.0.0\n  install: image\nhub:\n  gpu_ids: [AMPERE_80]\n"
        "  expose: [MODEL, TOOL_CALL_PARSERS]\n",
    )
    (error,) = [e for e in errors if "hub.expose[1]" in e]
    allowed = error.split("allowed: ", 1)[1]
    assert "TOOL_CALL_PARSER" not in allowed and "MODEL_REVISION" not in allowed  # not flags of 2.0.0


def test_unknown_extra_arg_lists_only_flags_that_may_be_passed(write_variant):
    (error,) = errors_of(write_variant, "args", "engine:\n  extra_args: [--enable-logprobs]\n")
    # The close flag --enable-logprob belongs to the LOGPROBS setting: that is suggested, not the flag.
    assert "did you mean 'engine.settings.LOGPROBS'" in error
    allowed = error.split("allowed: ", 1)[1].split(", ")
    assert not {"--port", "--max-model-len", "--api-key", "--enable-logprob"} & set(allowed)


def test_unknown_release_lists_releases_with_build_data(write_variant):
    (error,) = errors_of(write_variant, "release", "engine:\n  fastdeploy: 2.9.0\n")
    assert "allowed: 2.0.0, 2.1.0, 2.2.0, 2.3.0, 2.4.0, 2.5.0" in error


def test_image_hint_names_the_newest_release_that_covers_the_pools(write_variant):
    errors = errors_of(write_variant, "old", "engine:\n  fastdeploy: 2.3.0\nhub:\n  gpu_ids: [ADA_24]\n")
    assert any(
        "the FastDeploy 2.3.0 image is built for sm80, sm90 only" in e and "FastDeploy 2.5.0 runs some" in e
        for e in errors
    )


def test_mixed_pools_pass_with_their_unrunnable_types_excluded(write_variant):
    """AMPERE_24 mixes sm86, sm89 and a Blackwell MIG slice (sm120): 2.5's build runs all but the slice, so
    the variant is accepted and resolves with the slice excluded (deploy and hub.json exclude it)."""
    text = MINIMAL_VARIANT.replace("{name}", "mixed") + "hub:\n  gpu_ids: [AMPERE_24, ADA_48_PRO]\n"
    resolved = prepare(write_variant("mixed", text)).resolved
    mig = "NVIDIA RTX PRO 6000 Blackwell Server Edition MIG {}"
    assert resolved.excluded_types == [mig.format("1g.24gb"), mig.format("2g.48gb")]
    assert (
        resolved.exclusions[mig.format("1g.24gb")]
        == f"sm120: the FastDeploy {DEFAULT_RELEASE} image is built for sm80, sm86, sm89, sm90 only"
    )
    assert resolved.gpu_type_id == "NVIDIA RTX A5000" and resolved.gpu_archs == ["sm86", "sm89"]


def test_memory_check_uses_the_smallest_gpu_of_the_pool(write_variant):
    """AMPERE_16 holds 16 GB and 20 GB cards: a model that needs about 17 GB fits the 20 GB ones only, so
    the pool is refused (any of its cards may be handed out)."""
    model = "acme/big\n  weights_gb: 14"
    errors = errors_of(write_variant, "big", "hub:\n  gpu_ids: [AMPERE_16]\n", model=model)
    assert any("1 x 16 GB (its smallest GPU)" in e for e in errors), errors


def test_shipped_download_patterns_cover_every_file_fastdeploy_reads():
    from fnmatch import fnmatch

    from builder.compat import load_compat
    from builder.variant.loader import variant_files
    from tests.builder.helpers import ROOT

    compat = load_compat()
    for path in variant_files(ROOT / "variants"):
        model = prepare(path, compat).variant.model
        names = compat.model_files(model.id)
        assert "chat_template.jinja" in names and "config.json" in names
        # Cached weights: RunPod caches every file; their patterns say what the snapshot must hold.
        for name in names if model.allow_patterns and model.weights_mode != "cached" else []:
            assert any(fnmatch(name, p) for p in model.allow_patterns), (path.name, name)


def test_engine_bounds_are_the_runtimes():
    from builder.variant.models import Engine
    from worker_runtime.config.settings import SETTINGS

    by_env = {s.env: s for s in SETTINGS}
    schema = Engine.model_json_schema()["properties"]
    assert schema["max_num_seqs"]["anyOf"][0]["maximum"] == by_env["MAX_NUM_SEQS"].maximum == 256
    assert schema["max_model_len"]["anyOf"][0]["minimum"] == by_env["MAX_MODEL_LEN"].minimum == 16

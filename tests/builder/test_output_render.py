"""Rendered output: golden files, hadolint, hub.json/tests.json contents, the runtime copy, escaping.

Golden files: regenerate with `python -m tests.builder.regen_golden` (then review the diff).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess

import pytest

from builder.compat import load_compat
from builder.output.render import RenderError, copied_files, dockerfile_quote, render_files
from builder.variant.loader import variant_files
from builder.variant.pipeline import prepare
from builder.variant.resolve import CACHED_ONLY
from tests.builder.helpers import MINIMAL_VARIANT, ROOT
from tests.builder.regen_golden import GOLDEN_DIR, GOLDEN_VARIANTS, golden_files
from worker_runtime.config.catalog import DEFAULT_RELEASE
from worker_runtime.config.settings import SETTINGS

VARIANT_PATHS = variant_files(ROOT / "variants")


@pytest.fixture(scope="module")
def rendered():
    compat = load_compat()
    return {p.stem: render_files(prepare(p, compat).resolved, compat) for p in VARIANT_PATHS}


@pytest.mark.parametrize("name", GOLDEN_VARIANTS)
def test_golden(name):
    expected = {
        p.relative_to(GOLDEN_DIR / name).as_posix(): p.read_bytes()
        for p in sorted((GOLDEN_DIR / name).rglob("*"))
        if p.is_file()
    }
    actual = golden_files(name)
    assert sorted(actual) == sorted(expected), "regenerate: python -m tests.builder.regen_golden"
    for rel in expected:
        assert actual[rel] == expected[rel], (
            f"{name}/{rel} differs; regenerate: python -m tests.builder.regen_golden"
        )


@pytest.mark.parametrize("name", [p.stem for p in VARIANT_PATHS])
def test_copied_files_are_their_sources_byte_for_byte(name, rendered):
    resolved = prepare(ROOT / "variants" / f"{name}.yaml").resolved
    copied = copied_files(resolved)
    files = rendered[name]
    assert {rel for rel in files if rel.startswith("worker_runtime/")} <= set(copied)
    runtime = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "worker_runtime").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert {rel for rel in copied if rel.startswith("worker_runtime/")} == runtime
    for rel, source in copied.items():
        assert hashlib.sha256(files[rel]).digest() == hashlib.sha256(source.read_bytes()).digest(), rel
    assert copied["requirements.txt"] == ROOT / "worker_runtime" / "requirements.txt"


def test_golden_files_hold_only_templated_files():
    for name in GOLDEN_VARIANTS:
        copied = copied_files(prepare(ROOT / "variants" / f"{name}.yaml").resolved)
        on_disk = {
            p.relative_to(GOLDEN_DIR / name).as_posix() for p in (GOLDEN_DIR / name).rglob("*") if p.is_file()
        }
        assert not on_disk & set(copied), "regenerate: python -m tests.builder.regen_golden"


def _pip_variant(tmp_path):
    text = (
        (ROOT / "variants" / "qwen3-8b.yaml")
        .read_text()
        .replace("extends: _base", "extends: _base\n# pip route\n")
        .replace("  load_choices: default_v1", "  load_choices: default_v1\n  install: pip")
    )
    folder = tmp_path / "variants"
    folder.mkdir()
    shutil.copy(ROOT / "variants" / "_base.yaml", folder / "_base.yaml")
    (folder / "qwen3-8b.yaml").write_text(text)
    return folder / "qwen3-8b.yaml"


def test_hadolint_no_errors(rendered, tmp_path):
    compat = load_compat()
    dockerfiles = {name: files["Dockerfile"] for name, files in rendered.items()}
    dockerfiles["qwen3-8b-pip"] = render_files(prepare(_pip_variant(tmp_path), compat).resolved, compat)[
        "Dockerfile"
    ]
    assert b"pip install --no-cache-dir paddlepaddle-gpu==3.3.1" in dockerfiles["qwen3-8b-pip"]
    for name, body in dockerfiles.items():
        path = tmp_path / f"{name}.Dockerfile"
        path.write_bytes(body)
        result = subprocess.run(
            ["hadolint", "--no-color", "--format", "json", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        findings = json.loads(result.stdout or "[]")
        errors = [f for f in findings if f["level"] == "error"]
        assert errors == [], f"{name}: {errors}"
        # the threshold form the CI uses
        assert (
            subprocess.run(
                ["hadolint", "--failure-threshold", "error", str(path)], capture_output=True, timeout=60
            ).returncode
            == 0
        )


def test_dockerfile_layout(rendered):
    text = rendered["ernie-0.3b"]["Dockerfile"].decode()
    assert "# syntax" not in text and "--mount" not in text
    # Layers by change rate: weights, dependencies, code, then the settings (ENV) and labels.
    order = [
        text.index(s)
        for s in (
            "AS base",
            "AS weights",
            "AS deps",
            "AS code",
            "COPY worker_runtime/",
            "AS final",
            "COPY --from=weights /layer/ /",
            "COPY --from=deps /layer/ /",
            "COPY --from=code /layer/ /",
            "ENV MODEL=",
            "WORKDIR",
            "ENTRYPOINT",
            "LABEL",
        )
    ]
    assert order == sorted(order)
    assert 'ENTRYPOINT ["tini", "--", "python3", "-m", "worker_runtime"]' in text
    # The base image's PYTHONPATH is kept after the runtime's deps, not overwritten.
    assert (
        "ENV PYTHONPATH=/opt/worker/deps${PYTHONPATH:+:${PYTHONPATH}} WORKER_DEPS_DIR=/opt/worker/deps "
        f'FASTDEPLOY_VERSION="{DEFAULT_RELEASE}"' in text
    )
    assert "find_spec('fastdeploy')" in text and "(3, 10)" in text
    for name, files in rendered.items():
        body = files["Dockerfile"].decode()
        assert "None" not in body, name
        # No token of any kind (HF_TOKEN, ARG TOKEN, ...); tokenizer file names are not tokens.
        assert not re.search("TOKEN(?!IZER)", body.upper()), name
        assert "ARG BASE_IMAGE=" in body


def test_guided_decoding_gets_its_own_layer_with_the_release_pins(rendered):
    compat = load_compat()
    pins = compat.build_release("2.5.0").guided_decoding.backends["xgrammar"].packages
    for name in ("ernie-21b-a3b-thinking", "qwen3-8b"):
        files = rendered[name]
        text = files["Dockerfile"].decode()
        order = [
            text.index(s)
            for s in (
                "AS weights",
                "AS guided",
                "-r /opt/build/guided-requirements.txt",
                "AS deps",
                "AS code",
                "COPY --from=weights /layer/ /",
                "COPY --from=guided /layer/ /",
                "COPY --from=deps /layer/ /",
                "COPY --from=code /layer/ /",
            )
        ]
        assert order == sorted(order), name
        # The engine keeps /opt/guided (the runtime drops only WORKER_DEPS_DIR from its PYTHONPATH).
        assert "ENV PYTHONPATH=/opt/worker/deps:/opt/guided${PYTHONPATH:+:${PYTHONPATH}}" in text
        lines = files["guided-requirements.txt"].decode().splitlines()
        listed = [ln for ln in lines if not ln.startswith("#")]
        assert listed == pins == ["xgrammar==0.1.25", "torch==2.8.0"]
    off = rendered["ernie-0.3b"]
    assert "AS guided" not in off["Dockerfile"].decode() and "guided-requirements.txt" not in off


def test_render_and_print_report_the_size_the_backend_adds(cli, tmp_path):
    ran = cli("render", "qwen3-8b", "--out", str(tmp_path / "q"))
    assert ran.returncode == 0
    assert "guided decoding xgrammar: xgrammar==0.1.25, torch==2.8.0 add about 6.7 GB" in ran.stdout
    assert "builder/compat/fastdeploy_releases.yaml" in ran.stdout
    ran = cli("print", "qwen3-8b")
    assert ran.returncode == 0
    assert "guided_image_mb: 6679.0" in ran.stdout and "guided_backend: xgrammar" in ran.stdout
    ran = cli("render", "ernie-0.3b", "--out", str(tmp_path / "e"))
    assert ran.returncode == 0 and "guided decoding" not in ran.stdout


def test_hub_env_inputs_are_the_runtime_settings(rendered):
    by_env = {s.env: s for s in SETTINGS}
    for name, files in rendered.items():
        hub = json.loads(files[".runpod/hub.json"])
        env = hub["config"]["env"]
        # The model cache's settings only where the weights come from it.
        cached = "MODEL_CACHED" in files["Dockerfile"].decode()
        offered = [s.env for s in SETTINGS if s.in_hub and (cached or s.env not in CACHED_ONLY)]
        assert [e["key"] for e in env] == offered, name
        for entry in env:
            if entry["key"] == "ENDPOINT_TYPE":  # fixed by the listing: a value, not an input
                kind = "load_balancer" if name.endswith("-lb") else "queue"
                assert entry == {"key": "ENDPOINT_TYPE", "value": kind}, name
                continue
            spec, setting = entry["input"], by_env[entry["key"]]
            assert spec.get("default") not in ("None", "null")
            if setting.kind in ("int", "float"):
                assert spec["type"] == "number"
                assert "default" not in spec or isinstance(spec["default"], int | float)
            if setting.kind == "bool":  # a string with an "unset" option: a toggle cannot be unset
                worker = f"(worker default: {str(setting.default).lower()})"
                unset = "(engine default)" if setting.default is None else worker
                assert spec["type"] == "string" and spec["options"][0] == {"label": unset, "value": ""}
                assert [o["value"] for o in spec["options"]][1:] == ["true", "false"]
            assert spec["advanced"] == setting.advanced


def test_endpoint_type_reaches_hub_json_image_env_and_expose(rendered):
    for name, files in rendered.items():
        hub = json.loads(files[".runpod/hub.json"])
        dockerfile = files["Dockerfile"].decode()
        lb = name.endswith("-lb")
        # The publishing guide's one value; a queue listing has no endpointType at all.
        assert hub["config"].get("endpointType") == ("LB" if lb else None), name
        kind = "load_balancer" if lb else "queue"
        assert f'ENDPOINT_TYPE="{kind}"' in dockerfile, name
        assert ("\nEXPOSE 80\n" in dockerfile) is lb, name
        tests = json.loads(files[".runpod/tests.json"])
        assert {"key": "ENDPOINT_TYPE", "value": kind} in tests["config"]["env"], name
    lb_readme = rendered["ernie-0.3b-lb"]["README.md"].decode()
    assert 'base_url="https://<ENDPOINT_ID>.api.runpod.ai/v1"' in lb_readme
    assert "/openai/v1" not in lb_readme and "/openai/v1" in rendered["ernie-0.3b"]["README.md"].decode()


def test_hub_values_come_from_the_variant(rendered):
    hub = json.loads(rendered["ernie-21b-a3b-thinking"][".runpod/hub.json"])
    inputs = {e["key"]: e["input"] for e in hub["config"]["env"] if "input" in e}
    assert inputs["QUANTIZATION"]["default"] == "wint4"
    assert {"label": "wint8", "value": "wint8"} in inputs["QUANTIZATION"]["options"]
    assert inputs["REASONING_PARSER"]["default"] == "ernie-x1"
    assert [o["value"] for o in inputs["TOOL_CALL_PARSER"]["options"]] == [
        "",
        "ernie-45-vl-thinking",
        "ernie-x1",
    ]
    assert inputs["MAX_MODEL_LEN"]["default"] == 65536
    assert inputs["MODEL"]["default"] == "/models/ernie-21b-a3b-thinking"
    assert hub["config"]["gpuCount"] == 1
    assert hub["config"]["allowedCudaVersions"][0] == "12.6"
    tests = json.loads(rendered["ernie-21b-a3b-thinking"][".runpod/tests.json"])
    assert tests["config"]["gpuTypeId"] == "NVIDIA A100 80GB PCIe"
    assert {"key": "QUANTIZATION", "value": "wint4"} in tests["config"]["env"]
    # The variant's own jobs, then those of what it enables: a guided decoding backend, a tool-call parser.
    assert [t["name"] for t in tests["tests"]] == [
        "native chat",
        "openai chat",
        "openai models",
        "structured output",
        "tool call",
    ]
    qwen_tests = json.loads(rendered["qwen3-8b"][".runpod/tests.json"])
    assert [t["name"] for t in qwen_tests["tests"]][-1] == "structured output"  # no tool parser in 2.5
    small = json.loads(rendered["ernie-0.3b"][".runpod/tests.json"])
    assert [t["name"] for t in small["tests"]] == ["native chat", "openai chat", "openai models"]
    qwen = json.loads(rendered["qwen3-8b"][".runpod/hub.json"])
    qwen_inputs = {e["key"]: e["input"] for e in qwen["config"]["env"] if "input" in e}
    assert qwen_inputs["LOAD_CHOICES"]["default"] == "default_v1"
    assert b'LOAD_CHOICES="default_v1"' in rendered["qwen3-8b"]["Dockerfile"]
    assert (
        b'LIMIT_MM_PER_PROMPT="{\\"image\\":4,\\"video\\":1}"'
        in rendered["ernie-vl-28b-a3b-wint4"]["Dockerfile"]
    )


def test_readme_lists_settings_and_both_request_formats(rendered):
    text = rendered["ernie-0.3b"]["README.md"].decode()
    assert "openai_route" in text and '"messages"' in text and "from openai import OpenAI" in text
    for setting in SETTINGS:
        if setting.in_hub and setting.env not in CACHED_ONLY:
            assert f"`{setting.env}`" in text
    # The model cache's fallback switch: only in the README of a variant whose weights are cached.
    assert "`MODEL_CACHE_FALLBACK`" not in text
    assert "`MODEL_CACHE_FALLBACK`" in rendered["qwen3-8b-cached"]["README.md"].decode()


@pytest.mark.parametrize("value", ["a\nRUN x", "a\rb", "tab\there", "nul\x00"])
def test_dockerfile_filter_refuses_control_characters(value):
    with pytest.raises(RenderError):
        dockerfile_quote(value)


def test_dockerfile_filter_escapes():
    assert dockerfile_quote('a "b" \\ $c') == '"a \\"b\\" \\\\ \\$c"'


def test_render_refuses_value_that_slipped_past_validation():
    compat = load_compat()
    resolved = prepare(ROOT / "variants" / "ernie-0.3b.yaml", compat).resolved
    import dataclasses

    bad = dataclasses.replace(resolved, base_image="img\nRUN evil")
    with pytest.raises(RenderError):
        render_files(bad, compat)


def test_quote_in_title_is_escaped_not_broken(cli, write_variant):
    import json

    path = write_variant(
        "quoted",
        MINIMAL_VARIANT.replace("{name}", "quoted").replace(
            "title: Test variant", "title: 'Say \"hi\" \\ $HOME'"
        ),
    )
    out = path.parent.parent / "out"
    result = cli("--variant", str(path), "--render-only", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / ".runpod" / "hub.json").read_text())["title"] == 'Say "hi" \\ $HOME'
    assert 'org.opencontainers.image.title="Say \\"hi\\" \\\\ \\$HOME"' in (out / "Dockerfile").read_text()

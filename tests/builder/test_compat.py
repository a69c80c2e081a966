"""builder.compat: the data files load typed and cross-checked (a typo names the file and key), and the
queries and sizing rules that live with the data."""

from __future__ import annotations

import shutil

import pytest
import yaml

from builder.compat import CompatError, load_compat, version_key
from builder.compat.tables import KnownModel, Pool, Release
from builder.errors import BuilderError
from builder.paths import COMPAT_DIR, ENGINE_FLAGS


@pytest.fixture
def data_dir(tmp_path):
    """A copy of the compatibility data; edit(file, change) rewrites one YAML file."""
    folder = tmp_path / "compat"
    shutil.copytree(COMPAT_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))

    def edit(name: str, change) -> None:
        path = folder / name
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data))

    return folder, edit


def _problems(folder) -> list[str]:
    with pytest.raises(CompatError) as info:
        load_compat(folder, ENGINE_FLAGS)
    assert isinstance(info.value, BuilderError) and info.value.exit_code == 2
    assert info.value.lines() == [f"error: {p}" for p in info.value.problems]
    return info.value.problems


def test_shipped_data_loads_typed():
    compat = load_compat()
    assert isinstance(compat.pool("ADA_24"), Pool) and compat.pool("ADA_24").archs == {"sm89"}
    assert compat.pool("AMPERE_24").archs == {
        "sm86",
        "sm89",
        "sm120",
    }  # A5000/3090, L4, a Blackwell MIG slice
    assert isinstance(compat.model("Qwen/Qwen3-8B"), KnownModel)
    assert isinstance(compat.build_release("2.5.0"), Release)
    assert compat.release_names() == sorted(compat.release_names(), key=version_key)
    assert compat.build_release("9.9.9") is None and compat.engine_release("9.9.9") == {}


@pytest.mark.parametrize(
    ("file", "change", "fragment"),
    [
        (
            "gpu_pools.yaml",
            lambda d: d["pools"]["ADA_24"]["types"][0].update(memory_gbb=24),
            "gpu_pools.yaml: pools.ADA_24.types[0].memory_gbb: Extra inputs are not permitted",
        ),
        (
            "gpu_pools.yaml",
            lambda d: d["pools"]["ADA_24"]["types"][0].pop("arch"),
            "gpu_pools.yaml: pools.ADA_24.types[0].arch: Field required",
        ),
        (
            "gpu_pools.yaml",
            lambda d: d["pools"]["ADA_24"]["types"][0].update(arch="ada"),
            "gpu_pools.yaml: pools.ADA_24.types[0].arch: String should match pattern",
        ),
        (
            "gpu_pools.yaml",
            lambda d: d["pools"]["ADA_24"]["types"][0].update(arch="sm90"),
            "gpu_pools.yaml: pools.ADA_24: 'NVIDIA GeForce RTX 4090' is sm90 here but sm89 in",
        ),
        (
            "gpu_pools.yaml",
            lambda d: d["pools"]["ADA_24"].update(representative="NVIDIA L4"),
            "gpu_pools.yaml: pools.ADA_24.representative: 'NVIDIA L4' is not one of its types",
        ),
        (
            "gpu_archs.yaml",
            lambda d: d["archs"].pop("NVIDIA L4"),
            "gpu_pools.yaml: pools.AMPERE_24: 'NVIDIA L4' is sm89 here but missing in",
        ),
        (
            "models.yaml",
            lambda d: d["models"]["Qwen/Qwen3-8B"].update(weights_gb="lots"),
            "models.yaml: models.Qwen/Qwen3-8B.weights_gb: Input should be a valid number",
        ),
        (
            "fastdeploy_releases.yaml",
            lambda d: d["releases"]["2.5.0"].update(image={"12.6": "x"}),
            "fastdeploy_releases.yaml: releases.2.5.0.image: Extra inputs are not permitted",
        ),
        (
            "fastdeploy_releases.yaml",
            lambda d: d["releases"].update({"9.0.0": {"python": "3.10", "gpu_archs": ["sm90"]}}),
            "fastdeploy_releases.yaml: releases.9.0.0: no flag table for it in",
        ),
        (
            "fastdeploy_releases.yaml",
            lambda d: d["quantization_memory"].pop("wint4"),
            "fastdeploy_releases.yaml: quantization_memory: no factor for 'wint4'",
        ),
        (
            "fastdeploy_releases.yaml",
            lambda d: d["releases"]["2.0.0"]["pip"]["fastdeploy_index"].update({"70_75": "https://x"}),
            "releases.2.0.0.pip.fastdeploy_index.70_75: neither a CUDA version of paddle_index nor a group",
        ),
    ],
)
def test_a_typo_in_the_data_names_the_file_and_key(data_dir, file, change, fragment):
    folder, edit = data_dir
    edit(file, change)
    problems = _problems(folder)
    assert any(fragment in p for p in problems), problems


def test_every_problem_of_every_file_at_once(data_dir):
    folder, edit = data_dir
    edit("gpu_pools.yaml", lambda d: d["pools"]["ADA_24"]["types"][0].update(memory_gb=-1))
    edit("models.yaml", lambda d: d["models"]["Qwen/Qwen3-8B"].update(arch="sparse"))
    problems = _problems(folder)
    assert len(problems) == 2
    assert "gpu_pools.yaml: pools.ADA_24.types[0].memory_gb" in problems[0]
    assert "models.yaml: models.Qwen/Qwen3-8B.arch" in problems[1]


def test_sizing_rules_live_with_the_data():
    compat = load_compat()
    assert compat.weights_gb("Qwen/Qwen3-8B") == 16.4
    assert compat.weights_gb("Qwen/Qwen3-8B", 20) == 20
    assert compat.weights_gb("unknown/model") is None
    assert compat.needed_disk_gb(0.7) == 35  # ceil((0.7 x 1.1 + 30) / 0.9)
    assert compat.required_memory_gb(10, None) == pytest.approx(10 * 1.0 * compat.memory_overhead)
    assert compat.required_memory_gb(10, "wint4") == pytest.approx(10 * 0.3 * compat.memory_overhead)
    assert compat.knows_quantization("wint4") and not compat.knows_quantization("wint3")


def test_files_fastdeploy_reads_from_a_model_folder():
    compat = load_compat()
    ernie, qwen = compat.model_files("baidu/ERNIE-4.5-0.3B-Paddle"), compat.model_files("Qwen/Qwen3-8B")
    assert {"config.json", "chat_template.jinja", "tokenizer.model"} <= set(ernie)
    assert {"config.json", "chat_template.jinja", "vocab.json", "merges.txt"} <= set(qwen)
    assert "tokenizer.model" not in qwen and "chat_template.jinja" in compat.model_files("unknown/model")
    assert compat.build_release("2.0.0").startup_bounds["TENSOR_PARALLEL_SIZE"].maximum == 8
    assert compat.build_release("2.5.0").startup_bounds == {}


def test_architecture_queries():
    compat = load_compat()
    assert compat.pip_wheel_group({"sm80", "sm90"}) == "80_90"
    assert compat.pip_wheel_group({"sm86"}) == "86_89"
    assert compat.pip_wheel_group({"sm80", "sm86"}) is None
    assert compat.newest_release_for({"sm86"}) == "2.5.0"
    assert [t.id for _, t in compat.pool_types(["ADA_24", "-NVIDIA A40", "NOPE"])] == [
        "NVIDIA GeForce RTX 4090"
    ]
    assert compat.gpu_type("NVIDIA L4").arch == "sm89" and compat.gpu_type("NVIDIA B200") is None
    assert compat.archs_for_quantization("block_wise_fp8") == ["sm90"]
    assert compat.archs_for_quantization(None) == []


def test_release_queries():
    compat = load_compat()
    assert compat.cuda_versions("2.5.0", "image") == ["12.6", "12.9"]
    assert compat.cuda_versions("2.4.0", "image") == [] and compat.cuda_versions("2.4.0", "pip") == []
    assert compat.official_image("2.2.0", "12.6").endswith("/fastdeploy-cuda-12.6:2.2.1")
    assert compat.cuda_base_image("12.6").startswith("nvidia/cuda:12.6")
    assert compat.host_cuda_versions("12.9") == ["12.9", "13.0"]
    assert "--max-model-len" in compat.flag_spellings("2.5.0")
    assert compat.flag_table()["releases"]["2.5.0"] is compat.engine_release("2.5.0")
    assert "wint4" in compat.engine_choices("2.5.0", "quantization")


def test_an_unpublished_release_is_data_no_variant_can_select(data_dir):
    compat = load_compat()
    assert compat.unpublished("2.6.0") and not compat.unpublished("2.5.0")
    assert "2.6.0" not in compat.release_names() and compat.engine_release("2.6.0")["unreleased"]
    assert compat.newest_release_for({"sm80"}) == "2.5.0"
    folder, edit = data_dir
    edit("fastdeploy_releases.yaml", lambda d: d["releases"]["2.6.0"].update(published=True))
    (problem,) = _problems(folder)
    assert "releases.2.6.0" in problem and "marks it unreleased" in problem and "published: false" in problem


def test_memory_rule_matches_the_reference_table():
    compat = load_compat()
    util = compat.default_gpu_memory_utilization
    # ERNIE 21B: one 48 GB card at wint4; A10-class 24 GB cards need 2 at wint8, 1 at wint4.
    assert compat.required_memory_gb(42, "wint4") <= 48 * util
    assert compat.required_memory_gb(42, "wint8") > 24 * util
    assert compat.required_memory_gb(42, "wint8") <= 2 * 24 * util
    assert compat.required_memory_gb(42, "wint4") <= 24 * util
    # ERNIE 300B on 80 GB cards: wint4 x4, wint2 x2, wint8 x8; not wint4 x2.
    assert compat.required_memory_gb(600, "wint4") <= 4 * 80 * util
    assert compat.required_memory_gb(600, "wint4") > 2 * 80 * util
    assert compat.required_memory_gb(600, "wint2") <= 2 * 80 * util
    assert compat.required_memory_gb(600, "wint8") <= 8 * 80 * util
    assert compat.needed_disk_gb(0.7) == 35


def test_default_disk_leaves_the_sdk_its_free_share_after_the_weights():
    """runpod 1.12 ends a platform worker when under 10% of / is free (its system fitness check)."""
    compat = load_compat()
    assert compat.min_free_disk_fraction == pytest.approx(0.10)
    for weights in (0.7, 16.4, 42, 600, 1000):
        disk = compat.needed_disk_gb(weights)
        used = weights * compat.releases_file.disk_weights_factor + compat.headroom_gb
        assert (disk - used) / disk >= compat.min_free_disk_fraction

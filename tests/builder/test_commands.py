"""What the verbs do, in-process (builder/commands/): render (complete, byte-stable, --all, the
.rendered manifest, never deleting unrelated files), check, list, print, matrix, build and push with
builder.image.docker faked (the real one: tests/docker)."""

from __future__ import annotations

import json

import yaml

from builder import __version__
from builder.variant.loader import variant_files
from tests.builder.helpers import MINIMAL_VARIANT, ROOT
from worker_runtime.config.catalog import DEFAULT_RELEASE

GOOD = MINIMAL_VARIANT
VARIANTS = [p.stem for p in variant_files(ROOT / "variants")]


EXPECTED = {
    "Dockerfile",
    "handler.py",
    "README.md",
    ".runpod/hub.json",
    ".runpod/tests.json",
    "requirements.txt",
    "wheels/README.md",
}


def _tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_shipped_variants():
    assert set(VARIANTS) == {
        "ernie-0.3b",
        "ernie-0.3b-lb",
        "ernie-21b-a3b-wint4",
        "ernie-21b-a3b-thinking",
        "ernie-300b-a47b-wint4-tp4",
        "ernie-vl-28b-a3b-wint4",
        "qwen3-8b",
        "qwen3-8b-cached",
    }


def test_render_ernie_writes_complete_directory_and_is_byte_identical(cli, tmp_path):
    out = tmp_path / "ernie"
    first = cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out))
    assert first.returncode == 0, first.stderr
    tree = _tree(out)
    assert set(tree) >= EXPECTED
    assert {
        "worker_runtime/__init__.py",
        "worker_runtime/config/settings.py",
        "worker_runtime/config/engine_flags.json",
    } <= set(tree)
    assert {"weights/README.md", "fetch_weights.py", "weights.json"} <= set(tree)
    second = cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert _tree(out) == tree
    assert "0 changed" in second.stdout


def test_render_all(cli, tmp_path):
    result = cli("--all", "--render-only", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in VARIANTS:
        assert (tmp_path / name / "Dockerfile").is_file()
        assert (tmp_path / name / ".runpod" / "hub.json").is_file()


def test_not_baked_variant_has_no_weights_stage(cli, tmp_path):
    out = tmp_path / "big"
    assert cli("--variant", "ernie-300b-a47b-wint4-tp4", "--render-only", "--out", str(out)).returncode == 0
    text = (out / "Dockerfile").read_text()
    assert "AS weights" not in text and not (out / "weights").exists()
    assert 'MODEL="baidu/ERNIE-4.5-300B-A47B-Paddle"' in text
    assert 'TENSOR_PARALLEL_SIZE="4"' in text
    hub = json.loads((out / ".runpod" / "hub.json").read_text())
    assert hub["config"]["gpuCount"] == 4


def test_check_reports_changed_missing_and_extra_files(cli, tmp_path):
    out = tmp_path / "ernie"
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out)).returncode == 0
    ok = cli("--variant", "ernie-0.3b", "--check", "--out", str(out))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Staged weights and wheels are not rendered files: --check ignores them.
    (out / "weights" / "model.safetensors").write_bytes(b"w")
    (out / "wheels" / "runpod-1.0-py3-none-any.whl").write_bytes(b"w")
    assert cli("--variant", "ernie-0.3b", "--check", "--out", str(out)).returncode == 0
    # A file no render wrote is extra (it travels in the build context), named with what to do.
    (out / "notes.txt").write_text("mine")
    notes = cli("--variant", "ernie-0.3b", "--check", "--out", str(out))
    assert notes.returncode == 1 and "extra    notes.txt (not rendered: remove it)" in notes.stdout
    (out / "notes.txt").unlink()
    (out / "Dockerfile").write_text("FROM scratch\n")
    (out / "handler.py").unlink()
    # A file an earlier render produced (listed in the manifest) that is no longer rendered.
    (out / "stale.py").write_text("x")
    with open(out / ".rendered", "a", encoding="utf-8") as f:
        f.write("stale.py\n")
    bad = cli("--variant", "ernie-0.3b", "--check", "--out", str(out))
    assert bad.returncode == 1
    assert "changed  Dockerfile" in bad.stdout
    assert "missing  handler.py" in bad.stdout
    assert "extra    stale.py\n" in bad.stdout
    # A re-render repairs it and removes the stale rendered file, keeping staged files.
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out)).returncode == 0
    assert cli("--variant", "ernie-0.3b", "--check", "--out", str(out)).returncode == 0
    assert (out / "weights" / "model.safetensors").exists() and not (out / "stale.py").exists()


def test_manifest_lists_rendered_files_sorted(cli, tmp_path):
    out = tmp_path / "ernie"
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out)).returncode == 0
    lines = (out / ".rendered").read_text().splitlines()
    paths = [line for line in lines if not line.startswith("#")]
    assert paths == sorted(paths) and "Dockerfile" in paths and "worker_runtime/config/settings.py" in paths
    assert ".rendered" not in paths
    first = (out / ".rendered").read_bytes()
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out)).returncode == 0
    assert (out / ".rendered").read_bytes() == first


def test_out_never_deletes_unrelated_files(cli, tmp_path):
    out = tmp_path / "ernie"
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out)).returncode == 0
    (out / "mine.txt").write_text("keep")
    (out / "src").mkdir()
    (out / "src" / "app.py").write_text("keep")
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out)).returncode == 0
    assert (out / "mine.txt").read_text() == "keep" and (out / "src" / "app.py").read_text() == "keep"


def test_rerender_removes_files_no_longer_rendered(cli, tmp_path):
    out = tmp_path / "one"
    # A baked variant renders fetch_weights.py and weights.json; a non-baked one into the same
    # directory removes them (they are in the manifest) and keeps an unrelated file.
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out)).returncode == 0
    assert (out / "fetch_weights.py").is_file()
    (out / "mine.txt").write_text("keep")
    result = cli("--variant", "ernie-300b-a47b-wint4-tp4", "--render-only", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert not (out / "fetch_weights.py").exists() and not (out / "weights.json").exists()
    assert (out / "mine.txt").read_text() == "keep"
    # check names the file no render wrote (it travels in the build context); without it, up to date.
    check = cli("--variant", "ernie-300b-a47b-wint4-tp4", "--check", "--out", str(out))
    assert check.returncode == 1 and "extra    mine.txt (not rendered: remove it)" in check.stdout
    (out / "mine.txt").unlink()
    assert cli("--variant", "ernie-300b-a47b-wint4-tp4", "--check", "--out", str(out)).returncode == 0


def test_out_refuses_a_non_empty_directory_without_manifest(cli, tmp_path):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "README.md").write_text("my project")
    (out / "main.py").write_text("print(1)")
    result = cli("--variant", "ernie-0.3b", "--render-only", "--out", str(out))
    assert result.returncode == 2
    assert ".rendered" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "main.py"]
    assert (out / "README.md").read_text() == "my project"
    # Staged weights alone (e.g. filled before the first render) are accepted.
    staged = tmp_path / "staged"
    (staged / "weights").mkdir(parents=True)
    (staged / "weights" / "model.safetensors").write_bytes(b"w")
    assert cli("--variant", "ernie-0.3b", "--render-only", "--out", str(staged)).returncode == 0
    assert (staged / "weights" / "model.safetensors").exists()


def test_list_table_and_json(cli):
    table = cli("--list")
    assert table.returncode == 0
    for name in VARIANTS:
        assert name in table.stdout
    rows = json.loads(cli("--list", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["ernie-300b-a47b-wint4-tp4"]["tp"] == 4
    assert by_name["ernie-0.3b"]["quantization"] == "bf16"


def test_print_resolved_yaml(cli):
    result = cli("--variant", "ernie-21b-a3b-thinking", "--print")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert data["settings"]["REASONING_PARSER"] == "ernie-x1"
    assert data["settings"]["TOOL_CALL_PARSER"] == "ernie-x1"
    assert data["settings"]["QUANTIZATION"] == "wint4"
    assert data["base_image"].endswith(f"fastdeploy-cuda-12.6:{DEFAULT_RELEASE}")
    assert data["allowed_cuda_versions"][0] == "12.6"


def test_matrix(cli):
    result = cli("--matrix")
    assert result.returncode == 0
    matrix = json.loads(result.stdout)
    assert sorted(m["variant"] for m in matrix["include"]) == sorted(VARIANTS)
    one = json.loads(cli("--matrix", "--variant", "qwen3-8b").stdout)
    assert [m["variant"] for m in one["include"]] == ["qwen3-8b"]


def test_a_default_branch_baked_from_a_hub_without_a_commit_api_warns_on_build_only(
    cli, tmp_path, write_variant, fake_docker, hub
):
    """ModelScope and AI Studio are not asked for a commit (builder.image.model_revision speaks only the
    Hugging Face API): their unpinned bake warns once, on the build that downloads, never on render."""
    path = write_variant(
        "scope",
        """\
        # yaml-language-server: $schema=./variant.schema.json
        extends: _base
        name: scope
        title: From ModelScope
        description: Baked weights from ModelScope's default branch.
        model:
          id: baidu/ERNIE-4.5-0.3B-Paddle
          source: modelscope
        hub:
          gpu_ids: [ADA_24]
        """,
    )
    result = cli("--variant", str(path), "--render-only", "--out", str(tmp_path / "a"))
    assert result.returncode == 0 and result.stderr == ""
    built = cli("build", str(path), "--out", str(tmp_path / "a"), "--registry", "localhost:5000")
    assert built.returncode == 0, built.stderr
    assert built.stderr.startswith("warning: scope bakes baidu/ERNIE-4.5-0.3B-Paddle as its default")
    assert built.stderr.count("\n") == 1 and "warning" not in built.stdout
    assert hub.asked == []
    pinned = path.read_text().replace("  source: modelscope\n", "  source: modelscope\n  revision: v1.0\n")
    path.write_text(pinned)
    quiet = cli("build", str(path), "--out", str(tmp_path / "b"), "--registry", "localhost:5000")
    assert quiet.returncode == 0 and quiet.stderr == ""
    # Not baked: nothing to pin in the image.
    big = cli("--variant", "ernie-300b-a47b-wint4-tp4", "--render-only", "--out", str(tmp_path / "c"))
    assert big.returncode == 0 and "warning" not in big.stderr


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


def test_build_calls_images_with_tags_labels_args(fake_docker, tmp_path, cli):
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "runpod-1.12.0-py3-none-any.whl").write_bytes(b"z")
    result = cli(
        "push",
        "ernie-0.3b",
        "--out",
        str(tmp_path / "b"),
        "--registry",
        "localhost:5000",
        "--tag",
        "x1",
        "--base-image",
        "local/fd:test",
        "--wheelhouse",
        str(wh),
    )
    assert result.returncode == 0, result.stderr
    ((context_dir, tags, labels, args),) = fake_docker["build"]
    assert context_dir == tmp_path / "b"
    assert tags[0] == f"localhost:5000/fastdeploy-worker:ernie-0.3b-{__version__}"
    assert "localhost:5000/fastdeploy-worker:x1" in tags
    assert args == {"BASE_IMAGE": "local/fd:test"}
    assert "io.runpod.fastdeploy.variant" in labels
    assert fake_docker["push"] == [tags]
    assert (tmp_path / "b" / "wheels" / "runpod-1.12.0-py3-none-any.whl").exists()
    assert "sha256:" + "0" * 64 in result.stdout

"""A newcomer's first commands (issue 15): no placeholder ships, revisions are real, no warning on the
happy path, and each wrong turn is one paragraph."""

from __future__ import annotations

import json

import yaml

from builder.image.repository_choice import EXAMPLE_REPOSITORY, REGISTRY_ENV
from tests.builder.helpers import MINIMAL_VARIANT, ROOT, model_folder

PIN = "0123456789abcdef0123456789abcdef01234567"
OLD = "1" * 40


def test_the_example_repository_is_the_shipped_bases():
    base = yaml.safe_load((ROOT / "variants" / "_base.yaml").read_text())
    assert base["image"]["repository"] == EXAMPLE_REPOSITORY


def test_build_push_deploy_and_test_refuse_the_example_repository(cli, fake_docker, tmp_path):
    out = ["--out", str(tmp_path / "build")]
    for verb, extra in (("build", out), ("push", out), ("deploy", ["--dry-run"]), ("test", [])):
        result = cli(verb, "ernie-0.3b", *extra)
        assert result.returncode == 2, (verb, result.stderr)
        err = result.stderr
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert EXAMPLE_REPOSITORY in err
        for way in ("--registry", REGISTRY_ENV, "image.repository"):
            assert way in err, (way, err)
        assert result.stdout == ""
    assert fake_docker["build"] == [] and not (tmp_path / "build").exists()


def test_a_chosen_registry_builds_and_render_keeps_the_example(cli, fake_docker, tmp_path, monkeypatch):
    monkeypatch.setenv(REGISTRY_ENV, "localhost:5000/me")
    built = cli("build", "ernie-0.3b", "--out", str(tmp_path / "b"))
    assert built.returncode == 0, built.stderr
    assert fake_docker["build"][0][1][0].startswith("localhost:5000/me/fastdeploy-worker:ernie-0.3b-")
    flag_wins = cli("build", "ernie-0.3b", "--out", str(tmp_path / "c"), "--registry", "localhost:5001")
    assert flag_wins.returncode == 0
    assert fake_docker["build"][1][1][0].startswith("localhost:5001/fastdeploy-worker:")
    monkeypatch.setenv(REGISTRY_ENV, "Not A Registry")
    bad = cli("build", "ernie-0.3b", "--out", str(tmp_path / "d"))
    assert bad.returncode == 2 and REGISTRY_ENV in bad.stderr
    monkeypatch.delenv(REGISTRY_ENV)
    for argv in (["render", "ernie-0.3b", "--out", str(tmp_path / "r")], ["list"], ["print", "ernie-0.3b"],
                 ["matrix"], ["check", "ernie-0.3b", "--out", str(tmp_path / "r")]):  # fmt: skip
        result = cli(*argv)
        assert result.returncode == 0, (argv, result.stderr)
        assert result.stderr == "", (argv, result.stderr)


def test_a_variant_with_its_own_repository_builds(cli, fake_docker, write_variant, tmp_path):
    path = write_variant("mine", MINIMAL_VARIANT.format(name="mine") + "image:\n  repository: ghcr.io/me/w\n")
    result = cli("build", str(path), "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert fake_docker["build"][0][1][0].startswith("ghcr.io/me/w:mine-")


def _weights_spec(build_dir) -> dict:
    return json.loads((build_dir / "weights.json").read_text())


def test_a_build_bakes_the_commit_its_branch_points_to_now_without_a_warning(cli, fake_docker, hub, tmp_path):
    repo = "baidu/ERNIE-4.5-0.3B-Paddle"
    opts = ["--out", str(tmp_path / "b"), "--registry", "localhost:5000"]
    render = cli("render", "ernie-0.3b", "--out", str(tmp_path / "r"))
    assert render.returncode == 0 and render.stderr == ""
    assert _weights_spec(tmp_path / "r")["revision"] is None and hub.asked == []  # render asks nobody
    hub.branches[(repo, "main")] = OLD
    built = cli("build", "ernie-0.3b", *opts)
    assert built.returncode == 0 and built.stderr == "", built.stderr
    assert built.stdout.splitlines()[0] == f"ernie-0.3b: baking {repo} at main = {OLD}"
    assert hub.asked == [f"/api/models/{repo}/revision/main"] and hub.auth == [None]
    # The commit is what the in-build download fetches, what the image says, and the cache key.
    assert _weights_spec(tmp_path / "b")["revision"] == OLD
    assert f"{repo} at {OLD}" in (tmp_path / "b" / "Dockerfile").read_text()
    labels = fake_docker["build"][0][2]
    assert labels["io.runpod.fastdeploy.model-revision"] == OLD
    assert json.loads(labels["io.runpod.fastdeploy.layer.weights"])["revision"] == OLD
    hub.branches[(repo, "main")] = PIN  # the branch moved: the next build bakes (and keys) the new commit
    again = cli("push", "ernie-0.3b", *opts)
    assert again.returncode == 0 and again.stderr == ""
    assert _weights_spec(tmp_path / "b")["revision"] == PIN
    assert fake_docker["build"][1][2]["io.runpod.fastdeploy.model-revision"] == PIN
    assert (
        fake_docker["build"][1][2]["io.runpod.fastdeploy.layer.weights"]
        != labels["io.runpod.fastdeploy.layer.weights"]
    )
    # Nothing downloaded (weights staged from a folder), or a commit already named: nobody is asked.
    weights = model_folder(tmp_path / "w")
    staged = cli("build", "ernie-0.3b", *opts, "--weights-from", str(weights))
    assert staged.returncode == 0 and staged.stderr == "" and "baking" not in staged.stdout
    pinned = cli("build", "qwen3-8b", "--out", str(tmp_path / "q"), "--registry", "localhost:5000")
    assert pinned.returncode == 0 and pinned.stderr == ""
    assert len(hub.asked) == 2


def test_a_branch_the_hub_cannot_name_stops_the_build_before_anything_is_written(
    cli, fake_docker, hub, write_variant, tmp_path, monkeypatch
):
    path = write_variant("mine", MINIMAL_VARIANT.format(name="mine") + "  revision: no-such-branch\n")
    out = tmp_path / "b"
    for verb in ("build", "push"):
        result = cli(verb, str(path), "--out", str(out), "--registry", "localhost:5000")
        assert result.returncode == 2 and result.stdout == ""
        err = result.stderr
        assert err.count("\n") == 1 and "Traceback" not in err, err
        for part in ("baidu/ERNIE-4.5-0.3B-Paddle@no-such-branch", "HTTP 404 Not Found (RevisionNotFound",
                     "Check model.id", "HF_TOKEN", f"python -m builder.tools.pin_revisions {path}",
                     "--weights-from"):  # fmt: skip
            assert part in err, (part, err)
    # A private repository: the token is sent, never printed; without it the hub's 401 says what to set.
    hub.private.add("baidu/ERNIE-4.5-0.3B-Paddle")
    hub.token = "hf_PLANTEDsecret"
    path.write_text(MINIMAL_VARIANT.format(name="mine"))
    refused = cli("build", str(path), "--out", str(out), "--registry", "localhost:5000")
    assert refused.returncode == 2 and "HTTP 401 Unauthorized (RepoNotFound" in refused.stderr
    assert "HF_TOKEN" in refused.stderr
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    wrong = cli("build", str(path), "--out", str(out), "--registry", "localhost:5000")
    assert wrong.returncode == 2 and "Invalid credentials in Authorization header" in wrong.stderr
    monkeypatch.setenv("HF_TOKEN", "hf_PLANTEDsecret")
    hub.branches[("baidu/ERNIE-4.5-0.3B-Paddle", "main")] = OLD
    # The hub cannot be reached: exit 1 (an outside failure), and the way on.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    away = cli("build", str(path), "--out", str(out), "--registry", "localhost:5000")
    assert away.returncode == 1 and away.stderr.count("\n") == 1
    assert "cannot be read" in away.stderr and "HF_ENDPOINT" in away.stderr
    assert "PLANTED" not in away.stderr
    assert fake_docker["build"] == [] and not out.exists()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    ok = cli("build", str(path), "--out", str(out), "--registry", "localhost:5000")
    assert ok.returncode == 0 and hub.auth[-1] == "Bearer hf_PLANTEDsecret"
    assert "PLANTED" not in ok.stdout + ok.stderr


def test_revisions_that_cannot_be_git_revisions_are_refused(refused):
    for case, value, fragment in [
        ("placeholder", "<commit id>", "contains ' ' '<' '>'"),
        ("empty", "''", "is empty"),
        ("dots", "main..dev", "'..'"),
        ("lock", "main.lock", "'.lock'"),
        ("space", "my branch", "contains ' '"),
        ("dash", "-main", "starts with '/' or '-'"),
    ]:
        text = MINIMAL_VARIANT.format(name=case) + f"  revision: {value}\n"
        result = refused(case, text, ["model.revision", "commit id (40 or 64 hex digits)"])
        assert fragment in result.stderr, result.stderr
    text = MINIMAL_VARIANT.format(name="tab") + '  revision: "a\\tb"\n'
    refused("tab", text, ["model.revision", "control characters"])


def test_commits_branches_and_tags_are_accepted(cli, write_variant, tmp_path):
    for i, value in enumerate([PIN, "a" * 64, "main", "v1.0", "refs/pr/1"]):
        path = write_variant(f"ok{i}", MINIMAL_VARIANT.format(name=f"ok{i}") + f"  revision: {value}\n")
        result = cli("render", str(path), "--out", str(tmp_path / f"o{i}"))
        assert result.returncode == 0, result.stderr


def test_the_rendered_readme_spaces_the_model_name(cli, tmp_path):
    for name in ("ernie-0.3b", "qwen3-8b"):
        cli("render", name, "--out", str(tmp_path / name))
        text = (tmp_path / name / "README.md").read_text()
        assert "**with" not in text and "`)with" not in text
        assert " with\n[FastDeploy]" in text


def test_ctrl_c_is_one_line_exit_130_saying_what_was_left(cli, fake_docker, monkeypatch, tmp_path):
    from builder.commands import list_variants
    from builder.image import docker

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(docker, "build_image", interrupted)
    built = cli("build", "ernie-0.3b", "--out", str(tmp_path / "b"), "--registry", "localhost:5000")
    assert built.returncode == 130
    lines = [line for line in built.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in built.stderr
    assert lines[0].startswith("interrupted (Ctrl-C): ") and "Docker keeps every layer" in lines[0]
    monkeypatch.setattr(list_variants, "prepare_each", interrupted)
    listed = cli("list")
    assert listed.returncode == 130 and listed.stderr.strip() == "interrupted (Ctrl-C): nothing was written"


TORCH = """\
extends: _base
name: {name}
title: Torch weights
description: Hugging Face Torch weights.
model: {id: Qwen/Qwen3-8B, bake: false}
hub: {gpu_ids: [AMPERE_80]}
"""


def test_torch_weights_need_the_default_v1_loader(refused, cli, write_variant, tmp_path):
    explicit = ["engine.load_choices: 'default' loads torch weights of Qwen/Qwen3-8B", "default_v1"]
    refused("explicit", TORCH + "engine: {load_choices: default}\n", explicit)
    # FastDeploy 2.2's --load_choices defaults to "default": unset is refused there.
    refused("old", TORCH + "engine: {fastdeploy: '2.2.0'}\n",
            ["engine.load_choices: unset: loads torch weights", "(the release default)"])  # fmt: skip
    # From 2.3 the release default is default_v1 (the flag table imported from FastDeploy's source).
    ok = write_variant("fine", TORCH.replace("{name}", "fine"))
    assert cli("render", str(ok), "--out", str(tmp_path / "o")).returncode == 0


def test_a_broken_file_does_not_hide_the_others_from_list_and_matrix(cli, tmp_path):
    import json
    import shutil

    folder = tmp_path / "variants"
    shutil.copytree(ROOT / "variants", folder)
    shipped = len([p for p in folder.glob("*.yaml") if not p.name.startswith("_")])
    (folder / "broken.yaml").write_text("name: [\n")
    listed = cli("list", "--variants-dir", str(folder))
    assert listed.returncode == 2
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "ernie-0.3b" in rows and "qwen3-8b" in rows and rows["broken"].split()[1] == "BROKEN"
    assert "broken.yaml: (top level): YAML syntax error" in listed.stderr
    assert "1 broken variant file(s)" in listed.stderr and "Traceback" not in listed.stderr
    as_json = json.loads(cli("list", "--json", "--variants-dir", str(folder)).stdout)
    assert {"name": "broken", "broken": True} in as_json and len(as_json) == shipped + 1
    matrix = cli("matrix", "--variants-dir", str(folder))
    assert matrix.returncode == 2 and "broken.yaml" in matrix.stderr
    assert len(json.loads(matrix.stdout)["include"]) == shipped


def test_names_with_yaml_paths_and_base_files_get_a_paragraph(cli):
    yaml_name = cli("render", "ernie-0.3b.yaml")
    assert yaml_name.returncode == 2
    assert "did you mean the variant 'ernie-0.3b', i.e. variants/ernie-0.3b.yaml?" in yaml_name.stderr
    typo = cli("render", "variants/ernie-03b.yaml")
    assert typo.returncode == 2 and "did you mean 'variants/ernie-0.3b.yaml'?" in typo.stderr
    for ref in ("_base", "variants/_base.yaml"):
        base = cli("render", ref)
        assert base.returncode == 2, base.stderr
        assert "variants/_base.yaml is a base file" in base.stderr and "extends: _base" in base.stderr
        assert "is required" not in base.stderr


def test_an_empty_weights_folder_is_refused(cli, fake_docker, tmp_path):
    empty = tmp_path / "weights"
    (empty / "sub").mkdir(parents=True)
    result = cli("build", "ernie-0.3b", "--registry", "localhost:5000", "--out", str(tmp_path / "b"),
                 "--weights-from", str(empty))  # fmt: skip
    assert result.returncode == 2 and "holds no file" in result.stderr and "staged 0" not in result.stdout
    assert fake_docker["build"] == []


def test_check_reports_files_no_render_wrote(cli, tmp_path):
    out = tmp_path / "b"
    assert cli("render", "ernie-0.3b", "--out", str(out)).returncode == 0
    (out / "weights" / "model.safetensors").write_bytes(b"staged by a build")
    assert cli("check", "ernie-0.3b", "--out", str(out)).returncode == 0
    (out / "notes.txt").write_text("mine")
    result = cli("check", "ernie-0.3b", "--out", str(out))
    assert result.returncode == 1 and "extra    notes.txt (not rendered: remove it)" in result.stdout


def test_requirements_txt_installs_what_every_verb_imports():
    """The checkout's install step (requirements.txt) covers every package any builder module imports,
    openai included (deploy --wait, test --endpoint); pyproject offers it as the `endpoint` extra."""
    import ast
    import sys

    distributions = {"yaml": "pyyaml", "pydantic_core": "pydantic"}  # import name -> what installs it
    # Imported only on a path that says what to install when it is missing.
    # a gated model's host download; Python 3.10's TOML reader; the project's own packages
    optional = {"huggingface_hub", "tomli", "builder", "worker_runtime", "__future__"}
    imported = set()
    for path in (ROOT / "builder").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {
        distributions.get(name, name) for name in imported - set(sys.stdlib_module_names) - optional
    }
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    assert "openai" in third_party and third_party <= pinned, sorted(third_party - pinned)
    assert '"openai>=' in (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]

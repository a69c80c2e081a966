"""Inputs refused before anything slow (issue: fail early), and the entry point's own wrong turns: a
closed pipe, Ctrl-C during the imports, a package missing; every option's default shown in --help."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli import verb_parser
from tests.builder.helpers import MINIMAL_VARIANT, ROOT, model_folder

# Runs build.py as `python build.py ARGS` would, after PRELUDE (which fakes what the test needs).
RUN_BUILD_PY = "import runpy, sys; {prelude}; sys.argv = ['build.py', *sys.argv[1:]]; " \
    "runpy.run_path('build.py', run_name='__main__')"  # fmt: skip


def _build_py(prelude: str, *args: str) -> subprocess.CompletedProcess:
    code = RUN_BUILD_PY.format(prelude=prelude)
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_a_reader_that_closes_the_pipe_ends_list_without_a_traceback():
    """`python build.py list | head -1`: the reader is gone before build.py writes its table."""
    proc = subprocess.Popen(
        [sys.executable, "build.py", "list"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # as `head -1` does once it has its line
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert "Traceback" not in text and "BrokenPipeError" not in text and "Exception ignored" not in text, text


def test_ctrl_c_during_the_imports_is_one_line():
    """Ctrl-C in the first moment (the builder's imports): an import that raises KeyboardInterrupt."""
    prelude = (
        "import importlib.abc; "
        "F = type('F', (importlib.abc.MetaPathFinder,), {'find_spec': lambda self, name, path, target=None: "
        "(_ for _ in ()).throw(KeyboardInterrupt) if name == 'pydantic' else None}); "
        "sys.meta_path.insert(0, F())"
    )
    result = _build_py(prelude, "list")
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "interrupted (Ctrl-C): nothing was written"


def test_a_missing_package_is_one_paragraph_naming_the_install_command():
    """Outside a virtual environment: pydantic is not installed for this Python."""
    result = _build_py("sys.modules['pydantic'] = None", "list")
    assert result.returncode == 1
    err = result.stderr
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "'pydantic' is not installed" in err and "pip install -r requirements.txt" in err
    assert "python3 -m venv .venv" in err and sys.executable in err


def _actions_with_defaults():
    _, parsers = verb_parser()
    for verb, parser in parsers.items():
        for action in parser._actions:
            flags = (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction)
            if isinstance(action, flags):
                continue
            if action.default in (None, [], argparse.SUPPRESS) or not action.option_strings:
                continue
            yield verb, action


def test_every_option_with_a_default_shows_it_in_help():
    missing = [
        f"{verb} {action.option_strings[0]}"
        for verb, action in _actions_with_defaults()
        if "default" not in (action.help or "")
    ]
    assert not missing, missing
    _, parsers = verb_parser()
    assert "default 1200" in " ".join(parsers["test"].format_help().split())
    assert "default 1800" in " ".join(parsers["deploy"].format_help().split())


def test_an_unknown_model_leads_with_weights_gb(refused):
    text = MINIMAL_VARIANT.replace("baidu/ERNIE-4.5-0.3B-Paddle", "acme/Unknown-7B")
    result = refused("unknown", text, ["model.id: 'acme/Unknown-7B' needs model.weights_gb"])
    assert "allowed:" not in result.stderr and "Qwen/Qwen3-8B" not in result.stderr


def test_a_registry_naming_the_whole_repository_is_used_as_it_and_said(cli, fake_docker, tmp_path):
    """`--registry ghcr.io/acme/fastdeploy-worker` (as image.repository is written) is the repository,
    never `.../fastdeploy-worker/fastdeploy-worker`; a plain namespace still gets the image's name."""
    whole = cli(
        "build", "ernie-0.3b", "--out", str(tmp_path / "a"), "--registry", "ghcr.io/acme/fastdeploy-worker"
    )
    assert whole.returncode == 0, whole.stderr
    tags = fake_docker["build"][0][1]
    assert tags[0] == "ghcr.io/acme/fastdeploy-worker:ernie-0.3b-" + tags[0].rsplit("-", 1)[-1]
    assert all(t.startswith("ghcr.io/acme/fastdeploy-worker:") for t in tags), tags
    assert "used as the whole repository" in whole.stdout
    namespace = cli("build", "ernie-0.3b", "--out", str(tmp_path / "b"), "--registry", "ghcr.io/acme")
    assert namespace.returncode == 0, namespace.stderr
    assert fake_docker["build"][1][1][0].startswith("ghcr.io/acme/fastdeploy-worker:ernie-0.3b-")
    assert "whole repository" not in namespace.stdout
    deploy = cli("deploy", "ernie-0.3b", "--dry-run", "--registry", "ghcr.io/acme/fastdeploy-worker")
    assert deploy.returncode == 0, deploy.stderr
    assert "deploying ghcr.io/acme/fastdeploy-worker:ernie-0.3b-" in deploy.stdout
    assert "used as the whole repository" in deploy.stdout


def test_a_variant_without_test_jobs_is_refused_with_the_reason(refused):
    """No `extends: _base`: tests.json would hold no job, and `test` would report `0 of 0` after a build."""
    text = MINIMAL_VARIANT.replace("extends: _base\n", "") + (
        "image: {repository: ghcr.io/acme/fastdeploy-worker}\n"
        "engine: {fastdeploy: '2.5.0', cuda: '12.6'}\n"
        "hub: {gpu_ids: [ADA_24]}\n"
    )
    result = refused("nojobs", text, ["tests.jobs: is empty", "extends: _base"])
    assert "1 error(s)" in result.stderr


def test_a_missing_required_key_does_not_hide_the_other_problems(refused):
    """A file without `image` (and no base giving one) still shows its unknown model, in the same run."""
    text = (
        MINIMAL_VARIANT.replace("extends: _base\n", "").replace(
            "baidu/ERNIE-4.5-0.3B-Paddle", "acme/Unknown-7B"
        )
        + "engine: {fastdeploy: '2.5.0', cuda: '12.6', tensor_parallel_size: 0}\n"
    )
    result = refused(
        "noimage",
        text,
        [
            "image: is required",
            "model.id: 'acme/Unknown-7B' needs model.weights_gb",
            "engine.tensor_parallel_size: 0 is invalid",
        ],
    )
    assert "Traceback" not in result.stderr


def test_weights_from_a_folder_that_is_no_model_is_refused_before_anything_is_built(
    cli, fake_docker, tmp_path
):
    """A README.md alone (or weights without config.json, or an index naming a shard that is not there)
    would bake a model no worker can start: one paragraph naming what is missing; nothing built."""
    opts = ["--registry", "localhost:5000", "--out", str(tmp_path / "b")]
    readme = tmp_path / "readme"
    readme.mkdir()
    (readme / "README.md").write_text("# a model card\n")
    result = cli("build", "ernie-0.3b", *opts, "--weights-from", str(readme))
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "Traceback" not in err and err.count("\n") == 1, err
    for missing in ("no config.json", "no weight file", "no tokenizer file"):
        assert missing in err, err
    assert "staged" not in result.stdout and fake_docker["build"] == []
    assert not (tmp_path / "b").exists(), "nothing is written before the weights are checked"
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    sharded = model_folder(
        tmp_path / "sharded",
        {
            "model.safetensors.index.json": json.dumps(index).encode(),
            "model-00001-of-00002.safetensors": b"w",
        },
    )
    result = cli("build", "ernie-0.3b", *opts, "--weights-from", str(sharded))
    assert result.returncode == 2 and "model-00002-of-00002.safetensors" in result.stderr, result.stderr
    assert fake_docker["build"] == []
    whole = model_folder(tmp_path / "whole")
    assert cli("build", "ernie-0.3b", *opts, "--weights-from", str(whole)).returncode == 0
    assert len(fake_docker["build"]) == 1


class _Interrupter:
    """Ctrl-C at the n-th file-system write of a render: a file write stops halfway (half its bytes
    written), a rename, removal or folder creation does not happen."""

    def __init__(self) -> None:
        self.count, self.at = 0, 0
        self.real = {
            "write_bytes": Path.write_bytes,
            "unlink": Path.unlink,
            "mkdir": Path.mkdir,
            "rmdir": Path.rmdir,
            "replace": os.replace,
        }

    def _now(self) -> bool:
        self.count += 1
        return self.count == self.at

    def install(self, mp, at: int) -> None:
        self.count, self.at = 0, at

        def write_bytes(path, data):
            if self._now():
                self.real["write_bytes"](path, data[: len(data) // 2])
                raise KeyboardInterrupt
            return self.real["write_bytes"](path, data)

        def wrap(name):
            def op(*args, **kwargs):
                if self._now():
                    raise KeyboardInterrupt
                return self.real[name](*args, **kwargs)

            return op

        mp.setattr(Path, "write_bytes", write_bytes)
        for name in ("unlink", "mkdir", "rmdir"):
            mp.setattr(Path, name, wrap(name))
        mp.setattr(os, "replace", wrap("replace"))


@pytest.mark.slow
@pytest.mark.parametrize("before", [None, "qwen3-8b-cached"], ids=["new directory", "over another render"])
def test_a_render_interrupted_at_any_write_is_completed_by_the_next(cli, tmp_path, monkeypatch, before):
    """Ctrl-C at every file-system write of `render` (into a new directory, or over another variant's
    render): the message's promise holds, the next render succeeds and leaves exactly a fresh render."""
    interrupter = _Interrupter()

    def scenario(out: Path) -> None:
        if before:
            assert cli("render", before, "--out", str(out)).returncode == 0

    counted = tmp_path / "counted"
    scenario(counted)
    with monkeypatch.context() as mp:
        interrupter.install(mp, at=0)
        assert cli("render", "ernie-0.3b", "--out", str(counted)).returncode == 0
    writes = interrupter.count
    assert writes > 10, writes  # every write a render makes here is a point of interruption
    for at in range(1, writes + 1):
        out = tmp_path / f"at{at}"
        scenario(out)
        with monkeypatch.context() as mp:
            interrupter.install(mp, at)
            stopped = cli("render", "ernie-0.3b", "--out", str(out))
        assert stopped.returncode == 130 and "running `render` again completes it" in stopped.stderr
        again = cli("render", "ernie-0.3b", "--out", str(out))
        assert again.returncode == 0, (at, again.stderr)
        checked = cli("check", "ernie-0.3b", "--out", str(out))
        assert checked.returncode == 0, (at, checked.stdout, checked.stderr)
        assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
            p.name for p in (tmp_path / "counted").rglob("*") if p.is_file()
        ), at


TP = MINIMAL_VARIANT + "engine:\n  tensor_parallel_size: {tp}\nhub:\n  gpu_ids: [AMPERE_80]\n"


def test_a_tensor_parallel_size_that_is_no_power_of_two_is_refused(refused):
    """`tensor_parallel_size: 3` on ernie-0.3b rendered `gpuCount: 3` without a word."""
    refused(
        "tp3",
        TP.format(name="{name}", tp=3),
        ["engine.tensor_parallel_size: 3 is not a size FastDeploy 2.5.0 splits a model over",
         "allowed: 1, 2, 4, 8"],
    )  # fmt: skip


def test_a_tensor_parallel_size_that_does_not_split_the_heads_is_refused(refused):
    """ERNIE-4.5-21B-A3B has 20 attention heads (models.yaml): 8 GPUs cannot each take whole heads."""
    text = TP.format(name="{name}", tp=8).replace("ERNIE-4.5-0.3B-Paddle", "ERNIE-4.5-21B-A3B-Paddle")
    refused(
        "tp8",
        text,
        ["engine.tensor_parallel_size: 8 cannot split baidu/ERNIE-4.5-21B-A3B-Paddle: its 20 attention heads "
         "do not split evenly over 8 GPUs; allowed: 1, 2, 4"],
    )  # fmt: skip


def test_known_models_split_over_the_sizes_their_heads_allow():
    from builder.compat import Heads, load_compat, tensor_parallel_problem

    compat = load_compat()
    ernie = compat.heads("baidu/ERNIE-4.5-0.3B-Paddle")
    assert (ernie.attention, ernie.key_value) == (16, 2)
    # 2 key-value heads over 4 GPUs: each copied to two GPUs, as FastDeploy's QKV layer does.
    assert [n for n in (1, 2, 4, 8) if not tensor_parallel_problem(n, ernie)] == [1, 2, 4, 8]
    assert tensor_parallel_problem(2, Heads(3, 3)) == "its 3 attention heads and its 3 key-value heads do " \
        "not split evenly over 2 GPUs"  # fmt: skip
    assert compat.heads("Qwen/Qwen3-0.6B") == Heads(None, None)  # not confirmed: unknown, not guessed
    assert Heads.of_config({"text_config": {"num_attention_heads": 20}}) == Heads(20, 20)


def test_weights_from_a_model_whose_heads_do_not_split_is_refused(cli, fake_docker, write_variant, tmp_path):
    """A baked model's own config.json is checked against the variant's tensor parallel size."""
    path = write_variant("tp2", TP.format(name="tp2", tp=2) + "image:\n  repository: localhost:5000/w\n")
    folder = model_folder(tmp_path / "m", {"config.json": b'{"num_attention_heads": 3}'})
    result = cli("build", str(path), "--out", str(tmp_path / "b"), "--weights-from", str(folder))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "by its config.json, its 3 attention heads and its 3 key-value heads do not split evenly over 2 " \
        "GPUs" in result.stderr  # fmt: skip
    assert fake_docker["build"] == []

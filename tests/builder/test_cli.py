"""The command line in-process (`main(argv)`): verbs, the flag form mapped onto them, no silent precedence,
exit statuses, and the verb registry others extend."""

from __future__ import annotations

import argparse
import json
import types

import pytest

from builder import cli
from builder.commands import VERBS
from tests.builder.helpers import ROOT


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_verb_module_has_the_interface():
    names = [v.NAME for v in VERBS]
    assert names == [
        "render", "build", "push", "test", "deploy", "check", "list", "print", "matrix", "schema"
    ]  # fmt: skip
    for verb in VERBS:
        assert isinstance(verb.HELP, str) and verb.HELP
        assert callable(verb.add_parser) and callable(verb.run)


def test_help_lists_every_verb(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for verb in VERBS:
        assert f"    {verb.NAME} " in out
    assert "flag form" in out


def test_a_new_verb_is_a_module_and_one_entry(monkeypatch, capsys):
    calls = []

    def add_parser(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--who", default="world")
        return p

    def run_hello(args: argparse.Namespace) -> int:
        calls.append(args.who)
        return 3

    verb = types.SimpleNamespace(NAME="hello", HELP="say hello", add_parser=add_parser, run=run_hello)
    monkeypatch.setattr(cli, "VERBS", (*VERBS, verb))
    assert cli.main(["hello", "--who", "you"]) == 3
    assert calls == ["you"]
    _, out, _ = run(capsys, "--help")
    assert "hello" in out


@pytest.mark.parametrize(
    ("verb", "flags"),
    [
        (["list"], ["--list"]),
        (["list", "--json"], ["--list", "--json"]),
        (["matrix", "qwen3-8b"], ["--matrix", "--variant", "qwen3-8b"]),
        (["print", "ernie-0.3b"], ["--variant", "ernie-0.3b", "--print"]),
        (["schema"], ["--schema"]),
    ],
)
def test_verb_and_flag_form_print_the_same(capsys, verb, flags):
    a = run(capsys, *verb)
    b = run(capsys, *flags)
    assert a == b and a[0] == 0 and a[1]


def test_render_verb_and_flag_form_write_the_same_bytes(capsys, tmp_path):
    assert cli.main(["render", "ernie-0.3b", "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["--variant", "ernie-0.3b", "--render-only", "--out", str(tmp_path / "b")]) == 0

    def tree(path):
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}

    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    capsys.readouterr()
    code, out, _ = run(capsys, "check", "--variant", "ernie-0.3b", "--out", str(tmp_path / "b"))
    assert code == 0 and "is up to date" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--list", "--schema"],
        ["--variant", "ernie-0.3b", "--print", "--render-only"],
        ["--variant", "ernie-0.3b", "--check", "--push"],
        ["--matrix", "--list"],
    ],
)
def test_two_actions_are_a_usage_error(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "not allowed with argument" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--list", "--out", "x"], "--out does not go with --list"),
        (["--variant", "ernie-0.3b", "--json"], "--json does not go with a build"),
        (["--schema", "--variant", "ernie-0.3b"], "--variant does not go with --schema"),
        (["--variant", "ernie-0.3b", "--render-only", "--push"], "not allowed with argument"),
        (["--variant", "ernie-0.3b", "--render-only", "--wheelhouse", "w"], "--wheelhouse does not go with"),
        (["list", "--out", "x"], "unrecognized arguments: --out"),
        (["schema", "ernie-0.3b"], "unrecognized arguments: ernie-0.3b"),
        (["rendr", "ernie-0.3b"], "invalid choice: 'rendr'"),
    ],
)
def test_an_option_the_verb_does_not_take_is_a_usage_error(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "usage:" in err


@pytest.mark.parametrize("argv", [[], ["render"], ["--render-only"], ["print"]])
def test_no_selection_is_a_usage_error(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--variant" in err and "Traceback" not in err


def test_unknown_variant_is_a_command_line_error(capsys):
    code, _, err = run(capsys, "render", "ernie-03b")
    assert code == 2
    assert "usage: build.py render" in err
    assert "--variant ernie-03b: no such variant in variants (did you mean 'ernie-0.3b'?)" in err
    assert "nothing was written" not in err  # not a variant-file error
    code, _, err = run(capsys, "--variant", "missing/file.yaml", "--print")
    assert code == 2 and "--variant missing/file.yaml: no such file" in err


def test_installed_command_names_itself(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["fastdeploy-runpod", "render"])
    assert cli.console() == 2
    assert capsys.readouterr().err.startswith("usage: fastdeploy-runpod render")


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("build.py ")


def test_build_and_push_verbs_equal_the_flag_form(fake_docker, capsys, tmp_path):
    calls = fake_docker
    opts = ["--out", str(tmp_path / "b"), "--registry", "localhost:5000", "--tag", "x1"]
    assert cli.main(["build", "ernie-0.3b", *opts]) == 0
    assert cli.main(["--variant", "ernie-0.3b", *opts]) == 0
    assert calls["push"] == [] and len(calls["build"]) == 2
    assert calls["build"][0][1] == calls["build"][1][1]
    capsys.readouterr()
    code, out, _ = run(capsys, "push", "ernie-0.3b", *opts)
    assert code == 0 and calls["push"] == [calls["build"][0][1]]
    assert "pushed localhost:5000/fastdeploy-worker:x1@sha256:" in out
    assert cli.main(["--variant", "ernie-0.3b", "--push", *opts]) == 0
    assert calls["push"][1] == calls["push"][0]


def test_a_failed_build_exits_1_and_the_other_variants_still_build(fake_docker, capsys, tmp_path):
    calls = fake_docker
    calls["fail"].add("ernie-0.3b")
    code, out, err = run(
        capsys, "build", "ernie-0.3b", "qwen3-8b", "--out", str(tmp_path), "--registry", "localhost:5000"
    )
    assert code == 1
    assert [c[1][0].rsplit(":", 1)[1].rsplit("-", 1)[0] for c in calls["build"]] == ["ernie-0.3b", "qwen3-8b"]
    assert "error: The base image of" in err and "Traceback" not in err
    assert "built qwen3-8b: sha256:image" in out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--tag", "bad tag", "is not a valid image tag"),
        ("--registry", "Host:5000", "is not HOST[:PORT][/NAMESPACE] in lower case"),
    ],
)
def test_bad_image_names_are_refused_before_anything_is_written(capsys, tmp_path, option, value, message):
    code, out, err = run(capsys, "build", "ernie-0.3b", "--out", str(tmp_path / "b"), option, value)
    assert code == 2 and message in err and out == ""
    assert not (tmp_path / "b").exists()


def test_list_json_rows(capsys):
    code, out, _ = run(capsys, "list", "--json", "--variants-dir", str(ROOT / "variants"))
    assert code == 0
    assert {r["name"] for r in json.loads(out)} >= {"ernie-0.3b", "qwen3-8b"}

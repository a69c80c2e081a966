"""Command line: `python build.py VERB [options]`, one verb per module of builder/commands/.

The flag form of earlier versions keeps working and maps onto the verbs: `python build.py --variant NAME`
builds (`--push`: push); `--render-only`, `--check`, `--list`, `--print`, `--matrix`, `--schema` pick the
verb of that name. Two of them together, or an option the chosen verb does not take, is a usage error:
no silent precedence.

Exit status: 0 done; 2 wrong input (command line, variant files, build inputs); 1 Docker or a registry
failed, or `check` found a build directory out of date; 130 interrupted (Ctrl-C: one line saying what the
verb left, from its module's ``INTERRUPTED``). Every `BuilderError` is printed without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from builder import __version__
from builder.commands import VERBS, build
from builder.commands.common import add_image_options, add_out, add_selection
from builder.errors import BuilderError, UsageError

PROG = "build.py"
INTERRUPTED_STATUS = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
# The flag form: action flag -> verb. No action flag: build (with --push: push).
ACTION_FLAGS = {
    "--render-only": "render",
    "--check": "check",
    "--list": "list",
    "--print": "print",
    "--matrix": "matrix",
    "--schema": "schema",
}


def _version(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def verb_parser(prog: str = PROG) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """`build.py VERB ...`: the top parser and each verb's own."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Render FastDeploy RunPod worker build directories; build and push their images.",
        epilog="`build.py VERB --help` describes a verb. The flag form of earlier versions also works: "
        "`build.py --variant NAME` builds; --push, --render-only, --check, --list, --print, --matrix and "
        "--schema pick the verb of that name (one at a time).",
    )
    _version(p)
    subparsers = p.add_subparsers(title="verbs", dest="verb", metavar="VERB")
    parsers = {}
    for verb in VERBS:
        parsers[verb.NAME] = verb.add_parser(subparsers)
        parsers[verb.NAME].set_defaults(run=verb.run)
    return p, parsers


def flag_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The flag form: every option of the verbs it maps to, and one action flag at most."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="The flag form of `build.py VERB` (`build.py --help` lists the verbs).",
    )
    add_selection(p, default_all=False, positional=False)
    actions = p.add_argument_group("actions (one at most; none: build)")
    one = actions.add_mutually_exclusive_group()
    for flag, verb in ACTION_FLAGS.items():
        one.add_argument(flag, dest="action", action="store_const", const=verb, help=f"as `build.py {verb}`")
    one.add_argument("--push", dest="action", action="store_const", const="push", help="as `build.py push`")
    p.add_argument("--json", action="store_true", help="with --list: JSON instead of a table")
    add_out(p)
    add_image_options(p)
    _version(p)
    return p


def _from_flags(
    argv: list[str], fp: argparse.ArgumentParser, parsers: dict[str, argparse.ArgumentParser]
) -> argparse.Namespace:
    """The verb namespace for a flag-form command line; UsageError for an option the verb does not take."""
    given = fp.parse_args(argv)
    verb = given.action or build.NAME
    accepted = vars(parsers[verb].parse_args([]))
    flag_of = {v: f for f, v in ACTION_FLAGS.items()} | {"push": "--push"}
    for action in fp._actions:
        if action.dest in ("action", "help", "version") or action.dest in accepted:
            continue
        if getattr(given, action.dest) != action.default:
            raise UsageError(f"{action.option_strings[0]} does not go with {flag_of.get(verb, 'a build')}")
    args = argparse.Namespace(**accepted)
    for key in accepted:
        if hasattr(given, key):
            setattr(args, key, getattr(given, key))
    return args


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top, parsers = verb_parser(prog)
    flag_form = bool(argv) and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")
    parser = flag_parser(prog) if flag_form else top  # the one whose usage a UsageError shows
    args: argparse.Namespace | None = None
    try:
        if flag_form:
            args = _from_flags(argv, parser, parsers)
        else:
            args = top.parse_args(argv)
            if args.verb is None:
                raise UsageError(
                    f"choose a verb ({', '.join(parsers)}), or use the flag form `build.py --variant NAME`; "
                    "`build.py --help` describes them"
                )
            parser = parsers[args.verb]
        return args.run(args)
    except SystemExit as exc:  # argparse: --help, --version, and its own usage errors
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BuilderError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C: one line saying what was left, the shell's status for SIGINT
        verb = sys.modules.get(getattr(getattr(args, "run", None), "__module__", ""), None)
        left = getattr(verb, "INTERRUPTED", "nothing was written")
        print(f"\ninterrupted (Ctrl-C): {left}", file=sys.stderr)
        return INTERRUPTED_STATUS


def entry(prog: str = PROG) -> int:
    """`main` for a process: a reader that closed the pipe (`build.py list | head -1`) ends it quietly."""
    try:
        status = main(prog=prog)
        sys.stdout.flush()  # here, where the error can be caught, not at the interpreter's exit
        return status
    except BrokenPipeError:
        # Nothing more can be shown; stdout goes to /dev/null so that the exit's flush raises nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def console() -> int:
    """The `fastdeploy-runpod` command of an installed copy (`pip install .`)."""
    return entry(prog="fastdeploy-runpod")

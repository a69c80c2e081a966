"""The verbs of `python build.py VERB`, one module each.

A verb module has:

- ``NAME``: the verb (``render``); ``HELP``: one line for ``build.py --help``;
- ``add_parser(subparsers) -> argparse.ArgumentParser``: adds ``subparsers.add_parser(NAME, ...)`` with the
  verb's options (``builder.commands.common`` has the shared ones: selection, ``--out``, image options);
- ``run(args) -> int``: does the work and returns the exit status. Anything the user must fix is raised as
  a ``builder.errors.BuilderError`` (``UsageError`` for the command line), which carries its exit status;
  the CLI prints it without a traceback.

A new verb is a new module here and one entry in ``VERBS`` (the order of ``build.py --help``).
"""

from __future__ import annotations

from builder.commands import (
    build,
    check,
    deploy,
    list_variants,
    matrix,
    print_variant,
    push,
    render,
    run_tests,
    schema,
)

VERBS = (render, build, push, run_tests, deploy, check, list_variants, print_variant, matrix, schema)

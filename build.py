#!/usr/bin/env python3
"""Render, build and push FastDeploy RunPod worker images: python build.py --variant NAME (see --help)."""

import sys

INTERRUPTED_STATUS = 130  # 128 + SIGINT, as builder.cli reports it
MISSING_STATUS = 1


def missing_package(name: str) -> str:
    """One paragraph for a package of requirements.txt this Python does not have."""
    return (
        f"error: build.py needs the packages of requirements.txt, and {name!r} is not installed for "
        f"{sys.executable}. Install them in a virtual environment (README, step 1): "
        "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt; "
        "then run build.py with that environment's python."
    )


def start() -> int:
    # The builder's imports take a moment: Ctrl-C or a missing package there is one paragraph too.
    try:
        from builder.cli import entry
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): nothing was written", file=sys.stderr)
        return INTERRUPTED_STATUS
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] in ("builder", "worker_runtime"):
            raise  # the checkout itself is broken: a traceback is the useful answer
        print(missing_package(exc.name.split(".")[0]), file=sys.stderr)
        return MISSING_STATUS
    return entry()


if __name__ == "__main__":
    sys.exit(start())

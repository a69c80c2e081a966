"""How the suite is shared among pytest-xdist's workers (`-n 4 --dist loadgroup`, pyproject.toml).

A test goes to any free worker, except in these groups, each run by one worker in collection order:
- `docker`: the Docker tests share one engine's session fixtures (the registry service, the stand-in
  base image, the wheelhouse);
- `runtime`: the tests that start the runtime. Its ports, and the engine's, are found free and let go
  before the engine and the worker bind them; two runtimes starting at once on one host may be handed
  the same port, so they start one at a time;
- a module whose tests share a fixture wider than a test: its one worker sets the fixture up once.

The `slow` tests (minutes-long scenarios) are collected first and run outside the groups, so that no
worker starts one when the others are nearly done.

Hypothesis runs without its per-example deadline: a wall-clock limit that four workers on two cores
turn into failures of correct code (the suite checks what a test does, never how fast)."""

from __future__ import annotations

import pytest
from hypothesis import settings

settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

RUNTIME_FIXTURES = {"runtime", "local_runtime_factory"}  # tests/deploy's runtimes
RUNTIME_HARNESS = {"RuntimeProcess", "start_local", "start_lb"}  # tests/runtime/conftest.py's, imported


def _starts_runtimes(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    imported = RUNTIME_HARNESS & set(vars(module)) if module else set()
    fixtures = RUNTIME_FIXTURES & set(getattr(item, "fixturenames", ()))
    return item.nodeid.startswith("tests/runtime/") or bool(imported or fixtures)


def _group(item: pytest.Item) -> str | None:
    if item.get_closest_marker("docker"):
        return "docker"
    if item.get_closest_marker("slow"):
        return None
    if _starts_runtimes(item):
        return "runtime"
    module = item.nodeid.split("::")[0]
    fixtures = getattr(item, "_fixtureinfo", None)
    defs = fixtures.name2fixturedefs.values() if fixtures else ()
    if any(d.scope != "function" and d.baseid.startswith(module) for ds in defs for d in ds):
        return module
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

"""How the suite is shared among pytest-xdist's workers (`-n 4 --dist loadgroup`, pyproject.toml).

A test goes to any free worker, except where state is shared: the Docker tests share one engine's
session fixtures (the registry service, the stand-in base image, the wheelhouse), so they all run on one
worker; the tests of a module that share a fixture wider than a test (a runtime started once for them)
run on one worker, which starts it once. The `slow` tests are collected first, so that no worker starts
a minutes-long scenario when the others are nearly done."""

from __future__ import annotations

import pytest


def _group(item: pytest.Item) -> str | None:
    if item.get_closest_marker("docker"):
        return "docker"
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

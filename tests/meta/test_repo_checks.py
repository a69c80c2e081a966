"""Repository-wide checks: lint, generated reference pages, Python 3.10 compatibility of the runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_is_clean_on_the_whole_repository():
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_reference_pages_are_current():
    result = run(sys.executable, "-m", "builder.tools.docs", "--check")
    assert result.returncode == 0, result.stderr


def test_reference_pages_name_every_runtime_setting_and_variant_field():
    from builder.variant.models import Variant
    from worker_runtime.config.settings import SETTINGS

    settings_page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in settings_page
    variant_page = (ROOT / "docs" / "variant-reference.md").read_text(encoding="utf-8")
    for name in Variant.model_fields:
        assert f"| `{name}` |" in variant_page


def test_route_tables_in_the_docs_list_every_route_of_the_table():
    from builder.tools.docs import BLOCKS, fill_blocks
    from worker_runtime.config.routes import LOAD_BALANCER, ROUTES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lb_page = (ROOT / "docs" / "load-balancing.md").read_text(encoding="utf-8")
    for route in ROUTES:
        assert f"| `{route.method} {route.path}` |" in readme
        assert (f"| `{route.method} {route.path}` |" in lb_page) == (LOAD_BALANCER in route.doors)
    # A page whose block markers were removed is named, not silently left stale.
    try:
        fill_blocks("no markers\n", BLOCKS["docs/load-balancing.md"], "docs/load-balancing.md")
    except SystemExit as stop:
        assert "docs/load-balancing.md has no '<!-- generated: lb-routes -->' block" in str(stop)
    else:
        raise AssertionError("fill_blocks accepted a page without its markers")


def test_contracts_link_the_settings_page_instead_of_restating_it():
    from worker_runtime.config.settings import SETTINGS

    contracts = (ROOT / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")
    assert "(settings.md)" in contracts
    restated = [s.env for s in SETTINGS if f"| {s.env} |" in contracts or f"| `{s.env}` |" in contracts]
    assert restated == [], "CONTRACTS.md restates rows of docs/settings.md"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_runtime_constraints_pin_the_requirements():
    requirements = _pins(ROOT / "worker_runtime" / "requirements.txt")
    constraints = _pins(ROOT / "worker_runtime" / "constraints.txt")
    for name, version in requirements.items():
        assert constraints.get(name) == version, (name, version, constraints.get(name))


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12"])
def test_runtime_constraints_are_complete_on_every_supported_python(python: str):
    """pip resolves the runtime on 3.10-3.12 with the constraints, and installs nothing unpinned."""
    from builder.tools.lock_runtime import CONSTRAINTS, resolve

    constraints = _pins(CONSTRAINTS)
    resolved = dict(pin.split("==") for pin in resolve(python, CONSTRAINTS))
    unpinned = {name: v for name, v in resolved.items() if constraints.get(name) != v}
    assert not unpinned, f"Python {python}: not pinned by constraints.txt: {unpinned}"

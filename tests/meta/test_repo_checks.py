"""Repository-wide checks: lint, generated reference pages, Python 3.10 compatibility of the runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_is_clean_on_the_whole_repository():
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_reference_pages_are_current():
    result = run(sys.executable, "-m", "builder.docs", "--check")
    assert result.returncode == 0, result.stderr


def test_reference_pages_name_every_runtime_setting_and_variant_field():
    from builder.models import Variant
    from worker_runtime.settings import SETTINGS

    settings_page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in settings_page
    variant_page = (ROOT / "docs" / "variant-reference.md").read_text(encoding="utf-8")
    for name in Variant.model_fields:
        assert f"| `{name}` |" in variant_page

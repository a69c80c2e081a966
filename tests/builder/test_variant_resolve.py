"""builder.variant.resolve: what the compatibility data fills in for a variant."""

from __future__ import annotations

from builder.compat import load_compat
from builder.variant.pipeline import prepare
from tests.builder.helpers import ROOT


def test_resolution_fills_defaults():
    r = prepare(ROOT / "variants" / "ernie-300b-a47b-wint4-tp4.yaml").resolved
    assert r.gpu_count == 4
    assert r.container_disk_gb == load_compat().needed_disk_gb(600)
    assert r.allowed_cuda_versions == ["12.6", "12.7", "12.8", "12.9", "13.0"]
    assert r.settings["MODEL"] == "baidu/ERNIE-4.5-300B-A47B-Paddle"
    assert r.settings["MODEL_SOURCE"] == "huggingface"
    assert r.settings["ENGINE_STARTUP_TIMEOUT"] == 3600
    assert r.model_dir is None and not r.bake

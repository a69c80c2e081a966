"""`python -m builder.tools.refresh_pools` against the fake management API's GPU catalogue (real HTTP,
answers validated against RunPod's schema): it agrees with the shipped pools, reports and rewrites a
changed pool, stops on a type without a known architecture, and never prints the key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builder.compat import GPU_ARCHS_FILE, POOLS_FILE, load_compat
from builder.paths import COMPAT_DIR, ENGINE_FLAGS
from builder.tools.refresh_pools import pools_block
from tests.deploy.fake_catalog import gpu_type

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path):
    """A copy of the compatibility data folder; the refresh rewrites its gpu_pools.yaml."""
    folder = tmp_path / "compat"
    shutil.copytree(COMPAT_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return folder


def refresh(fake, folder: Path, *extra: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(RUNPOD_API_KEY=key or fake.api_key, HOME=str(folder.parent / "home"))
    argv = [
        "--api-url",
        fake.url,
        "--file",
        str(folder / POOLS_FILE),
        "--archs",
        str(folder / GPU_ARCHS_FILE),
    ]
    return subprocess.run(
        [sys.executable, "-m", "builder.tools.refresh_pools", *argv, *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_shipped_pools_are_what_the_catalogue_says(fake_api, data):
    ran = refresh(fake_api, data, "--check")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("same") == len(load_compat().pools) == 8
    # The shipped block is byte for byte what the refresh writes.
    text = (data / POOLS_FILE).read_text()
    assert pools_block(yaml.safe_load(text)["pools"]) == text[text.index("\npools:") + 1 :]


def test_a_changed_pool_fails_the_check_then_is_rewritten(fake_api, data):
    fake_api.gpus = [g for g in fake_api.gpus if g["id"] != "NVIDIA L4"]
    fake_api.gpus.append(gpu_type("NVIDIA GeForce RTX 5090", "RTX 5090", 32, "ADA_24"))
    before = (data / POOLS_FILE).read_text()
    ran = refresh(fake_api, data, "--check")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "changed  ADA_24: +NVIDIA GeForce RTX 5090 (sm120, 32 GB)" in ran.stdout
    assert "changed  AMPERE_24: -NVIDIA L4" in ran.stdout
    assert (data / POOLS_FILE).read_text() == before  # --check writes nothing

    ran = refresh(fake_api, data)
    assert ran.returncode == 0 and "wrote 8 pools" in ran.stdout, ran.stdout + ran.stderr
    text = (data / POOLS_FILE).read_text()
    assert text.split("pools:")[0] == before.split("pools:")[0]  # the header comments stay
    compat = load_compat(data, ENGINE_FLAGS)  # typed and cross-checked like the shipped file
    assert [t.id for t in compat.pool("ADA_24").types] == [
        "NVIDIA GeForce RTX 4090",
        "NVIDIA GeForce RTX 5090",
    ]
    assert compat.pool("AMPERE_24").type("NVIDIA L4") is None
    assert refresh(fake_api, data, "--check").returncode == 0


def test_a_type_without_a_known_architecture_stops_the_refresh(fake_api, data):
    fake_api.gpus.append(gpu_type("NVIDIA RTX PRO 9000 Imaginary", "PRO 9000", 128, "HOPPER_141"))
    before = (data / POOLS_FILE).read_bytes()
    ran = refresh(fake_api, data)
    assert ran.returncode == 2
    assert "NVIDIA RTX PRO 9000 Imaginary (pool HOPPER_141, 128 GB)" in ran.stderr
    assert (
        "gpu_archs.yaml with its CUDA compute capability" in ran.stderr
        and "Nothing was written" in ran.stderr
    )
    assert "Traceback" not in ran.stderr and (data / POOLS_FILE).read_bytes() == before


def test_the_key_is_never_printed(fake_api, data):
    ok = refresh(fake_api, data, "--check")
    refused = refresh(fake_api, data, "--check", key="rpa_WRONG_KEY_PLANTED")
    assert refused.returncode == 1 and "answered 401" in refused.stderr and "RUNPOD_API_KEY" in refused.stderr
    for ran in (ok, refused):
        assert fake_api.api_key not in ran.stdout + ran.stderr
        assert "rpa_WRONG_KEY_PLANTED" not in ran.stdout + ran.stderr
    assert [r.path for r in fake_api.log] == ["/v2/catalog/gpus"] * 2


def test_a_malformed_entry_or_a_gone_representative():
    from builder.tools.refresh_pools import RefreshError, pools_from

    archs = {"NVIDIA L4": "sm89", "NVIDIA RTX A5000": "sm86"}
    with pytest.raises(RefreshError, match="without a string `id` and a numeric `memory`"):
        pools_from([{"id": "NVIDIA L4", "pool": "AMPERE_24"}], archs, {})
    current = {"AMPERE_24": {"representative": "NVIDIA GeForce RTX 3090", "types": []}}
    fresh = pools_from([gpu_type("NVIDIA RTX A5000", "A5000", 24, "AMPERE_24")], archs, current)
    assert fresh["AMPERE_24"]["representative"] == "NVIDIA RTX A5000"  # the old one left the pool

"""model.weights: cached (RunPod's model cache): what a variant must give (a Hugging Face commit), what it
resolves to (no weights in the image, a disk without them, the runtime told to look in the cache), and
model.bake still deciding for files without model.weights."""

from __future__ import annotations

import pytest

from builder.compat import load_compat
from builder.variant.pipeline import prepare
from tests.builder.helpers import MINIMAL_VARIANT, ROOT

COMMIT = "b968826d9c46dd6066d109eabc6255188de91218"
CACHED = MINIMAL_VARIANT + "  weights: cached\n"

REFUSED = {
    "cached-without-revision": (CACHED, ["model.revision", "None", "needs the full 40-character commit id"]),
    "cached-on-a-branch": (
        CACHED + "  revision: main\n",
        ["model.revision", "'main'", "the cached snapshot is named by it"],
    ),
    "cached-from-modelscope": (
        CACHED + f"  revision: {COMMIT}\n  source: modelscope\n",
        ["model.source", "'modelscope'", "Hugging Face repositories only", "huggingface"],
    ),
    "bake-contradicts-weights": (
        CACHED + f"  revision: {COMMIT}\n  bake: true\n",
        ["model.bake", "contradicts weights: cached", "drop bake"],
    ),
    "cached-disk-too-small": (
        CACHED + f"  revision: {COMMIT}\nhub:\n  container_disk_gb: 10\n",
        ["hub.container_disk_gb", "cached weights, kept off this disk by RunPod's model cache, (0 GB)"],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(refused, case):
    text, fragments = REFUSED[case]
    refused(case, text, fragments)


def test_shipped_cached_variant_resolves_without_weights_in_the_image():
    compat = load_compat()
    cached = prepare(ROOT / "variants" / "qwen3-8b-cached.yaml", compat).resolved
    baked = prepare(ROOT / "variants" / "qwen3-8b.yaml", compat).resolved
    assert (cached.weights, cached.bake, cached.model_dir) == ("cached", False, None)
    assert cached.revision == COMMIT and cached.model_source == "huggingface"
    # The container disk holds the image only: the baked twin's disk less the weights' share.
    assert cached.container_disk_gb == compat.needed_disk_gb(0.0) < baked.container_disk_gb
    s = cached.settings
    assert s["MODEL"] == "Qwen/Qwen3-8B" and s["MODEL_REVISION"] == COMMIT
    assert s["MODEL_SOURCE"] == "huggingface" and s["MODEL_CACHED"] is True
    assert s["MODEL_CACHE_FILES"] == cached.allow_patterns and "MODEL_CACHED" not in baked.settings
    assert "MODEL_CACHE_FALLBACK" in cached.expose and "MODEL_CACHE_FALLBACK" not in baked.expose


@pytest.mark.parametrize(
    ("lines", "mode"),
    [("", "baked"), ("  bake: false\n", "download"), ("  weights: download\n", "download"),
     ("  weights: baked\n  bake: true\n", "baked")],
)  # fmt: skip
def test_bake_keeps_deciding_without_weights(write_variant, lines, mode):
    path = write_variant("w", MINIMAL_VARIANT.replace("{name}", "w") + lines)
    resolved = prepare(path, load_compat()).resolved
    assert resolved.weights == mode and resolved.bake == (mode == "baked")


def test_cached_needs_a_release_that_keeps_the_served_name(refused):
    text = CACHED + f"  revision: {COMMIT}\nengine:\n  fastdeploy: 2.1.0\n  cuda: '12.6'\n"
    fragments = ["engine.fastdeploy", "'2.1.0'", "needs a release with --served-model-name"]
    refused("cached-on-2-1", text, fragments)

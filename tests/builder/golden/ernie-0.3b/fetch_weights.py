"""Put a model's weights at their image path during the image build (weights stage).

    python3 fetch_weights.py SPEC.json [ROOT]

Reads a JSON spec written by the builder: {"repo", "revision", "source", "allow_patterns", "gated",
"dest"}; the files go to ROOT + dest (ROOT defaults to /; the weights stage uses the tree the final stage
copies, then normalize_tree.py fixes its times and modes and drops the download client's caches).
When the build context's weights/ folder was filled (build.py --weights-from, or a host-side
download of a gated model) the copied files are used as they are; otherwise the pinned revision of a
public repository is downloaded. No token is read here: gated models are fetched on the build host.
Standard library only; the download clients (huggingface_hub, aistudio_sdk, modelscope) are imported
when needed and installed into a temporary folder when the base image lacks them.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PLACEHOLDER_MARK = "<!-- build-context placeholder -->"
CLIENTS = {"huggingface": "huggingface_hub", "aistudio": "aistudio_sdk", "modelscope": "modelscope"}


def fail(message):
    print(f"fetch_weights: {message}", file=sys.stderr)
    raise SystemExit(1)


def remove_placeholder(dest):
    readme = dest / "README.md"
    if readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith(PLACEHOLDER_MARK):
        readme.unlink()


def import_client(module):
    try:
        return __import__(module)
    except ImportError:
        target = tempfile.mkdtemp(prefix="fetch-client-")
        print(f"fetch_weights: installing {module} into {target}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--quiet", "--target", target, module],
            check=True,
        )
        sys.path.insert(0, target)
        return __import__(module)


def download(spec, dest):
    source, repo, patterns = spec["source"], spec["repo"], spec.get("allow_patterns") or None
    if source == "huggingface":
        import_client("huggingface_hub")
        from huggingface_hub import snapshot_download

        snapshot_download(
            repo_id=repo,
            revision=spec.get("revision") or "main",
            local_dir=str(dest),
            allow_patterns=patterns,
            token=False,
        )
    elif source == "aistudio":
        import_client("aistudio_sdk")
        from aistudio_sdk.snapshot_download import snapshot_download

        snapshot_download(repo_id=repo, revision=spec.get("revision") or "master", local_dir=str(dest))
    elif source == "modelscope":
        import_client("modelscope")
        from modelscope import snapshot_download

        snapshot_download(
            repo, revision=spec.get("revision") or "master", local_dir=str(dest), allow_patterns=patterns
        )
    else:
        fail(f"source {source!r} cannot be downloaded during the build; fill weights/ with --weights-from")


def main(spec_path, root="/"):
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    dest = Path(root) / spec["dest"].lstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    remove_placeholder(dest)
    present = [p for p in dest.rglob("*") if p.is_file()]
    if present:
        print(f"fetch_weights: using {len(present)} files from the build context for {spec['repo']}")
        return 0
    if spec.get("gated"):
        fail(
            f"{spec['repo']} is gated: run build.py with HF_TOKEN set on the build host (it downloads into "
            "weights/ there) or pass --weights-from DIR; no token is used inside the image build"
        )
    print(
        f"fetch_weights: downloading {spec['repo']} ({spec['source']}, revision {spec.get('revision')})",
        flush=True,
    )
    download(spec, dest)
    for cache in (dest / ".cache", dest / ".huggingface"):
        if cache.is_dir():
            import shutil

            shutil.rmtree(cache)
    if not any(p.is_file() for p in dest.rglob("*")):
        fail(f"no files downloaded for {spec['repo']} (allow_patterns: {spec.get('allow_patterns')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))

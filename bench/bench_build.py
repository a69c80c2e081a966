"""Build benchmark: reproducibility and reuse of a worker image's layers, sizes, start and stop times.

    python bench/bench_build.py [--variant ernie-0.3b] [--weights-mb 720] [--runs 3] [--keep]

Runs on the same stand-in FastDeploy base as the Docker tests (a debootstrap Debian rootfs with the engine
stand-in; made once per Docker engine) and pushes to a local registry (Debian's docker-registry, the Docker
tests' compose service, run through pytest-docker), so it needs a Docker engine, debootstrap, docker-registry
and Docker Compose v2 (requirements-compose.txt), but no registry access.
Every build goes through the real CLI (`python build.py --variant ...`) with `--weights-from` (a fake
model of --weights-mb random bytes, about the size of ERNIE-4.5-0.3B in bf16 by default) and `--wheelhouse`,
each into a fresh render folder.

Scenarios, each compared with the cold build:

* cold: a fresh copy of the base (a one-label image on top of it, so no build cache applies);
* clean rebuild: same inputs on another fresh base copy (no cache), the weights copied again with other
  file times, a fresh render: non-base layers whose digest changed (goal 0), and the bytes its push
  uploads to a registry that already holds the cold image (goal: config and manifest only);
* code-only change: one line added to worker_runtime/ in a copy of the repository: layers changed (goal 1)
  and bytes uploaded vs the size of the runtime code (goal <= 2x);
* settings-only change: one ENV default of the variant (engine.max_num_seqs): data layers changed (goal 0);
* BuildKit: the cold build again with `--builder buildkit` from a clean state (`--buildkit-cli`: the Docker
  CLI on the rendered directory): its time and whether it has the classic builder's layers.

Times are printed as ratios to the cold build. Uploads are counted in the registry's access log (a
completed blob upload is a `PUT .../blobs/uploads/...?digest=`). Images made by the run are removed
afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "docker"))

import dockerlab  # noqa: E402

from builder.image.docker import push_image  # noqa: E402


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"


@dataclass
class Built:
    seconds: float
    tag: str
    out_dir: Path


@dataclass
class Layer:
    diff_id: str
    size: int
    created_by: str

    @property
    def name(self) -> str:
        text = self.created_by.replace("/bin/sh -c #(nop) ", "").strip()
        return " ".join(text.split())[:70]


def non_base_layers(client, image_ref: str, base_ref: str) -> list[Layer]:
    """The image's layers above the base, each with its size and the instruction that made it."""
    base_layers = client.images.get(base_ref).attrs["RootFS"]["Layers"]
    diff_ids = client.images.get(image_ref).attrs["RootFS"]["Layers"]
    # History entries that made a layer, oldest first, pair with the diff ids in order.
    history = [
        h
        for h in reversed(client.api.history(image_ref))
        if h.get("Size", 0) or not h.get("CreatedBy", "").startswith("/bin/sh -c #(nop)")
    ]
    history = history[-len(diff_ids) :] if len(history) >= len(diff_ids) else [{}] * len(diff_ids)
    return [
        Layer(diff_id=d, size=int(h.get("Size", 0)), created_by=str(h.get("CreatedBy", "")))
        for d, h in zip(diff_ids, history, strict=True)
    ][len(base_layers) :]


def changed(a: list[Layer], b: list[Layer]) -> list[int]:
    """Positions whose layer digest differs (a different layer count counts every extra position)."""
    n = max(len(a), len(b))
    return [i for i in range(n) if i >= len(a) or i >= len(b) or a[i].diff_id != b[i].diff_id]


def pushed(registry, tag: str) -> tuple[int, int, int]:
    """Push ``tag``; (layer blobs uploaded, their bytes, config+manifest bytes) from the access log."""
    since = registry.log_size()
    push_image([tag], out=io.StringIO())
    time.sleep(0.5)  # the access log is written after the response
    repository, reference = tag.split("/", 1)[1].rsplit(":", 1)
    manifest = dockerlab.manifest_of(registry, repository, reference)
    config = manifest["config"]["digest"]
    uploads = dockerlab.blob_uploads(registry, since)
    layer_uploads = [(r, d) for r, d in uploads if d != config]
    layer_bytes = sum(dockerlab.blob_size(registry, r, d) for r, d in layer_uploads)
    import json

    meta_bytes = manifest["config"]["size"] + len(json.dumps(manifest))
    return len(layer_uploads), layer_bytes, meta_bytes


def buildkit_build(context: Path, base: str, tag: str) -> float:
    """Seconds for a BuildKit build (the Docker CLI) of a rendered, staged build directory."""
    command = dockerlab.buildkit_command()
    started = time.monotonic()
    result = dockerlab.cli_build(command, base, tag, context, timeout=3600)
    if result.returncode != 0:
        sys.stderr.write((result.stdout + result.stderr)[-6000:])
        raise SystemExit("BuildKit build failed")
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="ernie-0.3b")
    parser.add_argument("--weights-mb", type=int, default=720, help="size of the fake weights (default 720)")
    parser.add_argument("--runs", type=int, default=3, help="container start/stop repetitions (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the images this run made")
    parser.add_argument(
        "--buildkit-cli",
        action="store_true",
        help="BuildKit scenario through `docker build` of the rendered directory instead of build.py",
    )
    opts = parser.parse_args(argv)

    client = dockerlab.docker_client()
    log = sys.stderr
    standin = dockerlab.ensure_standin_base(client, log)
    wheels = dockerlab.ensure_wheelhouse(log)
    nonce = uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp_name:
        registry = dockerlab.start_registry()
        try:
            run(client, opts, standin, wheels, nonce, Path(tmp_name), registry)
        finally:
            registry.stop()
            if not opts.keep:
                # Every image of the run is built on one of its fresh bases (and carries its label).
                for suffix in ("", "b", "c"):
                    dockerlab.remove_nonce_images(client, nonce + suffix)
    return 0


def run(client, opts, standin, wheels, nonce, tmp: Path, registry) -> None:
    weights = dockerlab.make_fake_weights(tmp / "weights" / opts.variant, size_mb=opts.weights_mb)
    repository = f"{registry.address}/bench"

    # One copy of the working tree for every build, so that edits made meanwhile cannot count.
    snapshot = dockerlab.copy_repo(tmp / "snapshot")

    def build(name: str, base: str, weights_dir: Path, repo: Path = snapshot, extra: tuple = ()) -> Built:
        out_dir = tmp / "out" / name
        args = [
            "--variant", opts.variant, "--base-image", base, "--weights-from", str(weights_dir),
            "--wheelhouse", str(wheels), "--out", str(out_dir),
            "--registry", repository, "--tag", f"{name}-{nonce}", *extra,
        ]  # fmt: skip
        started = time.monotonic()
        result = dockerlab.run_build(args, repo=repo)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-6000:])
            raise SystemExit(f"build failed: python build.py {' '.join(args)}")
        tag = next(t for t in dockerlab.tags_from_output(result.stdout) if t.endswith(f"{name}-{nonce}"))
        return Built(seconds, tag, out_dir)

    print(f"variant {opts.variant}, fake weights {opts.weights_mb} MB, base {standin}", flush=True)
    base1 = dockerlab.fresh_base(client, standin, nonce)
    cold = build("cold", base1, weights)
    cold_layers = non_base_layers(client, cold.tag, base1)
    print(f"cold build                         {cold.seconds:7.1f} s", flush=True)
    print(f"non-base layers                    {len(cold_layers)}", flush=True)
    for i, layer in enumerate(cold_layers):
        print(f"  [{i}] {mb(layer.size):>10}  {layer.diff_id[7:19]}  {layer.name}", flush=True)
    n, layer_bytes, _ = pushed(registry, cold.tag)
    print(f"cold push: layer blobs uploaded    {n} ({mb(layer_bytes)})", flush=True)

    # Clean rebuild: another machine's state (no cache, other file times, fresh render).
    dockerlab.prune_build_cache(client)
    base2 = dockerlab.fresh_base(client, standin, nonce + "b")
    weights2 = dockerlab.copy_with_new_times(
        weights, tmp / "weights2" / opts.variant, time.time() - 86400 * 3, mode=0o600
    )
    clean = build("clean", base2, weights2)
    clean_changed = changed(cold_layers, non_base_layers(client, clean.tag, base2))
    n, layer_bytes, meta = pushed(registry, clean.tag)
    print("clean rebuild, same inputs:", flush=True)
    print(f"  time / cold                      {clean.seconds / cold.seconds:7.2f}", flush=True)
    print(f"  non-base layers changed          {len(clean_changed)} of {len(cold_layers)} "
          f"{clean_changed}", flush=True)  # fmt: skip
    image_bytes = sum(layer.size for layer in cold_layers)
    print(f"  push: layer blobs uploaded       {n} ({mb(layer_bytes)}; config+manifest {meta} B; "
          f"{100 * (layer_bytes + meta) / image_bytes:.3f}% of the added image)", flush=True)  # fmt: skip

    # Code-only change on the cold build's builder state (what a release of runtime code does).
    repo = Path(shutil.copytree(snapshot, tmp / "repo-code"))
    target = repo / "worker_runtime" / "__init__.py"
    target.write_text(target.read_text() + f"\n# bench code change {nonce}\n")
    code = build("code", base1, weights, repo)
    code_changed = changed(cold_layers, non_base_layers(client, code.tag, base1))
    n, layer_bytes, meta = pushed(registry, code.tag)
    code_size = sum(
        p.stat().st_size
        for p in [code.out_dir / "handler.py", *(code.out_dir / "worker_runtime").rglob("*")]
        if p.is_file()
    )
    print("code-only change:", flush=True)
    print(f"  time / cold                      {code.seconds / cold.seconds:7.2f}", flush=True)
    print(f"  layers changed                   {len(code_changed)} {code_changed}", flush=True)
    print(f"  push: layer blobs uploaded       {n} ({mb(layer_bytes)} + {meta} B config+manifest; "
          f"{(layer_bytes + meta) / code_size:.2f}x the code's {mb(code_size)})", flush=True)  # fmt: skip
    shutil.rmtree(repo)

    # Settings-only change: one ENV default of the variant.
    repo = Path(shutil.copytree(snapshot, tmp / "repo-settings"))
    variant_file = repo / "variants" / f"{opts.variant}.yaml"
    text = variant_file.read_text()
    if "max_num_seqs:" in text:
        text = text.replace("max_num_seqs: 128", "max_num_seqs: 96")
    else:
        text = text.replace("engine:\n", "engine:\n  max_num_seqs: 96\n", 1)
    variant_file.write_text(text)
    settings = build("settings", base1, weights, repo)
    settings_layers = non_base_layers(client, settings.tag, base1)
    settings_changed = changed(cold_layers, settings_layers)
    env = dict(e.split("=", 1) for e in client.images.get(settings.tag).attrs["Config"]["Env"])
    n, layer_bytes, meta = pushed(registry, settings.tag)
    print("settings-only change (MAX_NUM_SEQS default " + env.get("MAX_NUM_SEQS", "?") + "):", flush=True)
    print(f"  time / cold                      {settings.seconds / cold.seconds:7.2f}", flush=True)
    print(f"  data layers changed              {len(settings_changed)} {settings_changed}", flush=True)
    print(f"  push: layer blobs uploaded       {n} ({mb(layer_bytes)})", flush=True)
    shutil.rmtree(repo)

    # The cold build again with BuildKit, from a fresh state (the builder choice).
    dockerlab.prune_build_cache(client)
    base3 = dockerlab.fresh_base(client, standin, nonce + "c")
    if opts.buildkit_cli:  # the Docker CLI on the rendered directory (the files' own times and modes)
        bk_tag = f"fdrw-bench/buildkit:{nonce}"
        bk_seconds = buildkit_build(cold.out_dir, base3, bk_tag)
    else:
        bk = build("buildkit", base3, weights, extra=("--builder", "buildkit"))
        bk_tag, bk_seconds = bk.tag, bk.seconds
    bk_layers = non_base_layers(client, bk_tag, base3)
    bk_ids = {layer.diff_id for layer in bk_layers}
    shared = [i for i, layer in enumerate(cold_layers) if layer.diff_id in bk_ids]
    others = [layer for layer in bk_layers if layer.diff_id not in {c.diff_id for c in cold_layers}]
    print("BuildKit, clean state:", flush=True)
    print(f"  time / cold (classic)            {bk_seconds / cold.seconds:7.2f}", flush=True)
    print(f"  classic layers it has too        {len(shared)} of {len(cold_layers)} {shared}", flush=True)
    print(f"  its other layers                 {len(others)} (steps that add no file)", flush=True)

    weights_bytes = max(layer.size for layer in cold_layers)  # the fake weights are the largest layer
    print(f"added on top of the base           {mb(image_bytes)} (weights {mb(weights_bytes)})", flush=True)

    ready, stop, codes = [], [], []
    for _ in range(opts.runs):
        container, port = dockerlab.start_worker(client, cold.tag)
        try:
            started = time.monotonic()
            dockerlab.wait_ready(container, port)
            ready.append(time.monotonic() - started)
            seconds, exit_code = dockerlab.stop_with_sigterm(container, timeout=60)
            stop.append(seconds)
            codes.append(exit_code)
        finally:
            container.remove(force=True)
    if ready:
        print(
            f"start -> ready (median)            {statistics.median(ready):7.2f} s  (runs: "
            + ", ".join(f"{r:.2f}" for r in ready) + ")",
            flush=True,
        )  # fmt: skip
        print(
            f"SIGTERM -> exit (median)           {statistics.median(stop):7.2f} s  (runs: "
            + ", ".join(f"{s:.2f}" for s in stop) + f"; exit codes {sorted(set(codes))})",
            flush=True,
        )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())

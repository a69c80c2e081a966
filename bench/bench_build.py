"""Build benchmark: cold build vs code-only rebuild of a worker image, sizes, start and stop times.

    python bench/bench_build.py [--variant ernie-0.3b] [--weights-mb 720] [--runs 3] [--keep]

Runs on the same stand-in FastDeploy base as the Docker tests (a debootstrap Debian rootfs with the engine
stand-in; made once per Docker engine), so it needs a Docker engine and debootstrap, but no registry
access. Every build goes through the real CLI (`python build.py --variant ...`) with `--weights-from` (a
fake model of --weights-mb random bytes, about the size of ERNIE-4.5-0.3B in bf16 by default) and
`--wheelhouse`. A cold build starts from a fresh copy of the base (a one-label image on top of it, so no
build cache applies); the code-only rebuild edits one file of worker_runtime/ in a copy of the repository.

Prints the times and their ratio, the size the image adds on top of the base split into the weights layer
and the rest, container start -> ready (the stand-in engine loads at once) and SIGTERM -> exit.
Images made by the run are removed afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "docker"))

import dockerlab  # noqa: E402

from builder.image.docker import build_image  # noqa: E402


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def timed_build(args: list[str], *, repo: Path = REPO_ROOT) -> tuple[float, str]:
    started = time.monotonic()
    result = dockerlab.run_build(args, repo=repo)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-6000:])
        raise SystemExit(f"build failed: python build.py {' '.join(args)}")
    return seconds, result.stdout


def layer_sizes(
    client, image_ref: str, base_ref: str, variant: str
) -> tuple[int, int, list[tuple[int, str]]]:
    """(weights bytes, other added bytes, [(size, created_by)]) of the layers on top of the base."""
    base_depth = len(client.api.history(base_ref))
    entries = list(reversed(client.api.history(image_ref)))[base_depth:]
    weights = sum(e["Size"] for e in entries if f"/models/{variant}" in e.get("CreatedBy", ""))
    other = sum(e["Size"] for e in entries) - weights
    return weights, other, [(e["Size"], e.get("CreatedBy", "")) for e in entries if e["Size"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="ernie-0.3b")
    parser.add_argument("--weights-mb", type=int, default=720, help="size of the fake weights (default 720)")
    parser.add_argument("--runs", type=int, default=3, help="container start/stop repetitions (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the images this run made")
    opts = parser.parse_args(argv)

    client = dockerlab.docker_client()
    before = {image.id for image in client.images.list(all=True)}
    log = sys.stderr
    standin = dockerlab.ensure_standin_base(client, log)
    wheels = dockerlab.ensure_wheelhouse(log)
    nonce = uuid.uuid4().hex[:10]
    results: dict[str, float] = {}
    try:
        run(client, opts, standin, wheels, nonce, results)
    finally:
        if not opts.keep:
            cleanup(client, before)
    return 0


def run(client, opts, standin, wheels, nonce, results) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp_name:
        tmp = Path(tmp_name)
        weights = dockerlab.make_fake_weights(tmp / "weights" / opts.variant, size_mb=opts.weights_mb)

        # A fresh base image: same content, new id, so the classic builder's cache cannot apply.
        ctx = tmp / "fresh-base"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {standin}\nLABEL bench.nonce={nonce}\n")
        base = f"fdrw-bench/base:{nonce}"
        build_image(ctx, tags=[base], labels={}, build_args={}, out=io.StringIO())

        def args(out: str, tag: str) -> list[str]:
            return [
                "--variant", opts.variant, "--base-image", base, "--weights-from", str(weights),
                "--wheelhouse", str(wheels), "--out", str(tmp / out),
                "--registry", "fdrw-bench", "--tag", f"{tag}-{nonce}",
            ]  # fmt: skip

        print(f"variant {opts.variant}, fake weights {opts.weights_mb} MB, base {standin}", flush=True)
        results["cold"], cold_output = timed_build(args("cold", "cold"))
        print(f"cold build                 {results['cold']:7.1f} s", flush=True)
        results["cached"], _ = timed_build(args("cached", "cached"))
        print(f"unchanged rebuild          {results['cached']:7.1f} s", flush=True)

        repo = dockerlab.copy_repo(tmp / "repo")
        target = repo / "worker_runtime" / "__init__.py"
        target.write_text(target.read_text() + f"\n# bench code change {nonce}\n")
        results["code"], code_output = timed_build(args("code", "code"), repo=repo)
        print(f"code-only rebuild          {results['code']:7.1f} s", flush=True)
        print(f"cold / code-only           {results['cold'] / results['code']:7.1f} x", flush=True)
        print(f"cold / unchanged           {results['cold'] / results['cached']:7.1f} x", flush=True)

        image = dockerlab.tags_from_output(cold_output)[-1]
        weights_bytes, other_bytes, layers = layer_sizes(client, image, base, opts.variant)
        print(f"added on top of the base   {mb(weights_bytes + other_bytes)}", flush=True)
        print(f"  weights layer            {mb(weights_bytes)}", flush=True)
        print(f"  runtime layers           {mb(other_bytes)}", flush=True)
        for size, created_by in layers:
            print(f"    {mb(size):>12}  {created_by[-90:]}", flush=True)
        code_image = client.images.get(dockerlab.tags_from_output(code_output)[-1])
        old_layers = client.images.get(image).attrs["RootFS"]["Layers"]
        shared = sum(
            1 for a, b in zip(old_layers, code_image.attrs["RootFS"]["Layers"], strict=False) if a == b
        )
        print(f"layers shared cold/code    {shared} of {len(old_layers)}", flush=True)

        ready, stop, codes = [], [], []
        for _ in range(opts.runs):
            container, port = dockerlab.start_worker(client, image)
            try:
                started = time.monotonic()
                dockerlab.wait_ready(container, port)
                ready.append(time.monotonic() - started)
                seconds, code = dockerlab.stop_with_sigterm(container, timeout=60)
                stop.append(seconds)
                codes.append(code)
            finally:
                container.remove(force=True)
        print(
            f"start -> ready (median)    {statistics.median(ready):7.2f} s  (runs: "
            + ", ".join(f"{r:.2f}" for r in ready) + ")",
            flush=True,
        )  # fmt: skip
        print(
            f"SIGTERM -> exit (median)   {statistics.median(stop):7.2f} s  (runs: "
            + ", ".join(f"{s:.2f}" for s in stop) + f"; exit codes {sorted(set(codes))})",
            flush=True,
        )  # fmt: skip


def cleanup(client, before: set[str]) -> None:
    """Remove every image this run made (newest first), except the reusable stand-in base."""
    made = [
        i
        for i in client.images.list(all=True)
        if i.id not in before and not any(t.startswith("fdstandin-") for t in i.tags)
    ]
    for image_obj in sorted(made, key=lambda i: i.attrs.get("Created", ""), reverse=True):
        try:
            client.images.remove(image_obj.id, force=True)
        except Exception as exc:  # already removed with a parent chain
            if "No such image" not in str(exc):
                print(f"note: could not remove {image_obj.id[:19]}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())

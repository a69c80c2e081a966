"""Does an image reference exist in its registry? A manifest HEAD (the Distribution spec's
``HEAD /v2/<name>/manifests/<reference>``) with the credentials a push uses: ``REGISTRY_USERNAME`` /
``REGISTRY_PASSWORD``, else the Docker config (``~/.docker/config.json`` and its credential helpers, read
by the Docker SDK as its push does). A 401 with a Bearer challenge gets a pull token from the realm
(with those credentials when there are any); a Basic challenge gets them directly. `deploy` asks before
any write, so an endpoint is never created for an image that is not there."""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message

from builder.errors import BuilderError, redact

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
DOCKER_HUB = "registry-1.docker.io"


class ImageMissing(BuilderError):
    """The registry has no such image (exit 1: push it, or name one that is there)."""

    exit_code = 1


class RegistryUnreadable(BuilderError):
    """The registry could not be asked (unreachable, refused the credentials)."""

    exit_code = 1


def split_reference(ref: str) -> tuple[str, str, str]:
    """``host/name:tag`` or ``host/name@sha256:...`` -> (registry host, repository, tag or digest),
    Docker Hub's conventions included (pure)."""
    name, at, digest = ref.partition("@")
    if at:
        reference = digest
    else:
        head, _, tag = ref.rpartition(":")
        name, reference = (head, tag) if head and "/" not in tag else (ref, "latest")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host, repository = DOCKER_HUB, name
    if host in ("docker.io", "index.docker.io"):
        host = DOCKER_HUB
    if host == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return host, repository, reference


def scheme(host: str) -> str:
    # A registry on the loopback interface is plain HTTP (as Docker treats it); everything else HTTPS.
    return "http" if host.split(":")[0] in ("127.0.0.1", "localhost") else "https"


def credentials(host: str) -> tuple[str, str] | None:
    """(user, password) for `host`: the environment a push reads, else the Docker config."""
    user, password = os.environ.get("REGISTRY_USERNAME"), os.environ.get("REGISTRY_PASSWORD")
    if user and password:
        return user, password
    try:
        from docker import auth  # the SDK's own reading of config.json and credential helpers

        found = auth.load_config().resolve_authconfig("docker.io" if host == DOCKER_HUB else host) or {}
    except Exception:  # no config, an unusable helper: ask anonymously
        return None
    user, password = (
        found.get("Username") or found.get("username"),
        found.get("Password") or found.get("password"),
    )
    return (user, password) if user and password else None


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def pull_token(challenge: str, repository: str, creds: tuple[str, str] | None = None) -> str | None:
    """A Bearer token for pulling `repository`, from the registry's WWW-Authenticate challenge (with
    `creds` when given, anonymous otherwise); None when the challenge is not a Bearer one."""
    if not challenge.lower().startswith("bearer "):
        return None
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if "realm" not in params:
        return None
    query = {"scope": f"repository:{repository}:pull"}
    if "service" in params:
        query["service"] = params["service"]
    request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
    if creds:
        request.add_header("Authorization", _basic(creds))
    with urllib.request.urlopen(request, timeout=30) as reply:
        body = json.loads(reply.read())
    return body.get("token") or body.get("access_token")


class TokenUnavailable(Exception):
    """The registry's token service could not be asked or answered nonsense (the message says why)."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: Message


def _authorization(challenge: str, repository: str, creds: tuple[str, str] | None) -> str | None:
    """The Authorization header that answers a 401's challenge, or None when there is none to give."""
    try:
        if challenge.lower().startswith("bearer "):
            token = pull_token(challenge, repository, creds)
            return f"Bearer {token}" if token else None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TokenUnavailable(str(exc)) from None
    if challenge.lower().startswith("basic ") and creds:
        return _basic(creds)
    return None


def head_manifest(url: str, repository: str, creds: tuple[str, str] | None = None) -> Answer:
    """The registry's answer, whatever its status, to a manifest HEAD at `url`, once its first 401 has
    been answered (a Bearer challenge: a pull token, asked with `creds` when given; a Basic one: `creds`).
    URLError or OSError when the registry cannot be reached, TokenUnavailable when its token service
    fails."""
    headers = {"Accept": MANIFEST_TYPES}
    while True:
        try:
            request = urllib.request.Request(url, method="HEAD", headers=headers)
            with urllib.request.urlopen(request, timeout=30) as reply:
                return Answer(reply.status, reply.reason, reply.headers)
        except urllib.error.HTTPError as exc:
            auth = None
            if exc.code == 401 and "Authorization" not in headers:
                auth = _authorization(exc.headers.get("WWW-Authenticate", ""), repository, creds)
            if auth is None:
                return Answer(exc.code, exc.reason, exc.headers)
            headers["Authorization"] = auth


def _refused(host: str, ref: str, why: str) -> str:
    return (
        f"the registry {host} refused to say whether {ref} exists ({why}): log in (`docker login {host}`, "
        "or REGISTRY_USERNAME and REGISTRY_PASSWORD) with an account that may pull it, or pass "
        "--no-image-check"
    )


def manifest_exists(ref: str) -> bool:
    """True when the registry serves a manifest for `ref`, False on 404; else RegistryUnreadable."""
    host, repository, reference = split_reference(ref)
    url = f"{scheme(host)}://{host}/v2/{repository}/manifests/{reference}"
    creds = credentials(host)
    secret = [creds[1] if creds else None]
    try:
        answer = head_manifest(url, repository, creds)
    except TokenUnavailable as exc:
        raise RegistryUnreadable(_refused(host, ref, redact(str(exc), secret))) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryUnreadable(
            f"the registry {host} cannot be reached to check that {ref} exists "
            f"({redact(str(exc), secret)}); pass --no-image-check to deploy without checking"
        ) from None
    if answer.status < 400:
        return True
    if answer.status == 404:
        return False
    if answer.status in (401, 403):
        raise RegistryUnreadable(_refused(host, ref, f"HTTP {answer.status}"))
    raise RegistryUnreadable(f"{url} answered HTTP {answer.status} {answer.reason}")


def require_image(ref: str, variant: str) -> None:
    """ImageMissing, one paragraph saying how to push it, when the registry has no `ref`."""
    if manifest_exists(ref):
        return
    raise ImageMissing(
        f"{ref} is not in its registry, so an endpoint would start workers that cannot pull it. Push it "
        f"first (`python build.py push {variant}` with the same --registry, or `docker push {ref}`), or "
        "name an image that is there with --image; --no-image-check deploys without asking the registry."
    )

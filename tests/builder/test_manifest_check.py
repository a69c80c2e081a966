"""builder.image.manifest_check against a small local registry that follows the Distribution spec's token
flow (HEAD /v2/<name>/manifests/<ref> answers 401 with a Bearer challenge; the realm hands out a pull token
for the scope, checking the push credentials): the real registry without auth is in tests/docker."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from builder.image.manifest_check import ImageMissing, RegistryUnreadable, manifest_exists, require_image
from tests.served import ServedHttp

USER, PASSWORD, TOKEN = "ci-bot", "pw_PLANTED_secret", "tok-123"


class TokenRegistry(ServedHttp):
    def __init__(self) -> None:
        self.manifests = {("team/worker", "ernie-0.3b-1")}
        self.token_requests: list[tuple[dict, str | None]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # the token realm
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                auth = self.headers.get("Authorization")
                registry.token_requests.append((query, auth))
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if url.path != "/token" or auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": TOKEN}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    realm = f"http://{self.headers['Host']}/token"
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="fake-registry"')
                    self.end_headers()
                    return
                name, _, ref = self.path.removeprefix("/v2/").partition("/manifests/")
                self.send_response(200 if (name, ref) in registry.manifests else 404)
                self.end_headers()

        super().__init__(Handler)
        self.address = f"127.0.0.1:{self.port}"
        self.start()


@pytest.fixture
def registry(monkeypatch, tmp_path) -> Iterator[TokenRegistry]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no Docker config of the host
    monkeypatch.setenv("REGISTRY_USERNAME", USER)
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    fake = TokenRegistry()
    yield fake
    fake.stop()


def test_the_token_flow_with_the_push_credentials(registry):
    assert manifest_exists(f"{registry.address}/team/worker:ernie-0.3b-1")
    assert not manifest_exists(f"{registry.address}/team/worker:other")
    query, _auth = registry.token_requests[0]
    assert query == {"scope": "repository:team/worker:pull", "service": "fake-registry"}


def test_a_missing_image_is_one_paragraph_and_refused_credentials_say_what_to_do(registry, monkeypatch):
    with pytest.raises(ImageMissing) as missing:
        require_image(f"{registry.address}/team/worker:other", "ernie-0.3b")
    assert "python build.py push ernie-0.3b" in str(missing.value) and missing.value.exit_code == 1
    monkeypatch.setenv("REGISTRY_PASSWORD", "pw_PLANTED_wrong")
    with pytest.raises(RegistryUnreadable) as refused:
        manifest_exists(f"{registry.address}/team/worker:ernie-0.3b-1")
    assert "PLANTED" not in str(refused.value) and "--no-image-check" in str(refused.value)


def test_pin_bases_shares_the_token_flow_and_names_a_refused_token(registry):
    """builder.tools.pin_bases asks anonymously through the same head_manifest: a token service that
    refuses it is the tool's own one-line error (it was an uncaught HTTPError before they shared it)."""
    from builder.tools.pin_bases import PinError, registry_digest

    with pytest.raises(PinError, match=r"gave no pull token \(HTTP Error 401"):
        registry_digest(f"{registry.address}/team/worker:ernie-0.3b-1")
    assert registry.token_requests[-1][1] is None  # anonymous: the push credentials are not sent

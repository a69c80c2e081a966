"""A local fake of the Hugging Face hub's model-info API, as huggingface_hub 1.33's ``HfApi.model_info``
calls it and ``hf_raise_for_status`` reads the answer (sources: docs/upstream-notes.md):

- ``GET {endpoint}/api/models/{repo}/revision/{quote(rev, safe='')}``, the commit in ``sha``;
- a revision the repository does not have: 404 with ``X-Error-Code: RevisionNotFound``;
- a repository that does not exist, or is private and the request has no token of its owner: 401 with
  ``X-Error-Code: RepoNotFound`` (the hub answers both alike);
- a token the hub does not know: 401 with ``X-Error-Message: Invalid credentials in Authorization
  header``."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler

from tests.served import ServedHttp


def commit_of(repo: str, branch: str = "main") -> str:
    """The commit the fake's `branch` of `repo` points to unless a test sets another: 40 hex digits."""
    return hashlib.sha1(f"{repo}@{branch}".encode()).hexdigest()


class FakeHub(ServedHttp):
    """Branches by (repo, branch) -> commit; records each path asked and its Authorization header.
    With `every_main`, every repository exists and its `main` answers `commit_of(repo)`; `private`
    repositories answer as missing ones unless the request carries `Bearer {token}`."""

    def __init__(self, *, every_main: bool = False, token: str | None = None) -> None:
        self._made = (every_main, token)
        self.reset()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub.asked.append(self.path)
                auth = self.headers.get("Authorization")
                hub.auth.append(auth)
                prefix = "/api/models/"
                repo, _, rev = self.path[len(prefix) :].partition("/revision/")
                rev = urllib.parse.unquote(rev)
                if auth is not None and auth != f"Bearer {hub.token}":
                    self._error(401, message="Invalid credentials in Authorization header")
                    return
                known = hub.every_main or any(r == repo for r, _ in hub.branches)
                if not self.path.startswith(prefix) or not known or (repo in hub.private and auth is None):
                    self._error(401, "RepoNotFound", "Repository not found")
                    return
                sha = hub.branches.get((repo, rev))
                if sha is None and hub.every_main and rev == "main":
                    sha = commit_of(repo)
                if sha is None:
                    self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
                    return
                body = json.dumps({"id": repo, "sha": sha}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str | None = None, message: str | None = None) -> None:
                self.send_response(status)
                if code:
                    self.send_header("X-Error-Code", code)
                if message:
                    self.send_header("X-Error-Message", message)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(Handler)
        self.start()

    def reset(self) -> None:
        """Back to the state it was made in: what a test set and what it was asked are forgotten."""
        self.every_main, self.token = self._made
        self.branches: dict[tuple[str, str], str] = {}
        self.private: set[str] = set()
        self.asked: list[str] = []
        self.auth: list[str | None] = []

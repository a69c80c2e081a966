"""RunPod's REST v2 management API over HTTP (requests), and its errors as one paragraph.

Errors follow the document's ErrorResponse (RFC 9457: `title`, `status`, `detail`, optional `errors`).
The API key travels only in the Authorization header; nothing here puts it in a message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from builder.deploy.redact import Redactor
from builder.errors import BuilderError

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Request:
    """One request as the deploy would send it (body already JSON-ready)."""

    method: str
    path: str
    body: Any = None

    @property
    def writes(self) -> bool:
        return self.method != "GET"


class ApiError(BuilderError):
    """A failed management API call; str() is the one paragraph the CLI prints (exit status 1)."""

    exit_code = 1

    def __init__(self, request: Request, status: int | None, title: str, detail: str, errors: list[str]):
        self.request, self.status, self.title, self.detail, self.errors = (
            request,
            status,
            title,
            detail,
            errors,
        )
        self.retry_after: str | None = None
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        where = f"{self.request.method} {self.request.path}"
        if self.status is None:
            return f"RunPod's management API could not be reached ({where}): {self.detail}. {advice(self)}"
        said = self.detail or self.title
        extra = f" ({'; '.join(self.errors)})" if self.errors else ""
        answered = f"RunPod's management API answered {self.status} {self.title} to {where}"
        return f"{answered}: {said}{extra}. {advice(self)}"


def advice(err: ApiError) -> str:
    """What to do, by status and by what RunPod's message says."""
    text = f"{err.title} {err.detail} {' '.join(err.errors)}".lower()
    if err.status is None:
        return (
            "Check the network and RUNPOD_API_BASE_URL (default https://api.runpod.io); "
            "running the deploy again is safe."
        )
    if err.status == 401:
        return (
            "The API key was refused: set RUNPOD_API_KEY (or `runpod config`) to a valid key from the "
            "console's Settings > API Keys."
        )
    if err.status == 403:
        return "The API key lacks access: create a key with read/write permission for serverless."
    if err.status == 409 or any(
        w in text for w in ("already exists", "name taken", "already taken", "unique")
    ):
        return (
            "The name is taken (names are unique per account): pick another with --name, or rename or "
            "delete the existing one in the console."
        )
    if err.status == 429:
        wait = f" {err.retry_after} s" if err.retry_after else " a minute"
        return f"Rate limited: wait{wait} and run the deploy again (it is idempotent)."
    if "quota" in text or "limit" in text or "balance" in text:
        return (
            "An account limit was hit: lower --workers-max, or raise the account's worker quota or "
            "balance in the console, then run the deploy again."
        )
    if "pool" in text or "gpu" in text:
        return (
            "A GPU pool was refused, or a type excluded from it: the variant's hub.gpu_ids must be "
            "serverless pool ids that GET /v2/catalog/gpus lists in `pool` (AMPERE_16, ADA_24, AMPERE_80, "
            "...), and each excluded type a type of those pools. When RunPod's pools have changed, refresh "
            "builder/compat/gpu_pools.yaml with `python -m builder.tools.refresh_pools`, check the variant "
            "again and redeploy; else fix the variant."
        )
    if err.status >= 500:
        return "RunPod had an internal error: run the deploy again later (it is idempotent)."
    return "Fix the request as RunPod's message says and run the deploy again."


@dataclass
class Client:
    """A thin REST v2 client; `sent` lists every request (method, path, redacted body) in order."""

    base_url: str
    api_key: str
    redactor: Redactor = field(default_factory=Redactor)
    session: Any = None  # a requests.Session, made on first use (requests loads only when a deploy runs)
    sent: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.redactor.add(self.api_key)

    def call(self, request: Request) -> Any:
        import requests

        if self.session is None:
            self.session = requests.Session()
        self.sent.append(Request(request.method, request.path, self.redactor.body(request.body)))
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        data = None
        if request.body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(request.body).encode()
        try:
            resp = self.session.request(
                request.method, self.base_url + request.path, data=data, headers=headers, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            # requests' messages name the URL, never the headers; mask anyway.
            raise ApiError(request, None, "", self.redactor.text(str(exc)), []) from None
        if resp.status_code >= 400:
            raise self._error(request, resp)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ApiError(request, resp.status_code, "Bad Response", "the answer is not JSON", []) from None

    def _error(self, request: Request, resp: Any) -> ApiError:
        title, detail, errors = resp.reason or "", "", []
        try:
            problem = resp.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict):
            title = str(problem.get("title") or title)
            detail = str(problem.get("detail") or problem.get("message") or problem.get("error") or "")
            errors = [str(e) for e in problem.get("errors") or [] if e]
        else:
            detail = resp.text.strip()[:300]
        red = self.redactor.text
        err = ApiError(request, resp.status_code, red(title), red(detail), [red(e) for e in errors])
        err.retry_after = resp.headers.get("Retry-After")
        err.args = (err.paragraph(),)
        return err

    # --- the resources a deploy touches -------------------------------------------------------------
    def list(self, kind: str) -> list[dict[str, Any]]:
        """GET /v2/<kind> -> the wrapped list (`templates`, `endpoints`, `registries`)."""
        path, key = {
            "templates": ("/v2/templates", "templates"),
            "endpoints": ("/v2/serverless", "endpoints"),
            "registries": ("/v2/registries", "registries"),
        }[kind]
        answer = self.call(Request("GET", path))
        items = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ApiError(Request("GET", path), 200, "Bad Response", f"no `{key}` list in the answer", [])
        return [i for i in items if isinstance(i, dict)]

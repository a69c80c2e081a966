"""Desired state (variant + hub.json values + options) and the diff against what RunPod has: pure.

Field names are those of RunPod's REST v2 OpenAPI document (`CreateTemplateRequest`,
`CreateEndpointRequest`, `UpdateEndpointRequest`). A template is a snapshot applied when an endpoint is
created ("Later template edits do not affect the endpoint"), so the endpoint carries its container
settings too and both are compared and patched on their own.

What each holds: the template the image-level settings (image, disk, registry credential, CUDA
versions); the endpoint the same plus everything per endpoint (env overrides, GPUs, workers, scaling,
FlashBoot, network volumes, execution timeout). So a changed `--env` is one PATCH of the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from builder.deploy.api import Request
from builder.deploy.env_overrides import effective
from builder.errors import BuilderError
from builder.variant.resolve import Resolved

MISSING = "(unset)"
Action = Literal["create", "update", "keep"]
EndpointKind = Literal["QUEUE", "LOAD_BALANCER"]
# The variant's endpoint.type (the runtime's ENDPOINT_TYPE) -> REST v2 `EndpointType`.
ENDPOINT_KINDS: dict[str, EndpointKind] = {"queue": "QUEUE", "load_balancer": "LOAD_BALANCER"}


class EndpointOptions(BaseModel):
    """What users set per endpoint (the CLI's deploy options)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, description="Name of the template and of the endpoint (looked up by name)"
    )
    workers_min: int = Field(0, ge=0, description="Workers kept running (0: scale to zero)")
    workers_max: int = Field(3, ge=0, description="Upper bound of workers")
    idle_timeout: int = Field(5, ge=1, le=3600, description="Seconds an idle worker stays up")
    scaler: Literal["QUEUE_DELAY", "REQUEST_COUNT"] = Field(
        "QUEUE_DELAY", description="Autoscaling signal: queue wait (seconds) or requests per worker"
    )
    scaler_value: float = Field(4, description="Seconds of queue delay, or requests per worker")
    flashboot: Literal["OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"] = Field(
        "FLASHBOOT", description="Cold-start acceleration (RunPod's default is OFF; LLM images gain most)"
    )
    network_volumes: list[str] = Field(default_factory=list, description="Network volume ids to attach")
    execution_timeout_s: int = Field(600, ge=1, description="Seconds a job may run (the API takes ms)")
    env: dict[str, str] = Field(default_factory=dict, description="Overrides of the image's baked settings")
    kind: EndpointKind = Field(
        "QUEUE", description="REST v2 EndpointType, from the variant's endpoint.type; fixed at create"
    )
    ports: list[str] = Field(
        default_factory=list, description="Container ports (port/protocol) of a load-balancing worker"
    )

    @model_validator(mode="after")
    def _check(self) -> EndpointOptions:
        if self.kind == "LOAD_BALANCER" and self.scaler != "REQUEST_COUNT":
            # CreateEndpointRequest: `type: LOAD_BALANCER` then `scaling: RequestCountScaling`.
            raise ValueError(
                "a load-balancing endpoint scales on requests per worker: use --scaler request-count "
                "(the default for it), not queue-delay"
            )
        if self.workers_max < self.workers_min:
            raise ValueError(f"workers max ({self.workers_max}) is below workers min ({self.workers_min})")
        if self.scaler == "QUEUE_DELAY" and self.scaler_value < 0.5:
            raise ValueError(f"QUEUE_DELAY scaler value {self.scaler_value} is below 0.5 (seconds)")
        if self.scaler == "REQUEST_COUNT" and (
            self.scaler_value < 1 or self.scaler_value != int(self.scaler_value)
        ):
            raise ValueError(f"REQUEST_COUNT scaler value {self.scaler_value} is not a whole number >= 1")
        return self


@dataclass(frozen=True)
class Change:
    """One field that differs: dotted path, what RunPod has, what the deploy wants."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Step:
    kind: Literal["registry", "template", "endpoint"]
    name: str
    action: Action
    request: Request | None
    changes: tuple[Change, ...] = ()
    id: str | None = None  # of the existing resource


# --- desired state -------------------------------------------------------------------------------------


def pools(resolved: Resolved) -> list[str]:
    """The variant's GPU pools in its order (negated hub entries select nothing here)."""
    return [p for p in resolved.gpu_ids if not p.startswith("-")]


def template_fields(
    resolved: Resolved, image: str, registry_id: str | None, ports: list[str] | None = None
) -> dict[str, Any]:
    fields = {
        "image": image,
        "disk": resolved.container_disk_gb,
        "registry": registry_id,
        "allowedCudaVersions": list(resolved.allowed_cuda_versions),
        "serverless": True,
    }
    return with_ports(fields, ports)


def with_ports(fields: dict[str, Any], ports: list[str] | None) -> dict[str, Any]:
    """`ports` only when the worker serves HTTP itself (load balancing): queue fields stay as they were."""
    return {**fields, "ports": list(ports)} if ports else fields


def pinned_health_port(env: dict[str, str]) -> dict[str, str]:
    """With PORT changed and PORT_HEALTH not, both are sent: RunPod's OpenAPI document gives PORT_HEALTH
    a default of 80 (EndpointType), its load-balancing overview "same as PORT"; either way the load
    balancer then polls the port the worker's health check is on."""
    if env.get("PORT") and not env.get("PORT_HEALTH"):
        return {**env, "PORT_HEALTH": env["PORT"]}
    return env


def lb_ports(resolved: Resolved, env: dict[str, str]) -> list[str]:
    """The ports a load-balancing worker serves on: PORT, and PORT_HEALTH when it differs."""
    port = effective(resolved, env, "PORT")
    health = effective(resolved, env, "PORT_HEALTH") or port
    return [f"{p}/http" for p in dict.fromkeys((port, health)) if p]


def endpoint_fields(
    resolved: Resolved, image: str, registry_id: str | None, opts: EndpointOptions
) -> dict[str, Any]:
    workers: dict[str, Any] = {"min": opts.workers_min, "max": opts.workers_max}
    # idleTimeout is refused with REQUEST_COUNT on queue endpoints only (EndpointWorkers.idleTimeout).
    if opts.scaler == "QUEUE_DELAY" or opts.kind == "LOAD_BALANCER":
        workers["idleTimeout"] = opts.idle_timeout
    if opts.scaler == "QUEUE_DELAY":
        scaling: dict[str, Any] = {"type": "QUEUE_DELAY", "queueDelay": opts.scaler_value}
    else:
        scaling = {"type": "REQUEST_COUNT", "requestCount": int(opts.scaler_value)}
    fields = {
        "image": image,
        "disk": resolved.container_disk_gb,
        "registry": registry_id,
        "env": dict(sorted(opts.env.items())),
        "gpu": {
            "pools": pools(resolved),
            "excludedTypes": list(resolved.excluded_types),
            "count": resolved.gpu_count,
            "allowedCudaVersions": list(resolved.allowed_cuda_versions),
        },
        "workers": workers,
        "scaling": scaling,
        "flashboot": opts.flashboot,
        "networkVolumes": list(opts.network_volumes),
        "timeout": opts.execution_timeout_s * 1000,
    }
    return with_ports(fields, opts.ports)


def template_create(name: str, fields: dict[str, Any]) -> Request:
    body: dict[str, Any] = {"name": name, **_without_null(fields)}
    # The worker runs neither sshd nor Jupyter; both default to true for templates.
    body.update({"category": "NVIDIA", "startSsh": False, "startJupyter": False})
    return Request("POST", "/v2/templates", body)


def endpoint_create(
    name: str, template_id: str, fields: dict[str, Any], kind: EndpointKind = "QUEUE"
) -> Request:
    body = {"name": name, "type": kind, "templateId": template_id, **_without_null(fields)}
    return Request("POST", "/v2/serverless", body)


def registry_create(name: str, username: str, password: str) -> Request:
    return Request("POST", "/v2/registries", {"name": name, "username": username, "password": password})


def _without_null(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# --- diff ---------------------------------------------------------------------------------------------

NESTED = ("env", "gpu", "workers", "scaling")  # compared key by key
UNORDERED = ("gpu.allowedCudaVersions", "gpu.excludedTypes", "allowedCudaVersions", "networkVolumes", "ports")
EMPTY_WHEN_MISSING = {"env": {}, "networkVolumes": [], "registry": None, "gpu.excludedTypes": []}
# One selection in REST v2: a PATCH sending `pools` without `excludedTypes` clears the exclusions, and
# `excludedTypes` requires `pools` (UpdateEndpointGpuConfig): either change restates both.
GPU_SELECTION = ("pools", "excludedTypes")


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    """The fields with the nested ones spread out under dotted paths."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in NESTED and isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
        else:
            out[key] = value
    return out


def diff(current: dict[str, Any], desired: dict[str, Any]) -> list[Change]:
    """Fields of `desired` whose value differs in `current` (a RunPod object), dotted paths in order."""
    want = _flat(desired)
    have = _flat({key: current.get(key, EMPTY_WHEN_MISSING.get(key, MISSING)) for key in desired})
    # Sub-keys RunPod has that the deploy no longer wants (an env override removed, a scaler field).
    for path in have:
        if path not in want and path.split(".")[0] in ("env", "scaling"):
            want[path] = MISSING
    changes = []
    for path, new in want.items():
        old = have.get(path, EMPTY_WHEN_MISSING.get(path, MISSING))
        if path in UNORDERED and isinstance(old, list) and isinstance(new, list):
            same = sorted(map(str, old)) == sorted(map(str, new))
        else:
            same = old == new
        if not same:
            changes.append(Change(path, old, new))
    return changes


def patch_body(desired: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """Only the changed fields; env and scaling whole (PATCH replaces them), gpu and workers by key."""
    body: dict[str, Any] = {}
    for change in changes:
        top, _, sub = change.path.partition(".")
        if top in ("gpu", "workers") and sub:
            if sub in desired[top]:
                body.setdefault(top, {})[sub] = desired[top][sub]
        else:
            body[top] = desired[top]
    return with_gpu_selection(body, desired)


def with_gpu_selection(body: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body that changes the pools or the excluded types sends both (GPU_SELECTION)."""
    gpu = body.get("gpu") or {}
    if any(key in gpu for key in GPU_SELECTION):
        gpu.update({key: desired["gpu"][key] for key in GPU_SELECTION if key in desired["gpu"]})
    return body


# --- the plan -----------------------------------------------------------------------------------------


def find_by_name(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any] | None:
    found = [i for i in items if i.get("name") == name]
    if len(found) > 1:
        ids = ", ".join(str(i.get("id")) for i in found)
        raise PlanError(
            f"{len(found)} {what}s are named {name!r} ({ids}): the deploy updates one by name; rename or "
            f"delete the extra ones in the console, or choose another --name"
        )
    return found[0] if found else None


class PlanError(BuilderError):
    """The current state cannot be reconciled by name (an ambiguous name); exit status 1."""

    exit_code = 1


def _step(
    kind: str,
    name: str,
    collection: str,
    fields: dict[str, Any],
    current: dict[str, Any] | None,
    create: Callable[[], Request],
) -> Step:
    """Create when RunPod has nothing by that name, keep when nothing differs, else PATCH the changes."""
    if current is None:
        return Step(kind, name, "create", create())
    changes = diff(current, fields)
    rid = str(current["id"])
    if not changes:
        return Step(kind, name, "keep", None, (), rid)
    return Step(
        kind, name, "update", Request("PATCH", f"{collection}/{rid}", patch_body(fields, changes)),
        tuple(changes), rid,
    )  # fmt: skip


def template_step(name: str, fields: dict[str, Any], current: dict[str, Any] | None) -> Step:
    return _step("template", name, "/v2/templates", fields, current, lambda: template_create(name, fields))


def endpoint_step(
    name: str,
    template_id: str,
    fields: dict[str, Any],
    current: dict[str, Any] | None,
    kind: EndpointKind = "QUEUE",
) -> Step:
    return _step(
        "endpoint",
        name,
        "/v2/serverless",
        fields,
        current,
        lambda: endpoint_create(name, template_id, fields, kind),
    )


# --- the endpoint's kind --------------------------------------------------------------------------------

KIND_WORDS = {"QUEUE": "a queue endpoint", "LOAD_BALANCER": "a load-balancing endpoint"}


class EndpointKindChange(BuilderError):
    """The endpoint by that name is of the other kind; exit status 1, before any write."""

    exit_code = 1


def kind_change_refusal(current: dict[str, Any] | None, kind: EndpointKind, flag_name: str) -> str | None:
    """Why the deploy cannot update `current` to `kind`, or None. REST v2 takes `type` on create only
    (CreateEndpointRequest requires it; UpdateEndpointRequest has no such field), so an endpoint keeps
    its kind for life. An endpoint without `type` predates load balancing: a queue endpoint."""
    if current is None:
        return None
    have = current.get("type") or "QUEUE"
    if have == kind:
        return None
    name, eid = current.get("name"), current.get("id")
    return (
        f"endpoint {name} (id {eid}) is {KIND_WORDS.get(have, have)}, and this variant serves "
        f"{KIND_WORDS[kind]}: RunPod fixes an endpoint's type when it is created (the update request has "
        f"no type), so it cannot be changed in place. Deploy under a new name (--name {flag_name}) to "
        "create a new template and endpoint of the right kind, move your clients to it (a load-balancing "
        "endpoint is called at https://ENDPOINT_ID.api.runpod.ai, a queue endpoint at "
        "https://api.runpod.ai/v2/ENDPOINT_ID), then delete the old endpoint in the console. Nothing "
        "was sent."
    )

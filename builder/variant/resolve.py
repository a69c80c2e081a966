"""Resolution: a validated variant plus the compatibility data -> everything the templates need.

Pure: fills what the variant leaves out (base image, CUDA list, GPU count, disk, settings defaults).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from builder import __version__
from builder.compat import Compat
from builder.compat.gpus import Selection, representative_archs, select
from builder.variant.feature_jobs import feature_jobs
from builder.variant.models import Variant
from builder.variant.settings_spec import (
    BY_ENV,
    ENGINE_FIELDS,
    env_value,
    offerable_settings,
    offered_choices,
)
from worker_runtime.config.release import parser_spelling

MODELS_ROOT = "/models"
DEPS_DIR = "/opt/worker/deps"
# Settings offered (hub.json) only by variants whose weights come from RunPod's model cache.
CACHED_ONLY = ("MODEL_CACHE_FALLBACK",)


@dataclass(frozen=True)
class Resolved:
    name: str
    title: str
    description: str
    toolkit_version: str
    # engine / image
    release: str
    cuda: str
    install: str
    base_image: str
    python: str
    pip: dict[str, str] | None
    # model
    model_id: str
    model_source: str
    revision: str | None
    bake: bool
    weights: str  # "baked" | "download" | "cached"
    gated: bool
    allow_patterns: list[str]
    model_dir: str | None
    weights_gb: float
    # runtime settings: env name -> typed value (set values only, in SETTINGS order)
    settings: dict[str, Any]
    extra_env: dict[str, str]
    # hub
    category: str
    icon_url: str | None
    gpu_ids: list[str]
    excluded_types: list[str]  # GPU types of the pools the worker cannot run (or the variant negates)
    exclusions: dict[str, str]  # excluded type -> why
    gpu_archs: list[str]  # architectures of the types a worker may get
    gpu_count: int
    container_disk_gb: int
    allowed_cuda_versions: list[str]
    presets: list[dict[str, Any]]
    expose: list[str]
    advanced: list[str] | None
    tests: list[dict[str, Any]]
    gpu_type_id: str
    endpoint_type: str  # "queue" | "load_balancer" (the runtime's ENDPOINT_TYPE)
    # image
    repository: str
    extra_tags: list[str]
    source_url: str | None
    labels: dict[str, str] = field(default_factory=dict)
    # guided decoding: the backend, the pins its layer installs, the size they add (MB, an estimate)
    guided_backend: str = "off"
    guided_packages: list[str] = field(default_factory=list)
    guided_image_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def env_strings(self) -> dict[str, str]:
        """Settings as environment strings, for the Dockerfile ENV and tests.json."""
        return {env: env_value(BY_ENV[env], value) for env, value in self.settings.items()}

    def offered_choices(self, compat: Compat, env: str) -> list[str]:
        """The values hub.json offers for a choice setting (release list, pool architectures)."""
        return offered_choices(
            BY_ENV[env],
            compat.engine_release(self.release),
            set(self.gpu_archs),
            compat.quantization_archs,
        )


def resolve(variant: Variant, compat: Compat) -> Resolved:
    eng, model, hub = variant.engine, variant.model, variant.hub
    release = compat.build_release(eng.fastdeploy)
    assert release is not None, "resolve() takes a checked variant"
    gpus = select(compat, eng.fastdeploy, eng.install, eng.cuda, eng.quantization, list(hub.gpu_ids))

    pip = None
    if eng.install == "image":
        base_image = eng.base_image or compat.official_image(eng.fastdeploy, eng.cuda) or ""
    else:
        base_image = eng.base_image or compat.cuda_base_image(eng.cuda) or ""
        data = release.pip
        assert data is not None, "resolve() takes a checked variant"
        fd_index = data.fastdeploy_index
        group = (
            eng.cuda
            if eng.cuda in fd_index
            else compat.pip_wheel_group(representative_archs(compat, hub.gpu_ids))
        )
        pip = {
            "paddlepaddle": data.paddlepaddle,
            "paddle_index": data.paddle_index[eng.cuda],
            "fastdeploy": data.fastdeploy,
            "fastdeploy_index": fd_index[group or next(iter(fd_index))],
        }

    size = compat.weights_gb(model.id, model.weights_gb) or 0.0
    mode = model.weights_mode
    model_dir = f"{MODELS_ROOT}/{variant.name}" if mode == "baked" else None

    values: dict[str, Any] = {
        "MODEL": model_dir or model.id,
        "MODEL_REVISION": None if model_dir else model.revision,
        # Only a name the variant chose: unset, the runtime serves MODEL under its own name (a changed MODEL
        # follows), or the baked folder under BAKED_MODEL_ID.
        "SERVED_MODEL_NAME": model.served_name,
        "BAKED_MODEL_ID": model.id if model_dir else None,
        "MODEL_SOURCE": None if model_dir else model.source,
        # Baked for both kinds: the image says which endpoint it serves (hub.json fixes it, see hub.py).
        "ENDPOINT_TYPE": variant.endpoint.type,
    }
    if mode == "cached":  # the runtime looks for this snapshot first (worker_runtime.engine.model_cache)
        values["MODEL_CACHED"] = True
        values["MODEL_CACHE_FILES"] = list(model.allow_patterns) or None
    for fname, env in ENGINE_FIELDS.items():
        values[env] = getattr(eng, fname)
    for env in ("REASONING_PARSER", "TOOL_CALL_PARSER"):  # the release's spelling, as the runtime emits
        choices = compat.engine_choices(eng.fastdeploy, BY_ENV[env].choices_from or "")
        if values[env] is not None:
            values[env] = parser_spelling(values[env], choices) or values[env]
    if not eng.extra_args:
        values["ENGINE_ARGS"] = None
    if eng.guided_decoding_backend == "off":
        values["GUIDED_DECODING_BACKEND"] = None  # the runtime's default: no ENV line
    values.update(eng.settings)
    settings = {s.env: values[s.env] for s in BY_ENV.values() if values.get(s.env) is not None}

    count = hub.gpu_count or eng.tensor_parallel_size
    disk = hub.container_disk_gb or compat.needed_disk_gb(compat.disk_weights_gb(size, mode))
    cudas = hub.allowed_cuda_versions or compat.host_cuda_versions(eng.cuda)
    exposed = (
        [
            env
            for env in offerable_settings(compat.engine_release(eng.fastdeploy), eng.fastdeploy)
            if mode == "cached" or env not in CACHED_ONLY
        ]
        if hub.expose is None
        else list(hub.expose)
    )

    labels = {
        "org.opencontainers.image.title": variant.title,
        "org.opencontainers.image.description": variant.description,
        "org.opencontainers.image.version": __version__,
        "io.runpod.fastdeploy.name": variant.name,
        "io.runpod.fastdeploy.release": eng.fastdeploy,
        "io.runpod.fastdeploy.model": model.id,
    }
    if model.revision:
        labels["io.runpod.fastdeploy.model-revision"] = model.revision

    guided = (
        release.guided_decoding.backends.get(eng.guided_decoding_backend) if release.guided_decoding else None
    )

    return Resolved(
        name=variant.name,
        title=variant.title,
        description=variant.description,
        toolkit_version=__version__,
        release=eng.fastdeploy,
        cuda=eng.cuda,
        install=eng.install,
        base_image=base_image,
        python=release.python,
        pip=pip,
        model_id=model.id,
        model_source=model.source,
        revision=model.revision,
        bake=mode == "baked",
        weights=mode,
        gated=model.gated,
        allow_patterns=list(model.allow_patterns),
        model_dir=model_dir,
        weights_gb=size,
        settings=settings,
        extra_env=dict(sorted(eng.env.items())),
        category=hub.category,
        icon_url=hub.icon_url,
        gpu_ids=list(hub.gpu_ids),
        excluded_types=gpus.excluded_types,
        exclusions={
            **{t: "negated in hub.gpu_ids" for t in gpus.negated},
            **{e.type.id: e.reason for e in gpus.excluded},
        },
        gpu_archs=sorted(gpus.archs),
        gpu_count=count,
        container_disk_gb=disk,
        allowed_cuda_versions=list(cudas),
        presets=[p.model_dump() for p in hub.presets],
        expose=exposed,
        advanced=None if hub.advanced is None else list(hub.advanced),
        tests=[t.model_dump() for t in variant.tests.jobs]
        + [
            job
            for job in feature_jobs(eng.guided_decoding_backend if guided else "off", eng.tool_call_parser)
            if job["name"] not in {t.name for t in variant.tests.jobs}
        ],
        gpu_type_id=variant.tests.gpu_type_id
        or default_test_gpu(gpus, [i for i in hub.gpu_ids if i in compat.pools], compat),
        endpoint_type=variant.endpoint.type,
        repository=variant.image.repository,
        extra_tags=list(variant.image.tags),
        source_url=variant.image.source,
        labels=labels,
        guided_backend=eng.guided_decoding_backend if guided else "off",
        guided_packages=list(guided.packages) if guided else [],
        guided_image_mb=guided.image_mb if guided else None,
    )


def default_test_gpu(gpus: Selection, pool_ids: list[str], compat: Compat) -> str:
    """The GPU type the Hub tests run on: the first pool's representative when the worker runs it, else
    the first type the worker runs."""
    for pool_id in pool_ids:
        kept = gpus.kept_in(pool_id)
        representative = compat.pools[pool_id].representative
        if kept:
            return representative if any(t.id == representative for t in kept) else kept[0].id
    return "NVIDIA A40"  # no pool keeps a type: the checks refuse such a variant

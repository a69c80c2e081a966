"""`--env KEY=VALUE` overrides, checked before any request: the key must be a setting the worker reads
and users may set (worker_runtime.config.catalog), and the image's baked settings with every override on top
must pass the runtime's own `load_settings` for the image's FastDeploy release."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from builder.compat import Compat
from builder.errors import BuilderError, did_you_mean
from builder.paths import reference_page
from builder.variant.resolve import Resolved
from builder.variant.settings_spec import BY_ENV, FIXED_BY_LISTING, env_value
from worker_runtime.config.catalog import SETTINGS
from worker_runtime.config.settings import SettingsError, load_settings

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Read by the engine or its download libraries, not by the worker's settings: passed through unchecked.
PASS_THROUGH = ("HF_TOKEN", "HF_ENDPOINT", "HUGGING_FACE_HUB_TOKEN")
PASS_THROUGH_PREFIXES = ("FD_", "NCCL_", "PADDLE_", "FLAGS_")
# Fixed by the image, yet RunPod documents them as a load-balancing endpoint's own env (its ports and
# health check): settable on a load-balancing variant's endpoint, meaningless on a queue one.
LB_ENDPOINT_SETTINGS = ("PORT", "PORT_HEALTH", "HEALTH_CHECK_PATH")


class OverrideError(BuilderError):
    """Bad `--env` values; `problems` has one line each (they name the key and what is allowed)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        return [f"error: {p}" for p in self.problems]


def effective(resolved: Resolved, env: dict[str, str], name: str) -> str | None:
    """A setting's value on the endpoint or container: an `--env` override, else the image's baked value,
    else the runtime's default (None: unset)."""
    value = env.get(name) or resolved.settings.get(name)
    value = BY_ENV[name].default if value in (None, "") else value
    return None if value in (None, "") else env_value(BY_ENV[name], value)


def parse_overrides(pairs: Sequence[str], resolved: Resolved, compat: Compat) -> dict[str, str]:
    settable = {s.env for s in SETTINGS if s.in_hub}
    fixed = {s.env for s in SETTINGS if not s.in_hub}
    env: dict[str, str] = {}
    problems: list[str] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not KEY.match(key):
            problems.append(f"--env {pair!r} is not KEY=VALUE")
            continue
        if key in LB_ENDPOINT_SETTINGS:
            if resolved.endpoint_type != "load_balancer":
                problems.append(
                    f"--env {key}: read on a load-balancing endpoint only, and {resolved.name} serves a "
                    "queue endpoint (endpoint.type: queue)"
                )
        elif key in FIXED_BY_LISTING:
            problems.append(
                f"--env {key}: set by the variant's endpoint.type ({resolved.endpoint_type}); an endpoint's "
                "kind is fixed when it is created, so deploy a variant of the other kind under a new name"
            )
        elif key in fixed:
            problems.append(f"--env {key}: fixed by the image (it describes what was built), not settable")
        elif key not in settable and key not in PASS_THROUGH and not key.startswith(PASS_THROUGH_PREFIXES):
            hint = did_you_mean(key, sorted(settable))
            problems.append(
                f"--env {key}: not a setting the worker reads"
                + (f" (did you mean {hint}?)" if hint else "")
                + f"; the settings are listed in {reference_page('settings.md')}"
            )
        env[key] = value
    if problems:
        raise OverrideError(problems)
    base = {"FASTDEPLOY_VERSION": resolved.release, **resolved.env_strings()}
    try:
        load_settings({**base, **env}, flag_table=compat.flag_table(), volume_dir=os.devnull + "/none")
    except SettingsError as exc:
        raise OverrideError([f"--env: {p}" for p in exc.problems]) from None
    return env

"""Where the RunPod API key and the two base URLs come from (the variables runpod-python reads).

The key: `RUNPOD_API_KEY`, else `api_key` of the `[default]` profile of `~/.runpod/config.toml`, the file
`runpod config` writes (runpod-python 1.12 reads that profile and key at import). Never from argv.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from builder.errors import BuilderError

MANAGEMENT_BASE = "https://api.runpod.io"  # REST v2 paths (/v2/...) are appended
JOB_BASE = "https://api.runpod.ai/v2"  # /<endpoint id>/runsync ... are appended
# A load-balancing endpoint's own host (runpod/docs serverless/load-balancing/overview.mdx); the worker's
# paths are appended. RUNPOD_LB_BASE_URL (this toolkit's, not runpod-python's) replaces it, {endpoint_id}
# filled in: a proxy, or a test server.
LB_BASE = "https://{endpoint_id}.api.runpod.ai"
CONFIG_FILE = Path("~/.runpod/config.toml")
PROFILE = "default"


class CredentialsError(BuilderError):
    """No usable API key; the message says where it was looked for (exit status 1)."""

    exit_code = 1


def management_base(environ: Mapping[str, str] = os.environ) -> str:
    return (environ.get("RUNPOD_API_BASE_URL") or MANAGEMENT_BASE).rstrip("/")


def job_base(environ: Mapping[str, str] = os.environ) -> str:
    return (environ.get("RUNPOD_ENDPOINT_BASE_URL") or JOB_BASE).rstrip("/")


def lb_base(endpoint_id: str, environ: Mapping[str, str] = os.environ) -> str:
    return (environ.get("RUNPOD_LB_BASE_URL") or LB_BASE).rstrip("/").replace("{endpoint_id}", endpoint_id)


def _read_toml(path: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10: tomli, a dependency of runpod (when installed)
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise CredentialsError(
                f"{path} needs a TOML reader on Python 3.10: pip install tomli, or set RUNPOD_API_KEY"
            ) from None
    with path.open("rb") as f:
        return tomllib.load(f)


def api_key(environ: Mapping[str, str] = os.environ, config_file: Path | None = None) -> str:
    """The API key from the environment or the runpod config file; CredentialsError when neither has one."""
    key = (environ.get("RUNPOD_API_KEY") or "").strip()
    if key:
        return key
    path = (config_file or CONFIG_FILE).expanduser()
    if path.is_file():
        try:
            data = _read_toml(path)
        except (OSError, ValueError) as exc:
            # The parser's message quotes no value of the file, so it cannot leak the key.
            raise CredentialsError(f"{path} is not a readable TOML file ({type(exc).__name__})") from None
        profile = data.get(PROFILE)
        value = profile.get("api_key") if isinstance(profile, dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise CredentialsError(
            f"{path} has no api_key in its [{PROFILE}] profile: run `runpod config` or set RUNPOD_API_KEY"
        )
    raise CredentialsError(
        "no RunPod API key: set RUNPOD_API_KEY (a key with read/write access, from the console's "
        f"Settings > API Keys) or run `runpod config`, which writes {CONFIG_FILE}"
    )

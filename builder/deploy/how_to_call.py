"""How to call a deployed endpoint: its URLs, the served model name and a ready-to-paste `openai` snippet
(a queue endpoint through RunPod's job API and its `/openai/v1` passthrough; a load-balancing endpoint at
the worker's own routes under https://ENDPOINT_ID.api.runpod.ai)."""

from __future__ import annotations

import json
from collections.abc import Callable

from builder.deploy.env_overrides import effective
from builder.variant.resolve import Resolved
from worker_runtime.config import routes


def served_model(resolved: Resolved, env: dict[str, str]) -> str:
    """The model name the engine answers to: SERVED_MODEL_NAME (an `--env` override first, then the
    image's), else the model (an `--env MODEL` override first), as the runtime's default."""
    named = env.get("SERVED_MODEL_NAME") or resolved.settings.get("SERVED_MODEL_NAME")
    return str(named or env.get("MODEL") or resolved.model_id)


def health_path(resolved: Resolved, env: dict[str, str]) -> str:
    """The path RunPod polls on a load-balancing worker (an `--env HEALTH_CHECK_PATH` override wins)."""
    return effective(resolved, env, "HEALTH_CHECK_PATH") or "/ping"


def snippet(openai_base: str, model: str) -> str:
    return "\n".join(
        [
            "import os",
            "from openai import OpenAI",
            "",
            f'client = OpenAI(base_url={json.dumps(openai_base)}, api_key=os.environ["RUNPOD_API_KEY"])',
            "reply = client.chat.completions.create(",
            f"    model={json.dumps(model)},",
            '    messages=[{"role": "user", "content": "Hello"}],',
            "    max_tokens=64,",
            ")",
            "print(reply.choices[0].message.content)",
        ]
    )


def print_calling(endpoint_id: str, base: str, model: str, say: Callable[[str], None]) -> None:
    say(f"endpoint id: {endpoint_id}")
    say(f"job API:     {base}  (POST /run, /runsync; GET /status/<job id>, /stream/<job id>, /health)")
    say(f"openai:      {base}/openai/v1  (model {model})")
    _say_snippet(snippet(f"{base}/openai/v1", model), say)


def print_lb_calling(
    endpoint_id: str, base: str, health: str, model: str, say: Callable[[str], None]
) -> None:
    """A load-balancing endpoint: the worker's routes at `base`, RunPod's health check, the snippet."""
    say(f"endpoint id: {endpoint_id} (load balancing)")
    posts, gets = (", ".join(routes.paths(routes.LOAD_BALANCER, method=m)) for m in ("POST", "GET"))
    say(f"URL:         {base}  (POST {posts}; GET {gets})")
    say(f"health:      {base}{health}  (204 while the model loads, 200 when ready)")
    say(f"openai:      {base}/v1  (model {model})")
    _say_snippet(snippet(f"{base}/v1", model), say)


def _say_snippet(text: str, say: Callable[[str], None]) -> None:
    say("python:")
    say("\n".join("    " + line if line else "" for line in text.splitlines()))

"""How to call a deployed endpoint: its URLs, the served model name and a ready-to-paste `openai` snippet."""

from __future__ import annotations

import json
from collections.abc import Callable

from builder.variant.resolve import Resolved


def served_model(resolved: Resolved, env: dict[str, str]) -> str:
    """The model name the engine answers to (an `--env SERVED_MODEL_NAME` override wins)."""
    baked = resolved.settings.get("SERVED_MODEL_NAME") or resolved.model_id
    return env.get("SERVED_MODEL_NAME") or str(baked)


def snippet(base: str, model: str) -> str:
    return "\n".join(
        [
            "import os",
            "from openai import OpenAI",
            "",
            f"client = OpenAI(base_url={json.dumps(base + '/openai/v1')}, "
            'api_key=os.environ["RUNPOD_API_KEY"])',
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
    say("python:")
    say("\n".join("    " + line if line else "" for line in snippet(base, model).splitlines()))

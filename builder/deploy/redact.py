"""Keep secrets out of everything printed: API key, registry password, and env values that look secret."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from builder.errors import MASK, redact

# Env names whose values are credentials (HF_TOKEN, *_API_KEY, *_PASSWORD, ...): shown masked in diffs.
SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I
)
SECRET_FIELDS = frozenset({"password", "username"})  # write-only registry fields


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Masks known secret strings anywhere in text, and secret fields/env values in request bodies."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret containing another is masked whole; short strings are not secrets.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def text(self, value: str) -> str:
        return redact(value, self.secrets)

    def body(self, value: Any) -> Any:
        """A copy of a JSON body with write-only fields and secret-looking env values masked."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in SECRET_FIELDS and isinstance(v, str):
                    out[k] = MASK
                elif k == "env" and isinstance(v, dict):
                    out[k] = {ek: self.env_value(ek, ev) for ek, ev in v.items()}
                else:
                    out[k] = self.body(v)
            return out
        if isinstance(value, list):
            return [self.body(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def env_value(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and value and is_secret_name(name):
            return MASK
        return self.body(value)

"""Errors the builder reports to its user, and the collection of variant problems.

Every error the command line reports is a :class:`BuilderError`: it carries its exit status and the lines
to print, so the CLI has one handler and never shows a traceback for a user mistake. Variant problems are
collected (every problem of every file, each naming the file, field path, value and what is allowed)
and raised together as one :class:`VariantErrors`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# What a secret (registry password, API key, model-hub token) becomes in anything printed or raised.
MASK = "***"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``MASK``, in the order given."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def did_you_mean(value: Any, choices: Iterable[Any]) -> str | None:
    """The closest choice to a misspelt value, or None."""
    if not isinstance(value, str):
        return None
    names = [str(c) for c in choices]
    lowered = {n.lower(): n for n in names}
    if value.lower() in lowered and lowered[value.lower()] != value:
        return lowered[value.lower()]
    match = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    return match[0] if match else None


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass(frozen=True)
class VariantError:
    file: str
    path: tuple[str | int, ...]
    message: str
    value: Any = None
    allowed: tuple[str, ...] = ()
    suggestion: str | None = None
    show_value: bool = True

    def __str__(self) -> str:
        text = f"{self.file}: {format_path(self.path)}: "
        if self.show_value:
            text += f"{self.value!r} "
        text += self.message
        if self.allowed:
            shown = ", ".join(self.allowed[:20]) + (", ..." if len(self.allowed) > 20 else "")
            text += f"; allowed: {shown}"
        if self.suggestion is not None:
            text += f" (did you mean {self.suggestion!r}?)"
        return text


@dataclass
class ErrorList:
    """Collects errors; `raise_if_any` turns them into one VariantErrors."""

    errors: list[VariantError] = field(default_factory=list)

    def add(
        self,
        file: str,
        path: Sequence[str | int],
        message: str,
        value: Any = None,
        allowed: Iterable[Any] = (),
        *,
        suggest: bool = True,
        show_value: bool = True,
    ) -> None:
        allowed_t = tuple(str(a) for a in allowed)
        suggestion = did_you_mean(value, allowed_t) if (suggest and allowed_t) else None
        if suggestion == value:
            suggestion = None
        self.errors.append(VariantError(file, tuple(path), message, value, allowed_t, suggestion, show_value))

    def extend(self, other: Iterable[VariantError]) -> None:
        self.errors.extend(other)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise VariantErrors(self.errors)


class BuilderError(Exception):
    """Base of every error the CLI reports: ``exit_code`` is the process status, ``lines()`` what it prints.

    2: the input is wrong (command line, variant file, data file, build inputs); 1: an outside system
    (the Docker engine, a registry) failed.
    """

    exit_code = 2

    def lines(self) -> list[str]:
        return [f"error: {self}"]


class UsageError(BuilderError):
    """A command-line mistake (unknown verb or variant name, a flag that does not go with the verb)."""


class VariantErrors(BuilderError):
    """One or more problems in variant files; the CLI prints them all and exits with status 2."""

    def __init__(self, errors: Sequence[VariantError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def lines(self) -> list[str]:
        return [f"error: {e}" for e in self.errors] + [f"{len(self.errors)} error(s); nothing was written"]

"""What every check gets: the variant, where each field came from, the compatibility data, the error list,
and the facts several checks derive from them (computed once)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from builder.compat import Compat
from builder.compat.gpus import Selection, select
from builder.compat.tables import Pool
from builder.errors import ErrorList
from builder.variant.loader import Loaded
from builder.variant.models import Variant


@dataclass
class Context:
    variant: Variant
    loaded: Loaded
    compat: Compat
    errors: ErrorList

    def add(self, path: tuple[str | int, ...], message: str, *args: Any, **kwargs: Any) -> None:
        """One problem at a field path (as ErrorList.add), named with the file that set the field."""
        self.errors.add(self.loaded.file_for(path), path, message, *args, **kwargs)

    @property
    def release(self) -> str:
        return self.variant.engine.fastdeploy

    @cached_property
    def release_ok(self) -> bool:
        """The release is one a variant can name (build data and a flag table)."""
        return self.release in self.compat.release_names()

    @cached_property
    def engine_release(self) -> dict[str, Any]:
        return self.compat.engine_release(self.release)

    @cached_property
    def pools(self) -> list[tuple[int, str, Pool]]:
        """(index in hub.gpu_ids, id, pool) of every known pool the variant names (negated ids skipped)."""
        out = []
        for i, pool_id in enumerate(self.variant.hub.gpu_ids):
            pool = None if pool_id.startswith("-") else self.compat.pool(pool_id)
            if pool is not None:
                out.append((i, pool_id, pool))
        return out

    @cached_property
    def selection(self) -> Selection:
        """The GPU types of the pools the release's build runs (kept) and those deploy excludes."""
        eng = self.variant.engine
        return select(
            self.compat,
            eng.fastdeploy,
            eng.install,
            eng.cuda,
            eng.quantization,
            list(self.variant.hub.gpu_ids),
        )

    @cached_property
    def pool_archs(self) -> set[str]:
        """Architectures of the GPU types a worker may get (those excluded aside)."""
        return self.selection.archs

    @cached_property
    def gpu_count(self) -> int:
        hub = self.variant.hub
        return hub.gpu_count if hub.gpu_count is not None else self.variant.engine.tensor_parallel_size

    @cached_property
    def weights_gb(self) -> float | None:
        model = self.variant.model
        return self.compat.weights_gb(model.id, model.weights_gb)


class Check:
    """A check function and the fields it reads ("engine.quantization", "hub", ...)."""

    def __init__(self, fn: Callable[[Context], None], reads: tuple[str, ...]):
        self.fn = fn
        self.reads = tuple(tuple(r.split(".")) for r in reads)
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    def __call__(self, ctx: Context) -> None:
        self.fn(ctx)

    def blocked_by(self, dropped: Iterable[tuple[str, ...]]) -> bool:
        """Whether a field this check reads (or one inside it, or around it) failed to parse."""
        return any(d[: len(r)] == r or r[: len(d)] == d for d in dropped for r in self.reads)

    def __repr__(self) -> str:
        return f"<check {self.__name__} reads {', '.join('.'.join(r) for r in self.reads)}>"


def check(*reads: str) -> Callable[[Callable[[Context], None]], Check]:
    """Decorator: a check of the fields `reads`."""

    def wrap(fn: Callable[[Context], None]) -> Check:
        return Check(fn, reads)

    return wrap

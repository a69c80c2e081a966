"""Checks of the guided decoding backend (structured outputs): the release has it, and no engine argument
makes the release switch it off (speculative decoding), which FastDeploy does with only a warning."""

from __future__ import annotations

from builder.variant.checks.context import Context, check
from worker_runtime.config.release import is_option


def engine_words(ctx: Context) -> list[tuple[tuple[str | int, ...], str]]:
    """Every word the engine gets from the variant, with where it was set."""
    eng = ctx.variant.engine
    words: list[tuple[tuple[str | int, ...], str]] = [
        (("engine", "extra_args", i), w) for i, w in enumerate(eng.extra_args)
    ]
    raw = eng.settings.get("ENGINE_ARGS")
    if isinstance(raw, str):
        words += [(("engine", "settings", "ENGINE_ARGS"), w) for w in raw.split()]
    elif isinstance(raw, list):
        words += [(("engine", "settings", "ENGINE_ARGS"), str(w)) for w in raw]
    return words


@check("engine.fastdeploy", "engine.guided_decoding_backend", "engine.extra_args", "engine.settings")
def backend_of_the_release(ctx: Context) -> None:
    """The backend is one the release has; no engine flag that turns it off is set beside it."""
    backend = ctx.variant.engine.guided_decoding_backend
    if backend == "off" or not ctx.release_ok:
        return
    build = ctx.compat.build_release(ctx.release)
    guided = build.guided_decoding if build else None
    allowed = ["off", *sorted(guided.backends)] if guided else ["off"]
    if guided is None or backend not in guided.backends:
        ctx.add(
            ("engine", "guided_decoding_backend"),
            f"is not known for FastDeploy {ctx.release} (its packages and pins are not in "
            "builder/compat/fastdeploy_releases.yaml)",
            backend,
            allowed,
            suggest=False,
        )
        return
    for path, word in engine_words(ctx):
        flag = word.split("=", 1)[0]
        if is_option(word) and flag.replace("_", "-") in guided.excluded_by:
            ctx.add(
                path,
                f"cannot be combined with engine.guided_decoding_backend {backend}: FastDeploy "
                f"{ctx.release} then switches guided decoding off with only a log warning, and every "
                "structured output would be ignored; remove it or set guided_decoding_backend: off",
                flag,
                suggest=False,
            )


CHECKS = (backend_of_the_release,)

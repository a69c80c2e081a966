"""Test stand-in for FastDeploy's OpenAI-compatible server (standard library only).

Start it exactly like the real engine:
``python -m fastdeploy.entrypoints.openai.api_server --model NAME [flags]``.
It accepts the flags of the FastDeploy release named by ``FD_STANDIN_RELEASE`` (default 2.5.0),
exits like argparse on an unknown flag, opens its port only after the load delay, writes log
files into ``FD_LOG_DIR`` and speaks FastDeploy's HTTP protocol, quirks included.

Fault and pacing knobs (environment variables):

- ``FD_STANDIN_RELEASE``: release whose flags are accepted (a key of ``_flags.json``).
- ``FD_STANDIN_LOAD_DELAY``: seconds before the port opens (default 0.1).
- ``FD_STANDIN_CRASH_AT_START``: exit with this code during "model loading", after logging why.
- ``FD_STANDIN_CRASH_MID_STREAM``: the process exits (code 7) after this many streamed tokens.
- ``FD_STANDIN_ERROR_MID_STREAM``: after this many streamed tokens send an error event, then [DONE].
- ``FD_STANDIN_HTTP_STATUS``: every /v1 request is answered with this HTTP status and an error body.
- ``FD_STANDIN_TOO_MANY``: 1 = every /v1 request gets FastDeploy's 429 (also real: ``--max-concurrency``).
- ``FD_STANDIN_HANG``: 1 = /v1 requests are read and never answered.
- ``FD_STANDIN_TOKEN_DELAY``: seconds between generated tokens (default 0).
- ``FD_STANDIN_ANSWER_TOKENS``: tokens in a natural answer before finish_reason "stop" (default 40).
- ``FD_STANDIN_STAMP_TOKENS``: 1 = each streamed token ends with ``<t>``, ``t`` its emission time
  (``time.monotonic()``, comparable across processes), for latency benchmarks.

``_flags.json`` is a copy of the releases in the runtime's ``engine_flags.json`` (the repository is
not inside an image); regenerate it with
``python -m fastdeploy._regenerate worker_runtime/engine_flags.json`` (with tests/engine_standin on
PYTHONPATH). A test checks that the copy is current.
"""

__version__ = "0.0.0+standin"

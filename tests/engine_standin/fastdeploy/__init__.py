"""Test stand-in for FastDeploy's OpenAI-compatible server (standard library only).

Start it exactly like the real engine:
``python -m fastdeploy.entrypoints.openai.api_server --model NAME [flags]``.
It accepts the flags of the FastDeploy release named by ``FD_STANDIN_RELEASE`` (default 2.5.0),
exits like argparse on an unknown flag, opens its port only after the load delay, writes log
files into ``FD_LOG_DIR`` and speaks FastDeploy's HTTP protocol, quirks included.

Fault and pacing knobs (environment variables):

- ``FD_STANDIN_RELEASE``: release whose flags are accepted (a key of the runtime's
  ``worker_runtime/config/engine_flags.json``, which the stand-in reads where the import system finds
  ``worker_runtime``; ``FD_STANDIN_FLAGS_FILE`` names another file).
- ``FD_STANDIN_LOAD_DELAY``: seconds before the port opens (default 0.1).
- ``FD_STANDIN_CRASH_AT_START``: exit with this code during "model loading", after logging why.
- ``FD_STANDIN_CRASH_MID_STREAM``: the process exits (code 7) after this many streamed tokens.
- ``FD_STANDIN_ERROR_MID_STREAM``: after this many streamed tokens send an error event, then [DONE].
- ``FD_STANDIN_ERROR_TAG``: 1 = a streamed request whose prompt holds ``standin-error-after=N`` ends as
  ``FD_STANDIN_ERROR_MID_STREAM=N`` would, the other requests untouched (faults for some jobs only).
- ``FD_STANDIN_HTTP_STATUS``: every /v1 request is answered with this HTTP status and an error body.
- ``FD_STANDIN_TOO_MANY``: 1 = every /v1 request gets FastDeploy's 429 (also real: ``--max-concurrency``).
- ``FD_STANDIN_HANG``: 1 = /v1 requests are read and never answered.
- ``FD_STANDIN_TOKEN_DELAY``: seconds between generated tokens (default 0).
- ``FD_STANDIN_ANSWER_TOKENS``: tokens in a natural answer before finish_reason "stop" (default 40).
- ``FD_STANDIN_STAMP_TOKENS``: 1 = each streamed token ends with ``<t>``, ``t`` its emission time
  (``time.monotonic()``, comparable across processes), for latency benchmarks.
- ``FD_STANDIN_KEEPALIVE_RACE``: seconds of latency between closing an idle connection (after 2 s) and
  the client noticing: a request sent on a connection idle longer than 2 s minus this is lost unanswered,
  as one crossing the close in flight is (default 0).
- ``FD_STANDIN_GPU_WORKER_LIFE``: seconds the "GPU worker" lives at most when nobody stops it (600).
- ``FD_STANDIN_REQUEST_LOG``: a file to which every request received, on either listener, is appended
  as ``METHOD PATH`` (one a line), so a test can tell which requests reached the engine at all.
- ``FD_STANDIN_FINISH_REASON``: every choice ends with this finish_reason (e.g. 2.6's ``pd_reschedule``).
- ``FD_STANDIN_GUIDED_BREAK``: ``json`` makes a guided-decoding answer invalid JSON, ``schema`` valid JSON
  missing a required property (entrypoints/openai/guided.py: guided decoding and tool calls as 2.5).

``FD_STANDIN_RELEASE=2.6.0`` selects the release/2.6 branch's behaviours (see ``api_server.py``): its
parser defaults (``--workers 4``, ``--max-concurrency 2048`` unless ``FD_ENABLE_MULTI_API_SERVER=1``),
generation stopped for a client that left unless ``FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE=0``, and
``POST /v1/abort_requests`` ending what it aborts with finish_reason ``abort``. On every release the
request limit is per API-server process (``ceil(max_concurrency / workers)``), and the usage report is
sent to ``FD_USAGE_STATS_SERVER`` before the port opens unless ``DO_NOT_TRACK=1``
(``fastdeploy/usage/usage_lib.py``).

Behaviours of FastDeploy 2.5 it reproduces (each cited in the code with its source file and line):
HTTP 500 for request errors (tracebacks in chat messages, ``{"detail": ...}`` on 429), ``max_tokens``
clamped to the room the prompt leaves, ``max_tokens`` over ``max_completion_tokens``, logprobs refused
without ``--enable-logprob``, one usage chunk per finished completions choice, decoding that goes on
after the client left unless ``FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE=1``, the control routes
(``/v1/pause`` really stops it), idle keep-alive connections closed after 2 s, a metrics listener on
0.0.0.0 when ``--metrics-port`` is given, and a "GPU worker" started in its own session
(``standin-gpu-worker.pid`` in ``FD_LOG_DIR``) that only a clean shutdown stops.
``/metrics`` also serves the stand-in's counters: ``standin_generated_tokens_total``,
``standin_unread_tokens_total`` (decoded after the client left), ``standin_client_disconnects_total``,
``standin_idle_connections_closed_total``, ``standin_requests_lost_at_idle_close_total``,
``standin_control_requests_total{route=...}``.
"""

__version__ = "0.0.0+standin"

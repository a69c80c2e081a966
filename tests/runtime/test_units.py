"""Pure parts: settings, engine argv per release, normalize, chunk merging, stand-in flag copy, py3.10."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from worker_runtime.config.catalog import DEFAULT_RELEASE
from worker_runtime.config.engine_args import EnginePorts, engine_argv, engine_env
from worker_runtime.config.release import owned_options, spelling
from worker_runtime.config.settings import SETTINGS, SettingsError, load_flag_table, load_settings
from worker_runtime.serve.chunk_merge import merge_chunks
from worker_runtime.serve.errors import JobError
from worker_runtime.serve.normalize import normalize

from .conftest import REPO, STANDIN

TABLE = load_flag_table()
PORTS = EnginePorts(1001, 1002, 1003, 1004)


def argv_for(env: dict[str, str]) -> list[str]:
    settings = load_settings({"MODEL": "m", **env}, volume_dir="/nonexistent")
    return engine_argv(settings, TABLE["releases"][settings.fastdeploy_version], PORTS, "py")


def test_settings_contract_names_and_kinds() -> None:
    names = [s.env for s in SETTINGS]
    for original in (
        "MODEL",
        "MAX_MODEL_LEN",
        "QUANTIZATION",
        "TENSOR_PARALLEL_SIZE",
        "GPU_MEMORY_UTILIZATION",
        "MAX_NUM_SEQS",
    ):
        assert original in names
    assert len(set(names)) == len(names)
    assert all(s.kind in ("str", "int", "float", "bool", "choice", "json", "args") for s in SETTINGS)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, worker_runtime.config.settings; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('runpod','aiohttp')))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_settings_defaults_and_derivations(tmp_path) -> None:
    s = load_settings({"MODEL": "m", "MAX_NUM_SEQS": "16", "QUANTIZATION": "None"}, volume_dir=str(tmp_path))
    assert s.max_concurrency == 16 and s.quantization is None and s.tensor_parallel_size == 1
    assert s.model_cache_dir == str(tmp_path / "fastdeploy")
    assert load_settings({"MODEL": "m"}, volume_dir="/nonexistent").max_concurrency == 8
    assert load_settings({"MODEL": "m", "ENABLE_PREFIX_CACHING": "Off"}).enable_prefix_caching is False


def test_settings_errors_list_everything() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            {
                "GPU_MEMORY_UTILIZATION": "1.5",
                "LIMIT_MM_PER_PROMPT": "[1]",
                "FASTDEPLOY_VERSION": "9.9",
                "ENGINE_ARGS": "'unclosed",
            }
        )
    text = str(info.value)
    for part in (
        "MODEL is required",
        "GPU_MEMORY_UTILIZATION='1.5'",
        "from 0.05 to 0.99",
        "LIMIT_MM_PER_PROMPT",
        "FASTDEPLOY_VERSION='9.9'",
        "2.5.0",
        "ENGINE_ARGS",
    ):
        assert part in text
    assert len(info.value.problems) == 5


def test_argv_uses_each_release_spelling() -> None:
    argv = argv_for({"LOAD_CHOICES": "default_v1", "FASTDEPLOY_VERSION": "2.2.0"})
    assert argv[argv.index("--load_choices") + 1] == "default_v1"
    argv = argv_for({"LOAD_CHOICES": "default_v1"})
    assert "--load-choices" in argv and "--load_choices" not in argv
    assert argv[:5] == ["py", "-m", "fastdeploy.entrypoints.openai.api_server", "--model", "m"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "1001"
    assert argv[argv.index("--cache-queue-port") + 1] == "1004"


def test_argv_bools_json_and_extra_args() -> None:
    argv = argv_for(
        {
            "ENABLE_PREFIX_CACHING": "false",
            "ENABLE_CHUNKED_PREFILL": "false",
            "LIMIT_MM_PER_PROMPT": '{"image": 2}',
            "ENGINE_ARGS": "--seed 7 --max-concurrency 3",
        }
    )
    assert "--no-enable-prefix-caching" in argv and "--enable-chunked-prefill" not in argv
    assert argv[argv.index("--limit-mm-per-prompt") + 1] == '{"image":2}'
    assert argv[-4:] == ["--seed", "7", "--max-concurrency", "3"]
    # 2.0 has no negative form, but false is its default: nothing to emit.
    assert "--enable-prefix-caching" not in argv_for(
        {"ENABLE_PREFIX_CACHING": "0", "FASTDEPLOY_VERSION": "2.0.0"}
    )


@pytest.mark.parametrize(
    "env",
    [
        {"SERVED_MODEL_NAME": "x", "FASTDEPLOY_VERSION": "2.0.0"},
        {"TOOL_CALL_PARSER": "ernie-45-vl-thinking", "FASTDEPLOY_VERSION": "2.2.0"},
        {"ENGINE_ARGS": "--max-concurrency 3", "FASTDEPLOY_VERSION": "2.1.0"},
        {"ENGINE_ARGS": "--port 9"},
    ],
)
def test_release_rejects_what_it_cannot_express(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        argv_for(env)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        # The close flag belongs to a setting: the setting is suggested, never a flag that is refused.
        ("--enable-logprobs", f"not accepted by FastDeploy {DEFAULT_RELEASE} (did you mean the LOGPROBS"),
        ("--enable-early-stp", f"not accepted by FastDeploy {DEFAULT_RELEASE} (did you mean --enable-early"),
        ("--port 9", "may not set --port: the runtime manages it"),
        ("--model other", "may not set --model: use the MODEL setting instead"),
    ],
)
def test_engine_args_problem_says_what_to_do(args: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({"MODEL": "m", "ENGINE_ARGS": args})
    assert fragment in str(exc.value)


def test_string_settings_are_trimmed() -> None:
    s = load_settings({"MODEL": " org/model\t", "SERVED_MODEL_NAME": " served ", "MODEL_REVISION": "v1 "})
    assert (s.model, s.served_model_name, s.model_revision) == ("org/model", "served", "v1")
    argv = argv_for({"MODEL": "m ", "SERVED_MODEL_NAME": " x"})
    assert argv[4] == "m" and argv[argv.index("--served-model-name") + 1] == "x"


@pytest.mark.parametrize(
    ("env", "value", "version", "expected"),
    [
        ("REASONING_PARSER", "ernie_x1", "2.5.0", "ernie-x1"),
        ("REASONING_PARSER", "ernie-x1", "2.5.0", "ernie-x1"),
        ("REASONING_PARSER", "ernie-x1", "2.2.0", "ernie_x1"),
        ("REASONING_PARSER", "ERNIE_45_VL", "2.5.0", "ernie-45-vl"),
        ("TOOL_CALL_PARSER", "ernie_x1", "2.5.0", "ernie-x1"),
        ("TOOL_CALL_PARSER", "ernie-x1", "2.2.0", "ernie_x1"),
    ],
)
def test_parser_names_accept_both_spellings(env: str, value: str, version: str, expected: str) -> None:
    argv = argv_for({env: value, "FASTDEPLOY_VERSION": version})
    flag = "--reasoning-parser" if env == "REASONING_PARSER" else "--tool-call-parser"
    assert argv[argv.index(flag) + 1] == expected


@pytest.mark.parametrize(
    ("args", "version", "setting"),
    [
        ("--max-num-seqs 4", "2.5.0", "MAX_NUM_SEQS"),
        ("--max-num-seqs=4", "2.5.0", "MAX_NUM_SEQS"),
        ("-tp 2", "2.5.0", "TENSOR_PARALLEL_SIZE"),
        ("--tensor-parallel-size 2", "2.0.0", "TENSOR_PARALLEL_SIZE"),
        ("--quantization wint4", "2.5.0", "QUANTIZATION"),
        ("--no-enable-prefix-caching", "2.5.0", "ENABLE_PREFIX_CACHING"),
        ("--enable-chunked-prefill", "2.5.0", "ENABLE_CHUNKED_PREFILL"),
        ("--load_choices default_v1", "2.1.0", "LOAD_CHOICES"),
        ("--max_num_seqs 4", "2.5.0", "MAX_NUM_SEQS"),  # 2.1-2.2 spelling on another release
        ("--served-model-name x", "2.5.0", "SERVED_MODEL_NAME"),
        ("--revision main", "2.5.0", "MODEL_REVISION"),
    ],
)
def test_engine_args_may_not_set_what_a_setting_owns(args: str, version: str, setting: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({"MODEL": "m", "ENGINE_ARGS": args, "FASTDEPLOY_VERSION": version})
    assert f"use the {setting} setting instead" in str(exc.value)


def test_owned_options_cover_every_flag_setting_of_every_release() -> None:
    for version, release in load_flag_table()["releases"].items():
        owned = owned_options(release)
        for setting in SETTINGS:
            if setting.flag is not None:
                assert owned[setting.flag] == setting.env, (version, setting.env)
                name = spelling(setting.flag, release)
                if name is not None:
                    assert owned[name] == setting.env
        assert "--seed" not in owned and "--no-no-enable-prefix-caching" not in owned


@pytest.mark.parametrize("args", ["--api-key secret", "--api-key=secret"])
def test_engine_args_may_not_set_an_api_key(args: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings({"MODEL": "m", "ENGINE_ARGS": args})
    assert "may not set --api-key" in str(exc.value) and "401" in str(exc.value)


def test_engine_env_drops_fd_api_key() -> None:
    env = engine_env(load_settings({"MODEL": "m"}), {"FD_API_KEY": "k", "HOME": "/root"}, "/logs")
    assert "FD_API_KEY" not in env and env["HOME"] == "/root"


def test_engine_env() -> None:
    s = load_settings(
        {
            "MODEL": "m",
            "MODEL_SOURCE": "HuggingFace",
            "MODEL_CACHE_DIR": "/c",
            "ENABLE_CHUNKED_PREFILL": "no",
            "WORKER_DEPS_DIR": "/opt/deps/",
        }
    )
    env = engine_env(s, {"PYTHONPATH": "/opt/deps:/x", "HOME": "/root"}, "/logs")
    assert env == {
        "PYTHONPATH": "/x",
        "HOME": "/root",
        "FD_LOG_DIR": "/logs",
        "FD_MODEL_SOURCE": "HUGGINGFACE",
        "FD_MODEL_CACHE": "/c",
        "FD_DISABLE_CHUNKED_PREFILL": "1",
        "FD_ENABLE_REQUEST_DISCONNECT_STOP_INFERENCE": "1",
        "DO_NOT_TRACK": "1",
    }


def test_engine_env_keeps_the_usage_report_off_unless_allowed() -> None:
    asked = {"DO_NOT_TRACK": "0", "FD_USAGE_STATS_SERVER": "http://stats.example"}
    env = engine_env(load_settings({"MODEL": "m"}), asked, "/logs")
    assert env["DO_NOT_TRACK"] == "1"  # the endpoint's own DO_NOT_TRACK=0 does not turn it on
    allowed = load_settings({"MODEL": "m", "FASTDEPLOY_USAGE_STATS": "true"})
    env = engine_env(allowed, asked, "/logs")
    assert env["DO_NOT_TRACK"] == "0" and env["FD_USAGE_STATS_SERVER"] == "http://stats.example"


@pytest.mark.parametrize("version", sorted(TABLE["releases"]))
def test_argv_pins_the_defaults_the_runtime_relies_on(version: str) -> None:
    """One API-server process and 2.5's request limit on every release that has the flags, whatever the
    release's own default (release/2.6: 4 processes, 2048)."""
    argv = argv_for({"FASTDEPLOY_VERSION": version})
    flags = TABLE["releases"][version]["flags"]
    assert "--workers" in flags  # every release the table holds takes it
    assert argv[argv.index("--workers") + 1] == "1" and argv.count("--workers") == 1
    if "--max-concurrency" in flags:
        assert argv[argv.index("--max-concurrency") + 1] == "512"
    else:
        assert "--max-concurrency" not in argv


def test_engine_args_may_raise_the_pinned_limit_but_not_the_workers() -> None:
    argv = argv_for({"ENGINE_ARGS": "--max-concurrency 1024"})
    assert argv[-2:] == ["--max-concurrency", "1024"]  # later on the command line: argparse takes it
    with pytest.raises(SettingsError) as exc:
        load_settings({"MODEL": "m", "ENGINE_ARGS": "--workers 4"})
    assert "may not set --workers: the runtime manages it" in str(exc.value)


def test_normalize_shapes() -> None:
    r = normalize(
        {
            "messages": [{"role": "user", "content": "x"}],
            "sampling_params": {"top_k": 3, "min_tokens": 2},
            "stream": True,
        },
        "served",
    )
    assert (r.method, r.route, r.stream, r.openai) == ("POST", "/v1/chat/completions", True, False)
    assert r.body["top_k"] == 3 and r.body["model"] == "served" and r.body["stream_options"]["include_usage"]
    assert normalize({"openai_route": "/v1/models"}, "s").method == "GET"
    r = normalize({"openai_route": "/v1/models", "openai_input": {}}, "s")
    assert (r.method, r.body, r.stream) == ("GET", None, False)
    with pytest.raises(JobError, match="takes no"):
        normalize({"openai_route": "/v1/models", "openai_input": {"x": 1}}, "s")
    r = normalize({"openai_route": "/v1/completions", "openai_input": {"prompt": "p", "model": "mine"}}, "s")
    assert r.body["model"] == "mine" and not r.stream
    for bad in (
        None,
        [],
        {"prompt": 3},
        {"messages": []},
        {"openai_route": "v1/x"},
        {"prompt": "p", "sampling_params": {"nope": 1}},
        {"prompt": "p", "stream": "yes"},
    ):
        with pytest.raises(JobError) as info:
            normalize(bad, "s")
        assert info.value.status == 400


def test_merge_chunks_concatenates_deltas() -> None:
    a = {
        "id": "c",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "你"}, "finish_reason": None}],
    }
    b = {
        "id": "c",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "content": "好",
                    "tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{"}}],
                },
                "finish_reason": None,
            }
        ],
    }
    c = {
        "id": "c",
        "choices": [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]},
                "finish_reason": "stop",
            }
        ],
    }
    d = {"id": "c", "choices": [], "usage": {"total_tokens": 3}}
    merged = merge_chunks([a, b, c, d])
    (choice,) = merged["choices"]
    assert choice["delta"]["content"] == "你好" and choice["finish_reason"] == "stop"
    assert choice["delta"]["tool_calls"] == [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]
    assert merged["usage"] == {"total_tokens": 3}


def test_merge_chunks_merges_choices_of_one_index_within_a_chunk() -> None:
    """FastDeploy's chunks of several tokens (max_streaming_response_tokens) list one choice per token."""
    tokens = [{"index": 0, "delta": {"content": t}, "arrival_time": i} for i, t in enumerate("abc")]
    merged = merge_chunks([{"id": "c", "choices": tokens}])
    assert merged["choices"] == [{"index": 0, "delta": {"content": "abc"}, "arrival_time": 2}]
    distinct = {"id": "c", "choices": [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]}
    assert merge_chunks([distinct]) is distinct  # one choice per index: passed on as it is


def test_merge_chunks_keeps_every_token_id() -> None:
    def chunk(n: int, finish: str | None = None) -> dict:
        delta = {"content": f"t{n}", "completion_token_ids": [n], "completion_tokens": f"t{n}"}
        if n == 0:
            delta.update(role="assistant", prompt_token_ids=[100, 101], prompt_tokens="hi")
        return {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "raw_prediction": f"r{n}",
                    "completion_token_ids": [n],
                    "finish_reason": finish,
                }
            ],
        }

    text = {"id": "c", "choices": [{"index": 0, "text": "a", "completion_token_ids": [7]}]}
    merged = merge_chunks([chunk(0), chunk(1), chunk(2, "stop")])
    (choice,) = merged["choices"]
    delta = choice["delta"]
    assert delta["completion_token_ids"] == [0, 1, 2] and delta["prompt_token_ids"] == [100, 101]
    assert delta["content"] == delta["completion_tokens"] == "t0t1t2"
    assert delta["role"] == "assistant" and delta["prompt_tokens"] == "hi"
    assert choice["completion_token_ids"] == [0, 1, 2] and choice["raw_prediction"] == "r0r1r2"
    assert choice["finish_reason"] == "stop"
    (choice,) = merge_chunks([text, text])["choices"]
    assert choice["text"] == "aa" and choice["completion_token_ids"] == [7, 7]
    assert text["choices"][0]["completion_token_ids"] == [7]  # inputs left untouched


def test_standin_reads_the_runtimes_own_flag_table(tmp_path) -> None:
    """No copy: the stand-in parses worker_runtime/config/engine_flags.json (or the file it is pointed at)."""
    table = json.loads((REPO / "worker_runtime" / "config" / "engine_flags.json").read_text())
    table["releases"]["9.9.9"] = {"flags": {"--model": {"type": "str"}, "--only-here": {"type": "int"}}}
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps(table))
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO), str(STANDIN)]),
        "FD_STANDIN_RELEASE": "9.9.9",
        "FD_STANDIN_FLAGS_FILE": str(flags),
        "FD_LOG_DIR": str(tmp_path / "log"),
        "FD_STANDIN_CRASH_AT_START": "5",
        "FD_STANDIN_LOAD_DELAY": "0",
        "DO_NOT_TRACK": "1",
    }
    argv = [sys.executable, "-m", "fastdeploy.entrypoints.openai.api_server", "--model", "m"]
    out = subprocess.run([*argv, "--only-here", "3"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 5, out.stderr  # parsed, then the crash knob
    del env["FD_STANDIN_FLAGS_FILE"]  # the runtime's own table: no release 9.9.9
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert out.returncode != 0 and "known releases are 2.0.0, 2.1.0" in out.stderr + out.stdout
    assert not (STANDIN / "fastdeploy" / "_flags.json").exists()


def test_standin_rejects_unknown_flag_like_argparse(tmp_path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(STANDIN)]), "FD_STANDIN_RELEASE": "2.1.0"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastdeploy.entrypoints.openai.api_server",
            "--model",
            "m",
            "--load-choices",
            "default",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,  # found through PYTHONPATH, not the working directory
    )
    assert out.returncode == 2 and "unrecognized arguments: --load-choices" in out.stderr


def test_python_310_compatible() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from vermin import main; sys.exit(main())",
            "--target=3.10-",  # 3.10 or older suffices
            "--no-tips",
            "--violations",
            "--eval-annotations",
            "worker_runtime",
            "tests/engine_standin",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    ("env", "level"),
    [
        ({}, "INFO"),
        ({"RUNPOD_DEBUG_LEVEL": "DEBUG"}, "DEBUG"),
        ({"RUNPOD_LOG_LEVEL": "WARN", "RUNPOD_DEBUG_LEVEL": "DEBUG"}, "WARN"),
        ({"RUNPOD_LOG_LEVEL": "", "RUNPOD_DEBUG_LEVEL": ""}, "INFO"),  # empty is unset, not a crash
    ],
)
def test_sdk_log_level_defaults_to_info(env: dict[str, str], level: str) -> None:
    from worker_runtime.serve.queue import sdk_log_env

    assert sdk_log_env(env) == {"RUNPOD_LOG_LEVEL": level}


def test_tune_gc_freezes_startup_objects_and_raises_thresholds() -> None:
    import gc

    from worker_runtime.serve.lifecycle import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS and gc.get_freeze_count() > 0
        assert all(new >= old for new, old in zip(GC_THRESHOLDS, before, strict=True))
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.parametrize(
    ("argv", "ports"),
    [
        (["--local", "--port", "9000"], {9000}),
        (["--local"], {8000}),
        (["--rp_serve_api", "--rp_api_port", "9001"], {9001}),
        (["--rp_serve_api"], {8000}),  # the SDK's default
        (["--rp_api_port", "9001"], set()),  # no test API: the SDK listens on nothing
        ([], set()),
    ],
)
def test_own_ports_are_the_ones_the_worker_will_listen_on(argv: list[str], ports: set[int]) -> None:
    from worker_runtime.__main__ import parse_args
    from worker_runtime.engine.start import own_ports

    args, rest = parse_args(argv)
    assert own_ports(args, rest) == ports


def test_free_ports_skips_excluded_ports_and_closes_every_socket(monkeypatch) -> None:
    """The kernel may hand out a port the worker is about to bind (it looks free until then):
    an engine on the worker's own port made the worker fail with EADDRINUSE."""
    from worker_runtime.engine import ports

    handed = iter([8000, 8001, 8003, 8002, 8004])

    class Sock:
        def __init__(self, *_: object) -> None:
            self.port = 0
            self.closed = False
            opened.append(self)

        def bind(self, addr: tuple[str, int]) -> None:
            self.port = next(handed)

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

        def close(self) -> None:
            self.closed = True

    opened: list[Sock] = []
    monkeypatch.setattr(ports.socket, "socket", Sock)
    assert ports.free_ports(3, exclude={8000, 8003}) == [8001, 8002, 8004]
    assert len(opened) == 5 and all(s.closed for s in opened)


# ---------------------------------------------------------- caller text, bodies, the engine's environment


def test_shown_escapes_and_bounds_caller_text() -> None:
    from worker_runtime.serve.errors import shown

    assert shown("a\nb\x00c\u2028\ud800 你好🚀") == "a\\x0ab\\x00c\\u2028\\ud800 你好🚀"
    assert shown("x" * 500, 10) == "x" * 10 + "…"
    shown("\ud800" * 300).encode("utf-8")  # always encodable


def test_job_error_payload_is_utf8_whatever_it_holds() -> None:
    from worker_runtime.serve.errors import JobError

    err = JobError(400, "key \ud800 and 你好")
    json.loads(err.payload().encode("utf-8"))
    assert err.sse_event().encode("utf-8").startswith(b"data: ")
    assert "你好" in err.payload()


@pytest.mark.parametrize(
    "raw",
    [b"[" * 2000 + b"]" * 2000, b'{"a":' * 1100 + b"1" + b"}" * 1100, b"\xff", b"", b"{", b'{"a": 1}x'],
)
def test_parse_body_refuses_what_is_not_json_with_a_400(raw: bytes) -> None:
    from worker_runtime.serve.callers import parse_body
    from worker_runtime.serve.errors import JobError

    err = parse_body(raw)
    assert isinstance(err, JobError) and err.status == 400 and err.code == "invalid_json"


def test_fastjson_dumps_keeps_characters_and_falls_back() -> None:
    from worker_runtime.serve.fastjson import dumps

    assert dumps({"p": "🚀"}) == '{"p":"🚀"}'.encode()  # 4 bytes, not a 12-byte escape pair
    assert json.loads(dumps({"k": "\ud800", "n": 1 << 70})) == {"k": "\ud800", "n": 1 << 70}
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError):
        dumps(deep)


def test_engine_env_passes_what_the_engine_reads_and_no_runpod_secret() -> None:
    base = {
        "RUNPOD_AI_API_KEY": "secret",
        "RUNPOD_POD_ID": "pod",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "HF_TOKEN": "hf",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NCCL_DEBUG": "INFO",
        "FLAGS_allocator_strategy": "auto_growth",
        "FD_ATTENTION_BACKEND": "APPEND_ATTN",
        "ENABLE_V1_KVCACHE_SCHEDULER": "1",
        "PATH": "/usr/bin",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
    }
    env = engine_env(load_settings({"MODEL": "m"}), base, "/logs")
    assert not [k for k in env if k.startswith("RUNPOD_")] and "AWS_SECRET_ACCESS_KEY" not in env
    for kept in ("HF_TOKEN", "CUDA_VISIBLE_DEVICES", "NCCL_DEBUG", "FLAGS_allocator_strategy", "PATH"):
        assert env[kept] == base[kept]
    assert env["FD_ATTENTION_BACKEND"] == "APPEND_ATTN" and env["ENABLE_V1_KVCACHE_SCHEDULER"] == "1"

"""The byte-level event splitter and the relay's fast path, under any chunking (hypothesis).

Streams mix FastDeploy's framing (``data: {...} \\n\\n``) with ``\\r\\n`` line ends, whitespace-only blank
lines, comments, ``event:`` fields and multi-line data, and are cut anywhere, inside multi-byte characters
included.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker_runtime.serve import fastjson
from worker_runtime.serve.relay import _convert, _convert_block, _may_end, _parse
from worker_runtime.serve.sse import EventSplitter, SSEParser, plain_events, plain_mid_stream

from .test_properties import chunked, relay

# Payloads without line breaks, rich in multi-byte characters (so cuts land inside them).
PAYLOAD = st.text(
    alphabet=st.sampled_from(list('ab {}":,é你好🚀👩\u200d💻\t'))
    | st.characters(blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
).filter(lambda t: "\n" not in t and "\r" not in t and t.strip() == t and t != "[DONE]")
LINE_END = st.sampled_from([b"\n", b"\r\n", b" \n"])
BLANK = st.sampled_from([b"\n", b"\r\n", b" \n", b" \r\n", b"\t\n"])


@st.composite
def events(draw: Any) -> tuple[bytes, list[str]]:
    """One event's bytes and the data it carries."""
    lines = draw(st.lists(PAYLOAD, min_size=1, max_size=3))
    raw = b""
    if draw(st.booleans()):
        raw += b": keep-alive" + draw(LINE_END)
    if draw(st.booleans()):
        raw += b"event: message" + draw(LINE_END)
    for line in lines:
        raw += b"data: " + line.encode() + draw(LINE_END)
    return raw + draw(BLANK), ["\n".join(lines)]


STREAMS = st.lists(events(), max_size=6)
CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=25)


def split_all(data: bytes, cuts: list[int]) -> tuple[list[bytes], list[bytes]]:
    """(blocks per fed piece, what was kept after each piece)."""
    splitter = EventSplitter()
    blocks: list[bytes] = []
    fed = b""
    kept: list[bytes] = []
    for piece in chunked(data, cuts):
        fed += piece
        blocks.append(splitter.feed(piece))
        kept.append(fed[len(b"".join(blocks)) :])
    blocks.append(splitter.close())
    return blocks, kept


@given(STREAMS, CUTS)
def test_splitter_gives_whole_events_as_soon_as_complete(
    stream: list[tuple[bytes, list[str]]], cuts: list[int]
) -> None:
    data = b"".join(raw for raw, _ in stream)
    expected = [d for _, ds in stream for d in ds]
    blocks, kept = split_all(data, cuts)
    assert b"".join(blocks) == data  # nothing lost, nothing reordered
    got: list[str] = []
    for block in blocks:
        block.decode("utf-8")  # never cut inside a character
        parser = SSEParser()
        got += [e.data for e in parser.feed(block)]
        assert parser.close() == [], "a block ends at an event's end"
    assert got == expected
    for rest in kept:  # the first event is never held back: what is kept completes no event
        assert SSEParser().feed(rest) == []


@given(STREAMS, CUTS)
def test_a_final_event_without_its_blank_line_comes_out_at_close(
    stream: list[tuple[bytes, list[str]]], cuts: list[int]
) -> None:
    data = b"".join(raw for raw, _ in stream) + b"data: last"
    blocks, _ = split_all(data, cuts)
    assert b"".join(blocks) == data and blocks[-1].endswith(b"data: last")


def fastdeploy_block(payloads: list[str], spaces: list[bool], done: bool) -> bytes:
    out = b""
    for payload, space in zip(payloads, spaces, strict=False):
        out += b"data: " + payload.encode() + (b" " if space else b"") + b"\n\n"
    return out + (b"data: [DONE]\n\n" if done else b"")


@given(st.lists(PAYLOAD, max_size=5), st.lists(st.booleans(), min_size=5, max_size=5), st.booleans())
def test_plain_events_drop_fastdeploys_stray_space_only(
    payloads: list[str], spaces: list[bool], done: bool
) -> None:
    block = fastdeploy_block(payloads, spaces, done)
    plain = plain_events(block)
    assert plain is not None
    assert plain == fastdeploy_block(payloads, [False] * 5, done)
    assert plain_events(block.replace(b"\n", b"\r\n")) in (None, b"")  # CRLF: the full parser's job


@given(
    st.lists(PAYLOAD, max_size=5),
    st.lists(st.booleans(), min_size=5, max_size=5),
    st.booleans(),
    st.one_of(st.just(b""), events().map(lambda e: e[0])),
)
def test_plain_mid_stream_is_plain_as_it_is_and_not_done(
    payloads: list[str], spaces: list[bool], done: bool, other: bytes
) -> None:
    """The one-pass check agrees with ``plain_events`` plus a search for [DONE], any framing."""
    block = fastdeploy_block(payloads, spaces, done) + other
    events = SSEParser().feed(block)
    expected = plain_events(block) == block and not any(e.is_done for e in events)
    assert plain_mid_stream(block) is expected


CHUNK = st.fixed_dictionaries(
    {
        "id": st.just("chatcmpl-1"),
        "choices": st.just([])
        | st.lists(
            st.fixed_dictionaries(
                {
                    "index": st.just(0),
                    "delta": st.fixed_dictionaries({"content": PAYLOAD}),
                    "finish_reason": st.none(),
                }
            ),
            min_size=1,
            max_size=1,
        ),
    }
)


@given(
    st.lists(CHUNK, max_size=5),
    st.lists(st.booleans(), min_size=5, max_size=5),
    st.booleans(),
    st.booleans(),
)
def test_fast_path_equals_the_full_parse(
    chunks: list[dict[str, Any]], spaces: list[bool], done: bool, openai: bool
) -> None:
    payloads = [json.dumps(c, ensure_ascii=False) for c in chunks]
    block = fastdeploy_block(payloads, spaces, done) + (
        b"data: {}\n\n" if done else b""
    )  # after [DONE]: dropped
    assert _convert_block(block, openai) == _convert(_parse(block), openai)


def test_error_event_takes_the_full_parse() -> None:
    error = {"error": {"message": "boom", "type": "server_error", "param": None, "code": "internal_error"}}
    block = fastdeploy_block(['{"choices": []}', json.dumps(error)], [True, False], True)
    out, err, done = _convert_block(block, True)
    assert out == 'data: {"choices": []}\n\n' and err is not None and err.message == "boom" and not done


@given(
    st.lists(st.sampled_from(["你好", "🚀", "é", "ok", "👩\u200d💻"]), min_size=1, max_size=8),
    CUTS,
    st.booleans(),
)
def test_relay_with_crlf_and_cuts_inside_characters(words: list[str], cuts: list[int], openai: bool) -> None:
    opening = {
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    }
    chunks = [opening] + [
        {"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words
    ]
    data = b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\r\n\r\n" for c in chunks)
    data += b"data: [DONE]\r\n\r\n"
    outputs = relay(chunked(data, cuts), openai)
    if openai:
        assert all(isinstance(o, str) and o.startswith("data: ") and o.endswith("\n\n") for o in outputs)
        events = SSEParser().feed("".join(outputs).encode())
        assert events[-1].is_done
        got = [json.loads(e.data) for e in events[:-1]]
    else:
        got = outputs
    assert "".join(c["delta"].get("content") or "" for o in got for c in o["choices"]) == "".join(words)
    # The role-only opening chunk is held back to go out with the first token.
    opened = SSEParser().feed(outputs[0].encode()) if openai else []
    first = [json.loads(e.data) for e in opened if not e.is_done] if openai else [outputs[0]]
    assert any(c["delta"].get("content") for o in first for c in o["choices"])
    assert first[0]["choices"][0]["delta"].get("role") == "assistant"


@given(
    st.lists(CHUNK, max_size=4),
    st.sampled_from(["1, 2", "[1", "nope", '{"a": 1} {"b": 2}']),
    st.integers(0, 4),
)
def test_fast_path_names_an_invalid_event_like_the_full_parse(
    chunks: list[dict[str, Any]], bad: str, at: int
) -> None:
    payloads = [json.dumps(c, ensure_ascii=False) for c in chunks]
    payloads.insert(min(at, len(payloads)), bad)
    block = fastdeploy_block(payloads, [False] * len(payloads), False)
    fast, slow = _convert_block(block, False), _convert(_parse(block), False)
    assert fast[0] is None and fast[1] is not None and slow[1] is not None
    assert fast[1].message == slow[1].message and fast[1].status == slow[1].status == 502


@given(events(), st.booleans())
def test_any_framing_converts_like_the_full_parse(event: tuple[bytes, list[str]], openai: bool) -> None:
    """Comments, event fields, CR line ends and multi-line data leave the fast path, never fool it."""
    raw, _data = event
    block = fastdeploy_block(['{"choices": []}'], [True], False) + raw

    def plain(result: tuple[Any, Any, bool]) -> tuple[Any, Any, bool]:
        out, err, done = result
        return out, (err.status, err.message) if err is not None else None, done

    assert plain(_convert_block(block, openai)) == plain(_convert(_parse(block), openai))


def test_native_fast_path_reads_what_pythons_json_writes() -> None:
    """``NaN``/``-Infinity`` (json.dumps of a float overflow) and lone surrogates: orjson refuses them,
    the standard parser does not, and the job must not fail on them."""
    chunk = {"choices": [{"index": 0, "delta": {"content": "\ud83d"}, "logprobs": {"lp": [float("-inf")]}}]}
    block = fastdeploy_block([json.dumps(chunk)], [True], True)
    out, err, done = _convert_block(block, False)
    assert err is None and done and out["choices"][0]["logprobs"]["lp"] == [float("-inf")]
    assert out == _convert(_parse(block), False)[0]


def test_fastjson_loads_like_json() -> None:
    assert fastjson.loads(b'{"a": [1, 2.5, null, "\xc3\xa9"]}') == {"a": [1, 2.5, None, "é"]}
    assert fastjson.loads("NaN") != fastjson.loads("NaN")  # a float NaN, as json gives
    for bad in (b"{", b"[1,]", b"nope", b"\xff"):
        with pytest.raises(ValueError):
            fastjson.loads(bad)


STOP = b'data: {"choices": [{"finish_reason": "stop"}]}\n\n'
NULL = b'data: {"choices": [{"finish_reason": null}]}\n\n'


@pytest.mark.parametrize(
    ("data", "may_end"),
    [
        (NULL, False),  # mid-stream
        (STOP, True),  # the last token's chunk
        (STOP.replace(b"\n\n", b" \n\n"), True),
        (NULL + b'data: {"choices": [], "usage": {}}\n\n', True),  # a usage chunk
        (STOP + b'data: {"choi', False),  # ends inside an event
        (STOP + NULL, False),
        # FastDeploy 2.5's own chunks: no finish_reason until a choice finishes, a compact usage chunk
        (b'data: {"choices":[{"index":0,"delta":{"content":"a"},"arrival_time":1.0}]}\n\n', False),
        (b'data: {"choices":[{"index":0,"text":"a","arrival_time":1.0}],"metrics":null}\n\n', False),
        (b'data: {"choices":[],"usage":{"prompt_tokens":3}}\n\n', True),
        (b'data: {"error": {"message": "boom"}}\n\n', False),  # the job ends at the error anyway
    ],
)
def test_may_end_looks_at_the_last_whole_event(data: bytes, may_end: bool) -> None:
    """One loop turn is spent waiting for [DONE] only after a chunk that can be the last one."""
    assert _may_end(data) is may_end

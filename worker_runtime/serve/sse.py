"""Pure incremental server-sent-events parser: bytes in, whole events out.

Events end at a blank line; lines end with ``\\n`` or ``\\r\\n``; a line holding only whitespace
counts as blank, and trailing whitespace of a field is dropped (FastDeploy writes
``data: {...} \\n\\n``). Bytes are decoded only once an event is complete, so a UTF-8 character
split across network reads is never broken.

``EventSplitter`` is the cheap front end of a stream relay: it finds where the whole events of the
bytes received so far end, without decoding or parsing them, so a relay can pass a block of whole
events on as received. ``plain_events`` says whether a block is in the plain ``data: ...`` framing
that needs no rewriting (FastDeploy's, once its stray spaces are dropped), ``plain_mid_stream`` the
same in one pass for a block without ``[DONE]``, and ``plain_payloads`` splits such a block into its
events' data; other blocks go through ``SSEParser``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Whole events in plain OpenAI framing: each one a single ``data: `` line without trailing
# whitespace, then a blank line.
_PLAIN = re.compile(rb"(?:data: [^\n]*\S\n\n)*")
_PLAIN_MID_STREAM = re.compile(rb"(?:data: (?!\[DONE\]\n)[^\n]*\S\n\n)*")


@dataclass(frozen=True)
class Event:
    data: str
    event: str | None = None

    @property
    def is_done(self) -> bool:
        return self.data == "[DONE]"

    def to_sse(self) -> str:
        """The event in plain OpenAI framing."""
        head = f"event: {self.event}\n" if self.event else ""
        lines = "".join(f"data: {line}\n" for line in self.data.split("\n"))
        return f"{head}{lines}\n"


class SSEParser:
    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._seen_field = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Events completed by ``chunk`` (possibly none)."""
        buf = self._buf + chunk if self._buf else chunk
        out: list[Event] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            self._line(buf[start:end].rstrip(), out)
            start = end + 1
        self._buf = buf[start:]
        return out

    def close(self) -> list[Event]:
        """At end of stream: a final event that lacked its blank line, if any."""
        out: list[Event] = []
        if self._buf:
            self._line(self._buf.rstrip(), out)
            self._buf = b""
        self._dispatch(out)
        return out

    def _line(self, line: bytes, out: list[Event]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line.startswith(b":"):
            return  # comment / keep-alive
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._seen_field = True
        elif name == b"event":
            self._event = value
            self._seen_field = True

    def _dispatch(self, out: list[Event]) -> None:
        if self._seen_field and self._data:
            data = b"\n".join(self._data).decode("utf-8", errors="replace")
            event = self._event.decode("utf-8", errors="replace") if self._event else None
            out.append(Event(data, event))
        self._data = []
        self._event = None
        self._seen_field = False


class EventSplitter:
    """Bytes in, blocks of whole events out (as received, blank lines included); nothing decoded."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        """The events completed by ``chunk`` (b"" if none); the incomplete rest is kept."""
        old = len(self._buf)
        buf = self._buf + chunk if old else chunk
        end = _end_of_events(buf, old)
        self._buf = buf[end:]
        return buf[:end]

    def close(self) -> bytes:
        """At end of stream: what is left (a last event that lacked its blank line), else b""."""
        rest, self._buf = self._buf, b""
        return rest if rest.strip() else b""


def _end_of_events(buf: bytes, checked: int) -> int:
    """Where the last blank line of ``buf`` ends (0 if none).

    A blank line is a line holding only whitespace (``\\n``, `` \\n``, ``\\r\\n``). The newlines of
    ``buf[:checked]`` are known to end no blank line, so only newer ones are looked at, from the end:
    usually one or two lines are read per call, whatever the size of ``buf``.
    """
    end = len(buf)
    while True:
        nl = buf.rfind(b"\n", checked, end)
        if nl < 0:
            return 0
        start = buf.rfind(b"\n", 0, nl) + 1  # the buffer starts at a line start
        line = buf[start:nl]
        if not line or line.isspace():
            return nl + 1
        end = nl


def plain_events(block: bytes) -> bytes | None:
    """``block`` (whole events) in plain framing, or None when it needs a real parse.

    FastDeploy ends some event lines with a space (``data: {...} \\n\\n``): that space is dropped.
    CR line ends, comments, ``event:`` fields, multi-line data and the like give None.
    """
    if _PLAIN.fullmatch(block):
        return block  # no stray space either: the pattern allows no whitespace before a blank line
    if b" \n\n" not in block:
        return None
    block = block.replace(b" \n\n", b"\n\n")
    return block if _PLAIN.fullmatch(block) else None


def plain_mid_stream(block: bytes) -> bool:
    """Whether ``block`` (whole events) is plain framing as it is, without ``[DONE]``: nearly every
    block of a stream (2.5 writes the stray space in the opening chunk only). One regex pass, where
    ``plain_events`` and a search for ``[DONE]`` take three."""
    return _PLAIN_MID_STREAM.fullmatch(block) is not None


def plain_payloads(block: bytes) -> list[bytes] | None:
    """The data of each event of ``block`` (whole events) if it looks like plain framing, else None.

    Cheaper than ``plain_events``: no full match. Plain events are ``data: <payload>`` lines, each
    followed by a blank line, so the payloads are exactly what lies between ``\\n\\ndata: ``
    separators. A payload keeps FastDeploy's stray space (JSON allows it after a value). Other framing
    (comments, CR line ends, ``event:`` fields, multi-line data) can still pass and leave a payload
    holding line breaks and field names: a caller parsing each payload as one JSON value finds that
    out and falls back to ``SSEParser``.
    """
    if not block.startswith(b"data: ") or not block.endswith(b"\n\n"):
        return None
    return block[len(b"data: ") : -2].split(b"\n\ndata: ")

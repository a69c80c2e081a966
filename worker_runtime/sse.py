"""Pure incremental server-sent-events parser: bytes in, whole events out.

Events end at a blank line; lines end with ``\\n`` or ``\\r\\n``; a line holding only whitespace
counts as blank, and trailing whitespace of a field is dropped (FastDeploy writes
``data: {...} \\n\\n``). Bytes are decoded only once an event is complete, so a UTF-8 character
split across network reads is never broken.
"""

from __future__ import annotations

from dataclasses import dataclass


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

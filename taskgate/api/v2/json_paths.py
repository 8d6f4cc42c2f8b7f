"""Incremental JSON parser that turns a model's streamed JSON text into `(json_path, delta)` events.

The v2 streaming endpoint (spec "StreamingChunk") sends each field of the structured answer as it is
generated. The text arrives in arbitrary chunks, so this parser keeps its whole state between `feed()`
calls and never looks at a character twice: one pass, O(n) over the output, a few microseconds per
chunk.

Events, in document order:

* a string value emits its DECODED characters as they arrive: every chunk that adds characters to it
  yields one fragment for its path (escapes and surrogate pairs split across chunks are decoded once
  complete). An empty string emits one `""` so the client learns the field exists.
* numbers, booleans and null emit once complete, as Python int (exact, however big) / float / bool / None.
* an empty object emits `{}` and an empty array `[]`, so that the events describe the whole value;
  non-empty containers are implied by the paths below them. v2 forwards only scalar deltas over SSE.

Paths are `root` followed by `.key` for object members and `[i]` for array items, e.g.
`response.people[0].name` or `response.matrix[1][0]`; the root value itself is `root`. Keys are written
as they are, even when they are not identifiers (`response.some key`), except that the three characters
that would make a path ambiguous, backslash, `.` and `[`, are preceded by a backslash
(`{"a.b": 1}` -> `response.a\\.b`).

Deliberate choices: raw control characters inside strings are rejected (as by `json.loads` and orjson);
an unpaired surrogate escape decodes to U+FFFD, because a lone surrogate cannot be serialised to the
client; duplicate keys are not detected (their string fragments would be glued together).
"""

from __future__ import annotations

import re
from typing import Any

_STRING_RUN = re.compile(r'[^"\\\x00-\x1f]+').match
_WHITESPACE = re.compile(r"[ \t\n\r]+").match
_NUMBER_RUN = re.compile(r"[0-9eE+\-.]+").match
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)").fullmatch
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch
_HEX4 = re.compile(r"[0-9a-fA-F]{4}").fullmatch
_KEY_SPECIAL = re.compile(r"[\\.\[]")

_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS: dict[str, tuple[str, Any]] = {"t": ("rue", True), "f": ("alse", False), "n": ("ull", None)}
_REPLACEMENT = "\ufffd"

# Parser states. A frame on the stack is [is_array, path_of_the_container, current_index].
_VALUE = 0  # a value must start here
_STRING = 1  # inside a string value
_KEY = 2  # inside an object key
_NUMBER_TOKEN = 3  # inside a number
_LITERAL = 4  # inside true / false / null
_AFTER = 5  # a value inside a container ended: `,` or the closer
_OBJECT_FIRST = 6  # just after `{`: a key or `}`
_OBJECT_KEY = 7  # after `,` in an object: a key
_COLON = 8
_ARRAY_FIRST = 9  # just after `[`: a value or `]`
_DONE = 10  # the root value is complete: only whitespace may follow
_FAILED = 11


class JSONStreamError(ValueError):
    """The streamed text is not JSON (or ended early); `position` is the character offset in the stream."""

    def __init__(self, message: str, position: int):
        super().__init__(f"{message} at position {position}")
        self.position = position


class JsonPathStream:
    """Feed JSON text in chunks, get the field-level events each chunk completes or extends."""

    def __init__(self, root: str = "response") -> None:
        self._state = _VALUE
        self._stack: list[list[Any]] = []
        self._path = root
        self._offset = 0  # characters consumed by earlier chunks, for error positions
        self._parts: list[str] = []  # decoded text of the current string not yet emitted (or the key)
        self._emitted = False  # the current string value has emitted at least one fragment
        self._escape = ""  # an escape sequence cut by a chunk boundary
        self._high: int | None = None  # a high surrogate waiting for its low half
        self._number = ""
        self._literal = ""  # the characters of true/false/null still expected
        self._literal_value: Any = None

    @property
    def done(self) -> bool:
        """The root value is complete (a root number completes only at whitespace or `finish()`)."""
        return self._state == _DONE

    def feed(self, chunk: str) -> list[tuple[str, Any]]:
        """Consume the next piece of text; return the events it produced, in order."""
        events: list[tuple[str, Any]] = []
        state = self._state
        if state == _FAILED:
            raise self._error("the stream already failed", 0)
        stack = self._stack
        n = len(chunk)
        i = 0
        while i < n:
            if state == _STRING:
                i, closed = self._scan_string(chunk, i, n)
                parts = self._parts
                if closed:
                    if parts:
                        events.append((self._path, "".join(parts)))
                        parts.clear()
                    elif not self._emitted:
                        events.append((self._path, ""))
                    state = _AFTER if stack else _DONE
                elif parts:
                    events.append((self._path, "".join(parts)))
                    parts.clear()
                    self._emitted = True
                continue
            if state == _KEY:
                i, closed = self._scan_string(chunk, i, n)
                if closed:
                    key = "".join(self._parts)
                    self._parts.clear()
                    if _KEY_SPECIAL.search(key):
                        key = _KEY_SPECIAL.sub(r"\\\g<0>", key)
                    self._path = stack[-1][1] + "." + key
                    state = _COLON
                continue
            if state == _NUMBER_TOKEN:
                match = _NUMBER_RUN(chunk, i)
                if match is not None:
                    self._number += match.group()
                    i = match.end()
                if i < n:
                    events.append((self._path, self._parse_number(i)))
                    state = _AFTER if stack else _DONE
                continue
            if state == _LITERAL:
                expected = self._literal
                take = min(len(expected), n - i)
                if chunk[i : i + take] != expected[:take]:
                    self._state = _FAILED
                    bad = next(k for k in range(take) if chunk[i + k] != expected[k])
                    raise self._error(f"invalid literal: unexpected {chunk[i + bad]!r}", i + bad)
                i += take
                if take < len(expected):
                    self._literal = expected[take:]
                else:
                    events.append((self._path, self._literal_value))
                    state = _AFTER if stack else _DONE
                continue

            c = chunk[i]
            if c in " \t\n\r":
                i = _WHITESPACE(chunk, i).end()  # type: ignore[union-attr]
                continue
            if state == _AFTER:
                frame = stack[-1]
                if c == ",":
                    if frame[0]:
                        frame[2] += 1
                        self._path = frame[1] + "[" + str(frame[2]) + "]"
                        state = _VALUE
                    else:
                        state = _OBJECT_KEY
                elif c == ("]" if frame[0] else "}"):
                    stack.pop()
                    state = _AFTER if stack else _DONE
                else:
                    self._state = _FAILED
                    raise self._error(f"expected ',' or {']' if frame[0] else '}'!r}, got {c!r}", i)
                i += 1
            elif state == _VALUE:
                if c == '"':
                    self._emitted = False
                    state = _STRING
                    i += 1
                elif c == "{":
                    stack.append([False, self._path, 0])
                    state = _OBJECT_FIRST
                    i += 1
                elif c == "[":
                    stack.append([True, self._path, 0])
                    state = _ARRAY_FIRST
                    i += 1
                elif c in "-0123456789":
                    self._number = ""
                    state = _NUMBER_TOKEN
                elif c in _LITERALS:
                    self._literal, self._literal_value = _LITERALS[c]
                    state = _LITERAL
                    i += 1
                else:
                    self._state = _FAILED
                    raise self._error(f"expected a JSON value, got {c!r}", i)
            elif state == _COLON:
                if c != ":":
                    self._state = _FAILED
                    raise self._error(f"expected ':', got {c!r}", i)
                state = _VALUE
                i += 1
            elif state in (_OBJECT_FIRST, _OBJECT_KEY):
                if c == '"':
                    state = _KEY
                elif c == "}" and state == _OBJECT_FIRST:
                    events.append((stack.pop()[1], {}))
                    state = _AFTER if stack else _DONE
                else:
                    self._state = _FAILED
                    raise self._error(f"expected an object key, got {c!r}", i)
                i += 1
            elif state == _ARRAY_FIRST:
                if c == "]":
                    events.append((stack.pop()[1], []))
                    state = _AFTER if stack else _DONE
                    i += 1
                else:
                    self._path = stack[-1][1] + "[0]"
                    state = _VALUE
            else:  # _DONE
                self._state = _FAILED
                raise self._error(f"unexpected {c!r} after the JSON value", i)
        self._state = state
        self._offset += n
        return events

    def finish(self) -> list[tuple[str, Any]]:
        """End of input: emit a pending root number; raise JSONStreamError if the value is incomplete."""
        if self._state == _NUMBER_TOKEN and not self._stack:
            event = (self._path, self._parse_number(0))
            self._state = _DONE
            return [event]
        if self._state != _DONE:
            self._state = _FAILED
            raise self._error("the JSON value is incomplete", 0)
        return []

    def _scan_string(self, chunk: str, i: int, n: int) -> tuple[int, bool]:
        """Decode string characters from chunk[i:] into self._parts; return (next index, string closed)."""
        parts = self._parts
        if self._escape:
            pending = self._escape
            length = self._decode_escape(pending + chunk[i : i + 6], i - len(pending))
            if not length:
                self._escape = pending + chunk[i:]
                return n, False
            self._escape = ""
            i += length - len(pending)
        while i < n:
            run = _STRING_RUN(chunk, i)
            if run is not None:
                if self._high is not None:
                    self._lone_surrogate()
                j = run.end()
                parts.append(chunk[i:j])
                if j == n:
                    return n, False
                i = j
            c = chunk[i]
            if c == '"':
                if self._high is not None:
                    self._lone_surrogate()
                return i + 1, True
            if c == "\\":
                length = self._decode_escape(chunk[i : i + 6], i)
                if not length:
                    self._escape = chunk[i:]
                    return n, False
                i += length
            else:
                self._state = _FAILED
                raise self._error(f"unescaped control character {c!r} in a string", i)
        return n, False

    def _decode_escape(self, text: str, i: int) -> int:
        """Decode the escape that starts `text`; return its length, or 0 if `text` is only its beginning."""
        if len(text) < 2:
            return 0
        kind = text[1]
        if kind != "u":
            char = _SIMPLE_ESCAPES.get(kind)
            if char is None:
                self._state = _FAILED
                raise self._error(f"invalid escape '\\{kind}'", i)
            if self._high is not None:
                self._lone_surrogate()
            self._parts.append(char)
            return 2
        if len(text) < 6:
            return 0
        digits = text[2:6]
        if not _HEX4(digits):
            self._state = _FAILED
            raise self._error(f"invalid unicode escape '\\u{digits}'", i)
        code = int(digits, 16)
        if 0xD800 <= code < 0xDC00:
            if self._high is not None:
                self._lone_surrogate()
            self._high = code
        elif 0xDC00 <= code < 0xE000:
            if self._high is None:
                self._parts.append(_REPLACEMENT)
            else:
                self._parts.append(chr(0x10000 + ((self._high - 0xD800) << 10) + (code - 0xDC00)))
                self._high = None
        else:
            if self._high is not None:
                self._lone_surrogate()
            self._parts.append(chr(code))
        return 6

    def _lone_surrogate(self) -> None:
        """A high surrogate not followed by its low half becomes U+FFFD."""
        self._parts.append(_REPLACEMENT)
        self._high = None

    def _parse_number(self, i: int) -> int | float:
        """Convert the finished number token, which ends just before chunk index `i`."""
        text = self._number
        start = i - len(text)
        try:
            if _INTEGER(text):
                return int(text)
            if _NUMBER(text):
                return float(text)
        except ValueError:  # more digits than int() accepts
            self._state = _FAILED
            raise self._error("number too long", start) from None
        self._state = _FAILED
        raise self._error(f"invalid number {text!r}", start)

    def _error(self, message: str, i: int) -> JSONStreamError:
        return JSONStreamError(message, self._offset + i)

"""Reading a model's XML answer (XML mode) into the JSON value its output schema describes.

One reader serves the whole answer (the schema check of every attempt) and a stream (its
`json_path` deltas), so what a stream shows is what the check accepts. It is fed text in pieces,
keeps its state between them, and reports `(json_path, delta)` events shaped like those of
`taskgate.api.v2.json_paths.JsonPathStream`: a text field's characters as they arrive (an empty
one once, as ""), other scalars once complete, `{}` and `[]` for empty containers.

The parser is the standard library's expat, driven directly, and refuses what could make it read
or expand anything: a DOCTYPE (so no entity can be declared, which stops "billion laughs" and
external entities such as `SYSTEM "file:///etc/passwd"`) is an error, as is any entity declaration
or external reference, and parameter entities are never parsed. Only XML's five predefined
entities and character references are read. The answer is bounded like a JSON one: at most
`MAX_XML_DEPTH` elements deep and `MAX_XML_CHARS` characters long.

Text before `<response>` (a sentence, a code fence, an XML declaration) and after `</response>`
is not read, as the outermost JSON value of a prompted answer is taken. Markup inside a text field
(`<b>bold</b>`) is kept as text; a number or boolean that does not read as one is kept as its text,
so that the schema check names it with its path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn
from xml.parsers import expat

import orjson

from taskgate.engine.xml_shapes import ROOT, Shape, attribute_text, enum_value
from taskgate.json_text import EXACT_INTEGERS, MAX_JSON_DEPTH, depth_over

MAX_XML_DEPTH = MAX_JSON_DEPTH  # elements, <response> being level 1: a JSON value nests no deeper
# Beyond any model's answer (128k tokens is about 500 KB). Reading takes 0.13 ms per KB for a list
# of numbers and up to 0.35 for an element every four characters (bench/xml_mode.py), so the
# longest answer costs about 180 ms at the worst: the engine reads long answers in a worker thread.
MAX_XML_CHARS = 512 * 1024

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)").fullmatch
_KEY_SPECIAL = re.compile(r"[\\.\[]")
_OPEN_ROOT = "<" + ROOT
_ANY = Shape()
_HINT = "; write & as &amp; and < as &lt; in text, or put the text inside <![CDATA[ and ]]>"

PathEvent = tuple[str, Any]


class XmlAnswerError(ValueError):
    """The answer is not the XML asked for; the message says why, for the model to read."""


def parse_xml_answer(text: str, shape: Shape) -> tuple[Any, str | None]:
    """(value, None) when `text` holds the `<response>` element, else (None, why not), as
    `structured.parse_json_answer` answers for JSON."""
    reader = XmlAnswerReader(shape, events=False)
    try:
        reader.feed(text)
        reader.finish()
    except XmlAnswerError as exc:
        return None, str(exc)
    return reader.value, None


def member_path(parent: str, key: str) -> str:
    """A member's json_path, its key escaped as JsonPathStream escapes it."""
    return parent + "." + (_KEY_SPECIAL.sub(r"\\\g<0>", key) if _KEY_SPECIAL.search(key) else key)


@dataclass(slots=True)
class _Text:
    """A text field's characters as they may go out: without the whitespace at its start, and
    with whitespace held back until more text follows it (at the end it is dropped)."""

    parts: list[str] = field(default_factory=list)  # what went out
    held: list[str] = field(default_factory=list)  # pieces, so that a long run of them costs no copies
    started: bool = False

    def add(self, text: str) -> str:
        if not self.started:
            text = text.lstrip()
            if not text:
                return ""
            self.started = True
        body = text.rstrip()
        if not body:
            self.held.append(text)
            return ""
        out = self.release() + body
        if len(body) < len(text):
            self.held.append(text[len(body):])
        self.parts.append(out)
        return out

    def release(self) -> str:
        """The whitespace held back, now that text follows it."""
        held = "".join(self.held) if self.held else ""
        self.held.clear()
        return held


@dataclass(slots=True)
class _Frame:
    """An open element. `mode`: object, array, string, markup (an element inside a text field),
    or scalar (any other kind: its text is read when it closes)."""

    name: str
    shape: Shape
    path: str
    mode: str
    members: dict[str, Any] | None = None
    entries: list[Any] | None = None
    text: _Text | None = None  # string and markup: the text field's (shared with its markup)
    chars: list[str] = field(default_factory=list)  # scalar: its text
    open_tag: str | None = None  # markup: a start tag not yet written (it may turn out empty)


_MODES = {"object": "object", "array": "array", "string": "string"}


class XmlAnswerReader:
    """Feed an XML answer in pieces; `feed` and `finish` return the events each completes (none
    with `events=False`), raising XmlAnswerError once the answer cannot be what was asked for.
    After `finish`, `value` is the answer as JSON."""

    def __init__(self, shape: Shape, *, events: bool = True) -> None:
        self._shape = shape
        self._events_on = events
        self._events: list[PathEvent] = []
        self._stack: list[_Frame] = []
        self._seen: list[set[str]] = []  # per open object: the members it has
        self._looking = ""  # text kept while `<response` is not found yet (its start may be cut)
        self._found = False
        self._chars = 0
        self._value: Any = None
        self.done = False
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_entity
        parser.UnparsedEntityDeclHandler = self._refuse_entity
        parser.ExternalEntityRefHandler = self._refuse_entity
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        self._parser = parser

    @property
    def value(self) -> Any:
        return self._value

    def feed(self, text: str) -> list[PathEvent]:
        if self.done:
            return []
        self._chars += len(text)
        if self._chars > MAX_XML_CHARS:
            raise XmlAnswerError(f"the answer is over {MAX_XML_CHARS} characters long")
        if not self._found:
            text = self._root_onwards(text)
            if not text:
                return []
        self._parse(text, final=False)
        return self._take_events()

    def finish(self) -> list[PathEvent]:
        """End of the answer: the events it completes, or XmlAnswerError when it is incomplete."""
        if not self.done:
            if not self._found:
                raise XmlAnswerError(f"the answer holds no <{ROOT}> element")
            if self._stack:
                raise XmlAnswerError(f"the answer ends before </{ROOT}>")
            self._parse("", final=True)  # `<response` and no more: the parser says what is wrong
            if not self.done:
                raise XmlAnswerError(f"the answer ends before </{ROOT}>")
        return self._take_events()

    # ---- text in

    def _root_onwards(self, text: str) -> str:
        """The text from `<response` on, once it has come; the rest is a preamble."""
        text = self._looking + text
        start = text.find(_OPEN_ROOT)
        if start < 0:
            self._looking = text[-(len(_OPEN_ROOT) - 1):]
            return ""
        self._found, self._looking = True, ""
        return text[start:]

    def _parse(self, text: str, final: bool) -> None:
        try:
            self._parser.Parse(text, final)
        except expat.ExpatError as exc:
            if self.done:  # text after </response>: not part of the answer
                return
            self.done = True  # no more reading: the parser cannot go on after an error
            raise XmlAnswerError(f"the answer is not well-formed XML ({exc}){_HINT}") from None

    def _take_events(self) -> list[PathEvent]:
        """The events since the last call; a text field's fragments in a row go as one delta, as
        JsonPathStream sends one per piece fed."""
        events, self._events = self._events, []
        if len(events) < 2:
            return events
        merged: list[PathEvent] = []
        run: list[str] = []
        for index, (path, delta) in enumerate(events):
            if isinstance(delta, str):
                run.append(delta)
                following = events[index + 1] if index + 1 < len(events) else None
                if following is not None and following[0] == path and isinstance(following[1], str):
                    continue
                delta = "".join(run)
                run.clear()
            merged.append((path, delta))
        return merged

    # ---- expat's handlers

    @staticmethod
    def _refuse_doctype(*_: Any) -> NoReturn:
        raise XmlAnswerError("the answer may not have a DOCTYPE (no DTD, no entity declarations)")

    @staticmethod
    def _refuse_entity(*_: Any) -> NoReturn:
        raise XmlAnswerError("the answer may not declare or refer to external entities")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        stack = self._stack
        if len(stack) >= MAX_XML_DEPTH:
            self._fail(f"the answer nests elements more than {MAX_XML_DEPTH} levels deep")
        if not stack:
            if name != ROOT:
                self._fail(f"the answer's element is <{name}>, not <{ROOT}>")
            stack.append(self._frame(name, self._shape, ROOT))
            return
        parent = stack[-1]
        mode = parent.mode
        if mode == "object":
            seen = self._seen[-1]
            if name in seen:
                self._fail(f"<{name}> appears twice in {self._where(parent)}")
            seen.add(name)
            shape = parent.shape.properties.get(name) or parent.shape.extra or _ANY
            stack.append(self._frame(name, shape, member_path(parent.path, name)))
        elif mode == "array":
            entries = parent.entries
            index = len(entries) if entries is not None else 0
            prefix = parent.shape.prefix
            shape = prefix[index] if index < len(prefix) else parent.shape.items or _ANY
            stack.append(self._frame(name, shape, f"{parent.path}[{index}]"))
        elif mode in ("string", "markup"):
            self._write_open_tag(parent)
            tag = "<" + name + "".join(attribute_text(key, value) for key, value in attributes.items())
            stack.append(_Frame(name, parent.shape, parent.path, "markup", text=parent.text, open_tag=tag))
        else:
            self._fail(f"{self._where(parent)} holds {_kind_words(parent.shape)}, not elements")

    def _frame(self, name: str, shape: Shape, path: str) -> _Frame:
        mode = _MODES.get(shape.kind, "scalar")
        frame = _Frame(name, shape, path, mode)
        if mode == "object":
            frame.members = {}
            self._seen.append(set())
        elif mode == "array":
            frame.entries = []
        elif mode == "string":
            frame.text = _Text()
        return frame

    def _characters(self, data: str) -> None:
        frame = self._stack[-1] if self._stack else None
        if frame is None:
            return
        mode = frame.mode
        if mode in ("string", "markup"):
            self._write_open_tag(frame)
            self._emit_text(frame, data)
        elif mode == "scalar":
            frame.chars.append(data)
        elif data.strip():
            self._fail(f"{self._where(frame)} holds text where {'entries' if mode == 'array' else 'fields'} "
                       "are expected as elements")

    def _end(self, name: str) -> None:
        frame = self._stack.pop()
        mode = frame.mode
        if mode == "markup":
            if frame.open_tag is not None:
                self._emit_markup(frame, frame.open_tag + "/>")
            else:
                self._emit_markup(frame, f"</{name}>")
            return
        value = self._value_of(frame)
        if not self._stack:
            self._value, self.done = value, True
            return
        parent = self._stack[-1]
        if parent.members is not None:
            parent.members[name] = value
        elif parent.entries is not None:
            parent.entries.append(value)

    # ---- values

    def _value_of(self, frame: _Frame) -> Any:
        shape, path, events = frame.shape, frame.path, self._events_on
        if frame.mode == "object":
            self._seen.pop()
            members = frame.members
            if not members and shape.nullable:
                return self._event(path, None)
            if not members and events:
                self._events.append((path, {}))
            return members
        if frame.mode == "array":
            if not frame.entries and shape.nullable:
                return self._event(path, None)
            if not frame.entries and events:
                self._events.append((path, []))
            return frame.entries
        if frame.mode == "string":
            text = frame.text
            assert text is not None
            if not text.parts:
                return self._event(path, None if shape.nullable else "")
            return "".join(text.parts)
        value = _scalar("".join(frame.chars).strip(), shape)
        if events:
            self._events.extend(value_events(path, value))
        return value

    def _event(self, path: str, value: Any) -> Any:
        if self._events_on:
            self._events.append((path, value))
        return value

    def _write_open_tag(self, frame: _Frame) -> None:
        """A markup element's start tag, once what follows shows it is not empty."""
        if frame.open_tag is not None:
            tag, frame.open_tag = frame.open_tag + ">", None
            self._emit_markup(frame, tag)

    def _emit_markup(self, frame: _Frame, markup: str) -> None:
        text = frame.text
        assert text is not None
        text.started = True
        out = text.release() + markup
        text.parts.append(out)
        self._text_event(frame.path, out)

    def _emit_text(self, frame: _Frame, data: str) -> None:
        assert frame.text is not None
        out = frame.text.add(data)
        if out:
            self._text_event(frame.path, out)

    def _text_event(self, path: str, out: str) -> None:
        if self._events_on:
            self._events.append((path, out))

    def _where(self, frame: _Frame) -> str:
        return f"<{frame.name}> (at {frame.path})"

    def _fail(self, message: str) -> NoReturn:
        self.done = True
        raise XmlAnswerError(message)


def _scalar(text: str, shape: Shape) -> Any:
    """A scalar element's text as the value its shape says; the text itself when it does not read as
    one (the schema check then says what is wrong, and where)."""
    kind = shape.kind
    if not text and shape.nullable:
        return None
    if kind == "enum":
        return enum_value(shape, text)
    if kind in ("integer", "number"):
        if _INTEGER(text):
            number = int(text) if len(text) <= 21 else None  # 21: a sign and 20 digits, as 2^64 - 1
            return number if number is not None and number in EXACT_INTEGERS else text
        if _NUMBER(text):
            real = float(text)
            return real if math.isfinite(real) else text
        return text
    if kind == "boolean":
        lowered = text.lower()
        return True if lowered == "true" else False if lowered == "false" else text
    if kind == "null":
        return None if text in ("", "null") else text
    if not text:
        return ""
    if depth_over(text.encode()) is not None:
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def value_events(path: str, value: Any) -> list[PathEvent]:
    """The events JsonPathStream gives for `value` written out at `path`."""
    if isinstance(value, dict):
        if not value:
            return [(path, {})]
        return [event for key, member in value.items() for event in value_events(member_path(path, str(key)), member)]
    if isinstance(value, list):
        if not value:
            return [(path, [])]
        return [event for index, entry in enumerate(value) for event in value_events(f"{path}[{index}]", entry)]
    return [(path, value)]


def _kind_words(shape: Shape) -> str:
    return {"enum": "one of its listed values", "json": "JSON text", "null": "nothing (null)"}.get(
        shape.kind, f"a {shape.kind}")

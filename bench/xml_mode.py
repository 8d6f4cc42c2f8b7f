"""XML mode's reading cost per KB of answer: parse and convert to JSON, whole and streamed.

A benchmark, not a test: it prints one line per answer and way of reading it. Three answers of the
same schema kind, each written as XML (by `to_xml`, as a model following the instructions writes
it) and repeated to about `--kb` KB: `prose`, an object with multi-paragraph text fields (what XML
mode is for); `records`, a list of small objects of five typed fields (an element every 15 or so
characters); and `numbers`, a list of integers (an element every 12 characters: the most work per
KB a schema can ask of the reader). Each is read `--rounds` times:

* `whole`: `parse_xml_answer`, what every attempt's schema check does;
* `stream`: `XmlAnswerReader` fed 16-character pieces with its json_path events, what a v2 stream adds;
* `json`: for scale, the same value's JSON text through `parse_json_answer` (orjson) and through
  `JsonPathStream` in 16-character pieces (the JSON stream's events).

The median and the best round's CPU time are reported, per KB of the answer's text (of the XML, or
of the JSON for the `json` rows). It also reads the `numbers` answer at the reader's size limit
(`MAX_XML_CHARS`) once, and a list of empty elements (`<i/>`, an element every four characters,
the worst case) at that limit: the longest a single answer can take.

Run from a checkout: `python -m bench.xml_mode [--kb 64] [--rounds 7]`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from taskgate.api.v2.json_paths import JsonPathStream
from taskgate.engine.structured import parse_json_answer
from taskgate.engine.xml_answer import MAX_XML_CHARS, XmlAnswerReader, parse_xml_answer
from taskgate.engine.xml_shapes import Shape, shape_of, to_xml

PIECE = 16  # characters per streamed piece: about what a model's token deltas hold, a few together
PARAGRAPH = ("The committee reviewed the proposal in detail & noted that the budget of 14,500 EUR covers "
             "the first two phases. It asked for a <b>clearer</b> plan for phase three before approving it. ")
SCHEMAS: dict[str, dict[str, Any]] = {
    "prose": {"type": "object", "properties": {
        "sections": {"type": "array", "items": {"type": "object", "properties": {
            "title": {"type": "string"}, "body": {"type": "string"}, "score": {"type": "number"}}}}}},
    "records": {"type": "object", "properties": {
        "people": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "age": {"type": "integer"}, "active": {"type": "boolean"},
            "role": {"enum": ["dev", "ops", "pm"]}, "note": {"type": ["string", "null"]}}}}}},
    "numbers": {"type": "object", "properties": {"values": {"type": "array", "items": {"type": "integer"}}}},
}


def answer(kind: str, kb: int) -> Any:
    """A value of `kind`'s schema whose XML is about `kb` KB."""
    size = kb * 1024
    if kind == "prose":
        section = {"title": "Review of the proposal", "body": (PARAGRAPH * 4).strip() + "\n\n" + PARAGRAPH.strip(),
                   "score": 0.75}
        return {"sections": [section] * max(1, size // len(to_xml(section, _item(kind), "item")))}
    if kind == "records":
        row = {"name": "Ann Lee", "age": 41, "active": True, "role": "dev", "note": None}
        return {"people": [dict(row, age=index % 90) for index in range(size // len(to_xml(row, _item(kind), "item")))]}
    return {"values": [index % 1000 for index in range(size // len("<item>999</item>"))]}


def _item(kind: str) -> Shape:
    shape = shape_of(SCHEMAS[kind])
    array = next(iter(shape.properties.values()))
    assert array.items is not None
    return array.items


def streamed_xml(text: str, shape: Shape) -> int:
    reader = XmlAnswerReader(shape)
    events = sum(len(reader.feed(text[i:i + PIECE])) for i in range(0, len(text), PIECE))
    return events + len(reader.finish())


def streamed_json(text: str) -> int:
    stream = JsonPathStream()
    events = sum(len(stream.feed(text[i:i + PIECE])) for i in range(0, len(text), PIECE))
    return events + len(stream.finish())


def ms_per_kb(read: Callable[[], object], chars: int, rounds: int) -> tuple[float, float]:
    """(median, best) CPU ms per KB of `chars` characters over `rounds` reads."""
    spent: list[float] = []
    for _ in range(rounds):
        started = time.process_time()
        read()
        spent.append((time.process_time() - started) * 1000 / (chars / 1024))
    return statistics.median(spent), min(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for kind, schema in SCHEMAS.items():
        shape, value = shape_of(schema), answer(kind, args.kb)
        xml, json = to_xml(value, shape), orjson.dumps(value).decode()
        assert parse_xml_answer(xml, shape) == (value, None) and parse_json_answer(json) == (value, None)
        rows: dict[str, tuple[Callable[[], object], int]] = {
            "whole": (functools.partial(parse_xml_answer, xml, shape), len(xml)),
            "stream": (functools.partial(streamed_xml, xml, shape), len(xml)),
            "json whole": (functools.partial(parse_json_answer, json), len(json)),
            "json stream": (functools.partial(streamed_json, json), len(json)),
        }
        for label, (read, chars) in rows.items():
            median, best = ms_per_kb(read, chars, args.rounds)
            print(f"{kind:8} {label:12} {median:.3f} CPU ms/KB median, {best:.3f} best  ({chars / 1024:.0f} KB)")
    limit = MAX_XML_CHARS // 1024
    numbers = shape_of(SCHEMAS["numbers"])
    empties = shape_of({"type": "object", "properties": {"values": {"type": "array"}}})
    for label, shape, xml in (
        ("numbers", numbers, to_xml(answer("numbers", limit - 1), numbers)),
        ("empty elements", empties, f"<response><values>{'<i/>' * ((MAX_XML_CHARS - 40) // 4)}</values></response>"),
    ):
        started = time.process_time()
        assert parse_xml_answer(xml, shape)[1] is None
        print(f"{label} at the size limit ({len(xml) / 1024:.0f} KB): {(time.process_time() - started) * 1000:.0f} "
              "CPU ms to read whole")


if __name__ == "__main__":
    main()

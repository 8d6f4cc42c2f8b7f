"""XML mode's reading of answers: shapes from schemas, XML to JSON by the schema's types, the
stream's json_path events, and hostile XML (entities, DTDs, depth, size) refused without expansion."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from taskgate.api.v2.json_paths import JsonPathStream
from taskgate.engine.schemas import compile_schema
from taskgate.engine.structured import check_answer
from taskgate.engine.xml_answer import MAX_XML_CHARS, MAX_XML_DEPTH, XmlAnswerReader, parse_xml_answer
from taskgate.engine.xml_shapes import shape_of, to_xml, xml_instructions, xml_shape
from taskgate.errors import BadRequestError

TYPES = {
    "type": "object",
    "properties": {
        "thoughts": {"type": "string", "description": "Reason first"},
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "ok": {"type": "boolean"},
        "nothing": {"type": "null"},
        "mood": {"enum": ["happy", "sad", 3]},
        "note": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "owner": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                  "required": ["name"]},
        "people": {"type": "array", "items": {"$ref": "#/$defs/Person"}},
        "free": {},
    },
    "required": ["thoughts", "count"],
    "$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string"},
                                                          "friend": {"anyOf": [{"$ref": "#/$defs/Person"},
                                                                               {"type": "null"}]}}}},
}
SHAPE = shape_of(TYPES)


def read(xml: str, schema: dict[str, Any] = TYPES) -> Any:
    value, problem = parse_xml_answer(xml, shape_of(schema))
    assert problem is None, problem
    return value


def problem_of(xml: str, schema: dict[str, Any] = TYPES) -> str:
    value, problem = parse_xml_answer(xml, shape_of(schema))
    assert problem is not None and value is None
    return problem


def test_every_type_is_read_by_the_schema() -> None:
    xml = """<response>
      <thoughts>
        First this.

        Then that.
      </thoughts>
      <count> 42 </count><ratio>-3.5e2</ratio><ok>true</ok><nothing/><mood>3</mood><note></note>
      <tags><item>a</item><item> b </item></tags>
      <owner><name>Ann</name><age>7</age></owner>
      <people><item><name>Bo</name><friend><name>Cy</name><friend/></friend></item></people>
      <free>{"a": [1, null, "x"]}</free>
    </response>"""
    assert read(xml) == {
        "thoughts": "First this.\n\n        Then that.", "count": 42, "ratio": -350.0, "ok": True, "nothing": None,
        "mood": 3, "note": None, "tags": ["a", "b"], "owner": {"name": "Ann", "age": 7},
        "people": [{"name": "Bo", "friend": {"name": "Cy", "friend": None}}], "free": {"a": [1, None, "x"]},
    }


def test_the_answers_element_order_is_kept() -> None:
    value = read("<response><count>1</count><thoughts>t</thoughts></response>")
    assert list(value) == ["count", "thoughts"]


def test_optional_fields_left_out_are_absent_and_empty_containers_are_empty() -> None:
    assert read("<response><thoughts/><count>0</count><tags/><owner></owner></response>") == {
        "thoughts": "", "count": 0, "tags": [], "owner": {}}


@pytest.mark.parametrize(("xml", "expected"), [
    ("<response>a &lt; b &amp;&amp; c &gt; d &#x263A;</response>", "a < b && c > d \u263a"),
    ("<response><![CDATA[<not> & an <element/>]]></response>", "<not> & an <element/>"),
    ("<response>Use <b class=\"x\">bold</b> and <br/> here</response>", 'Use <b class="x">bold</b> and <br/> here'),
    ("<response>  <![CDATA[  kept inside  ]]>  </response>", "kept inside"),
    ("<response>x<!-- a comment -->y</response>", "xy"),
])
def test_text_with_markup_entities_and_cdata(xml: str, expected: str) -> None:
    assert read(xml, {"type": "string"}) == expected


def test_a_value_that_does_not_read_as_its_type_is_kept_for_the_schema_check_to_name() -> None:
    compiled = compile_schema(TYPES, "output_schema")
    value, errors = check_answer("<response><thoughts>t</thoughts><count>many</count><ok>yes</ok></response>",
                                 compiled.validator, lambda text: parse_xml_answer(text, SHAPE))
    assert value is None and len(errors) == 2
    assert any("many" in error and "integer" in error for error in errors)
    assert any("yes" in error and "boolean" in error for error in errors)


def test_a_missing_required_element_and_an_extra_one_fail_the_schema_check() -> None:
    schema = {**TYPES, "additionalProperties": False}
    compiled = compile_schema(schema, "output_schema")
    value, errors = check_answer("<response><thoughts>t</thoughts><bogus>1</bogus></response>", compiled.validator,
                                 lambda text: parse_xml_answer(text, shape_of(schema)))
    assert value is None
    assert any("count" in error for error in errors) and any("bogus" in error for error in errors)


def test_an_extra_element_is_read_as_json_or_text() -> None:
    assert read("<response><thoughts>t</thoughts><count>1</count><more>[1]</more><word>hi</word></response>") == {
        "thoughts": "t", "count": 1, "more": [1], "word": "hi"}


@pytest.mark.parametrize(("xml", "needle"), [
    ("no xml at all", "no <response>"),
    ("<response><thoughts>t</thoughts>", "ends before </response>"),
    ("<response><count>1</count><count>2</count></response>", "appears twice"),
    ("<response><count><b>1</b></count></response>", "not elements"),
    ("<response>loose text<count>1</count></response>", "holds text"),
    ("<response><tags>a, b</tags></response>", "holds text"),
    ("<response><thoughts>a < b</thoughts></response>", "not well-formed"),
    ("<response><thoughts>AT&T</thoughts></response>", "not well-formed"),
    ("<responses></responses>", "not <response>"),
])
def test_malformed_answers_are_misfits_with_a_reason(xml: str, needle: str) -> None:
    assert needle in problem_of(xml)


def test_numbers_beyond_what_json_can_carry_stay_text() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "number"}}}
    assert read(f"<response><a>{'9' * 25}</a><b>1e999</b></response>", schema) == {"a": "9" * 25, "b": "1e999"}


def test_text_around_the_response_element_is_not_read() -> None:
    assert read("Here it is:\n```xml\n<?xml version='1.0'?>\n<response>5</response>\n```\nDone.",
                {"type": "integer"}) == 5


# ---- hostile XML: nothing is expanded, nothing is read from outside


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE response [<!ENTITY lol0 "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
                  + "]>")


@pytest.mark.parametrize("xml", [
    BILLION_LAUGHS + "<response>&lol9;</response>",
    '<!DOCTYPE response [<!ENTITY x SYSTEM "file:///etc/passwd">]><response>&x;</response>',
    '<response><!DOCTYPE response [<!ENTITY x SYSTEM "file:///etc/passwd">]>&x;</response>',
    '<response>&x;</response>',
    '<response><!ENTITY x "y"></response>',
])
def test_entities_are_never_expanded_nor_files_read(xml: str) -> None:
    problem = problem_of(xml, {"type": "string"})
    assert "root:" not in problem and "lol" * 3 not in problem


def test_a_doctype_inside_the_answer_is_not_well_formed() -> None:
    reader = XmlAnswerReader(shape_of({"type": "string"}))
    reader.feed("<response>")
    with pytest.raises(ValueError, match="not well-formed"):
        reader.feed('<!DOCTYPE x [<!ENTITY a SYSTEM "file:///etc/passwd">]>')


def test_an_entity_declaration_is_refused_by_its_handler() -> None:
    reader = XmlAnswerReader(shape_of({"type": "string"}))
    reader._found = True  # as if the preamble were over: the declaration reaches the parser first
    with pytest.raises(ValueError, match="DOCTYPE"):
        reader.feed('<!DOCTYPE response [<!ENTITY x SYSTEM "file:///etc/passwd">]><response>&x;</response>')


def test_deep_nesting_is_bounded() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#"}}}
    ok = "<response>" + "<a>" * (MAX_XML_DEPTH - 1) + "</a>" * (MAX_XML_DEPTH - 1) + "</response>"
    assert read(ok, schema) is not None
    deep = "<response>" + "<a>" * MAX_XML_DEPTH + "</a>" * MAX_XML_DEPTH + "</response>"
    assert "levels deep" in problem_of(deep, schema)
    assert "levels deep" in problem_of("<response>" + "<b>" * 100_000 + "x", {"type": "string"})


def test_huge_answers_are_bounded() -> None:
    huge = "<response>" + "x" * MAX_XML_CHARS + "</response>"
    assert "characters long" in problem_of(huge, {"type": "string"})


def test_json_inside_an_element_is_bounded_like_json() -> None:
    deep = "[" * 200 + "]" * 200
    assert read(f"<response>{deep}</response>", {}) == deep  # kept as text: the schema check decides


# ---- the stream: the same events JsonPathStream gives for the same value


PARITY_VALUE = {
    "thoughts": "Line one & <two>\nthree", "count": 42, "ratio": 2.5, "ok": False, "nothing": None, "mood": "sad",
    "note": "n", "tags": [], "owner": {"name": "Ann"}, "people": [{"name": "Bo", "friend": None}, {}],
    "free": {"k": [1, "v", {}]},
}


def xml_events(text: str, step: int) -> tuple[list[tuple[str, Any]], Any]:
    reader = XmlAnswerReader(SHAPE)
    events = [event for i in range(0, len(text), step) for event in reader.feed(text[i:i + step])]
    return events + reader.finish(), reader.value


def glued(events: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, delta in events:
        out[path] = out.get(path, "") + delta if isinstance(delta, str) else delta
    return out


@pytest.mark.parametrize("step", [1, 3, 64, 100_000])
def test_stream_events_match_the_json_streams_for_the_same_value(step: int) -> None:
    xml = to_xml(PARITY_VALUE, SHAPE)
    events, value = xml_events(xml, step)
    assert value == PARITY_VALUE
    json_stream = JsonPathStream()
    json_events = json_stream.feed(orjson.dumps(PARITY_VALUE).decode()) + json_stream.finish()
    assert glued(events) == glued(json_events)
    assert [path for path, _ in events if not isinstance(_, str)] == [
        path for path, _ in json_events if not isinstance(_, str)]


def test_stream_sends_text_as_it_comes_and_holds_only_trailing_whitespace() -> None:
    reader = XmlAnswerReader(shape_of({"type": "object", "properties": {"t": {"type": "string"}}}))
    assert reader.feed("Sure: <resp") == []
    assert reader.feed("onse><t>\n  Hello ") == [("response.t", "Hello")]
    assert reader.feed(" world\n") == [("response.t", "  world")]
    assert reader.feed("</t></response>\n```") == []
    assert reader.finish() == [] and reader.value == {"t": "Hello  world"}


def test_stream_of_a_failed_answer_raises_once_it_cannot_be_right() -> None:
    reader = XmlAnswerReader(SHAPE)
    reader.feed("<response><count>1</count>")
    with pytest.raises(ValueError, match="appears twice"):
        reader.feed("<count>2</count>")
    assert reader.feed("<more/>") == []


# ---- shapes, instructions and writing XML back


def test_instructions_show_the_schema_order_types_and_descriptions() -> None:
    text = xml_instructions(SHAPE)
    order = [text.index(f"<{name}>") for name in ("thoughts", "count", "ratio", "ok", "mood", "tags", "owner")]
    assert order == sorted(order)
    assert "<!-- Reason first -->" in text and "(one of: happy | sad | 3)" in text and "<item>" in text
    assert "(integer)" in text and "(true or false)" in text and "(JSON)" in text
    assert "same shape as the enclosing <friend>" in text
    assert "JSON Schema" not in text


def test_property_names_that_cannot_be_elements_are_a_400() -> None:
    for name in ("some key", "1st", "a:b", "xmlThing", "<x>"):
        with pytest.raises(BadRequestError, match="element names"):
            shape_of({"type": "object", "properties": {name: {"type": "string"}}})


def test_xml_mode_without_an_output_schema_is_a_400() -> None:
    with pytest.raises(BadRequestError, match="needs an output_schema"):
        xml_shape(None)


def test_written_xml_reads_back_the_same_value() -> None:
    assert read(to_xml(PARITY_VALUE, SHAPE)) == PARITY_VALUE
    with pytest.raises(ValueError):
        to_xml({"bad key": 1}, SHAPE)


def test_optional_and_nullable_unions_and_allof() -> None:
    schema = {"type": "object", "properties": {
        "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}},
                             {"properties": {"b": {"type": "boolean"}}}]},
        "fixed": {"const": "x"},
    }}
    assert read("<response><maybe/><either>\"7\"</either><merged><a>1</a><b>false</b></merged>"
                "<fixed>x</fixed></response>", schema) == {"maybe": None, "either": "7",
                                                           "merged": {"a": 1, "b": False}, "fixed": "x"}


def test_a_ref_beside_its_own_properties_leaves_the_definition_as_it_is() -> None:
    schema = {"type": "object", "properties": {
        "base": {"$ref": "#/$defs/B"},
        "more": {"$ref": "#/$defs/B", "properties": {"extra": {"type": "integer"}}},
    }, "$defs": {"B": {"type": "object", "properties": {"b": {"type": "boolean"}}}}}
    shape = shape_of(schema)
    assert list(shape.properties["base"].properties) == ["b"]
    assert list(shape.properties["more"].properties) == ["b", "extra"]


def test_two_property_orders_are_two_shapes() -> None:
    forward = {"type": "object", "properties": {"thoughts": {"type": "string"}, "answer": {"type": "string"}}}
    backward = {"type": "object", "properties": {"answer": {"type": "string"}, "thoughts": {"type": "string"}}}
    assert list(shape_of(forward).properties) == ["thoughts", "answer"]
    assert list(shape_of(backward).properties) == ["answer", "thoughts"]
    text = xml_instructions(shape_of(backward))
    assert text.index("<answer>") < text.index("<thoughts>")


def test_whitespace_in_many_pieces_is_held_until_text_follows() -> None:
    reader = XmlAnswerReader(shape_of({"type": "string"}))
    reader.feed("<response>a")
    events = [event for _ in range(10_000) for event in reader.feed(" \n")]
    assert events == []
    assert reader.feed("b</response>") == [("response", " \n" * 10_000 + "b")]
    assert reader.finish() == [] and reader.value == "a" + " \n" * 10_000 + "b"


def test_one_piece_with_much_markup_is_one_delta() -> None:
    reader = XmlAnswerReader(shape_of({"type": "string"}))
    assert reader.feed("<response>" + "a<b/>" * 1000 + "</response>") == [("response", "a<b/>" * 1000)]


def test_a_definition_used_in_many_places_is_written_once() -> None:
    """Each of 30 definitions using the next twice: written out at each use, the template would
    double with each level (gigabytes); each shape is written once and pointed back to after."""
    defs = {f"L{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/L{i + 1}"},
                                                        "b": {"$ref": f"#/$defs/L{i + 1}"}}} for i in range(30)}
    defs["L30"] = {"type": "object", "properties": {"leaf": {"type": "string"}}}
    schema = {"type": "object", "properties": {"x": {"$ref": "#/$defs/L0"}}, "$defs": defs}
    instructions = xml_instructions(xml_shape(schema))
    assert len(instructions) < 20_000
    assert "<b>(the same shape as the <a> above)</b>" in instructions and "<leaf>(text)</leaf>" in instructions

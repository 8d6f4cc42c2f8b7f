"""`beta.invocation.xml_mode.enabled` end to end: the upstream is asked for XML (no JSON mode), the
XML answer comes back as `json_payload`, misfits and hostile XML are asked again, streams give
json_path deltas, and stored functions keep the setting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskgate.engine.xml_answer import MAX_XML_CHARS
from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post, sse_events

XML_ON = {"beta.invocation.xml_mode.enabled": True}
SCHEMA = {
    "type": "object",
    "properties": {
        "thoughts": {"type": "string"},
        "answer": {"type": "integer"},
        "people": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "active": {"type": "boolean"}}, "required": ["name"]}},
    },
    "required": ["thoughts", "answer", "people"],
}
XML_ANSWER = """<response>
  <thoughts>
    Two people, one of them "active".
    Counted: 1 &amp; 1.
  </thoughts>
  <answer>2</answer>
  <people>
    <item><name>Ann &lt;A&gt;</name><active>true</active></item>
    <item><name><![CDATA[Bo & <co>]]></name></item>
  </people>
</response>"""
PAYLOAD = {"thoughts": 'Two people, one of them "active".\n    Counted: 1 & 1.', "answer": 2,
           "people": [{"name": "Ann <A>", "active": True}, {"name": "Bo & <co>"}]}
PASSWD_ENTITY = '<!DOCTYPE response [<!ENTITY x SYSTEM "file:///etc/passwd">]><response><thoughts>&x;</thoughts>'
LAUGHS = ('<!DOCTYPE response [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
          + ']><response><thoughts>&i;</thoughts><answer>1</answer><people/></response>')


def call(server: ServerProcess, **fields: Any) -> Reply:
    body = {"name": "xml-task", "instructions": "Count the people.", "input": "Ann and Bo",
            "output_schema": SCHEMA, "model": "openai/gpt-4o-mini", "configuration": XML_ON, **fields}
    return post(f"{server.url}/v2/call", body)


def stream(server: ServerProcess, path: str = "/v2/call/stream", **fields: Any) -> list[dict[str, Any]]:
    body = {"name": "xml-stream", "input": "x", "output_schema": SCHEMA, "model": "openai/gpt-4o-mini",
            "configuration": XML_ON, **fields}
    reply = post(f"{server.url}{path}", body)
    assert reply.status == 200, reply.body
    return [json.loads(event) for event in sse_events(reply)]


def glue(events: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for event in events:
        if event.get("chunk_type") == "json":
            path, delta = event["json_path"], event["delta"]
            out[path] = out.get(path, "") + delta if isinstance(delta, str) else delta
    return out


def span(server: ServerProcess, span_id: str) -> dict[str, Any]:
    return get(f"{server.url}/v3/spans/{span_id}").json()["data"]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_the_xml_answer_is_the_json_payload_and_no_json_mode_is_asked(server: ServerProcess, fake: FakeProvider,
                                                                    model: str) -> None:
    fake.script(model.split("/")[1], Behaviour(text="Here you go:\n```xml\n" + XML_ANSWER + "\n```"))
    reply = call(server, model=model)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["json_payload"] == PAYLOAD and list(body["json_payload"]) == ["thoughts", "answer", "people"]
    assert body["message"] is None
    sent = fake.requests[-1].json
    assert "response_format" not in sent and "tool_choice" not in sent and "tools" not in sent
    system = sent["system"] if "system" in sent else sent["messages"][0]["content"]
    system = system if isinstance(system, str) else " ".join(part["text"] for part in system)
    assert "Count the people." in system and "<response>" in system and "<item>" in system
    assert system.index("<thoughts>") < system.index("<answer>") < system.index("<people>")
    assert "JSON Schema" not in system
    assert span(server, body["span_id"])["output"] == PAYLOAD


def test_a_malformed_answer_is_asked_again_with_the_reason(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="<response><thoughts>a < b</thoughts>"),
                Behaviour(text="<response><thoughts>t</thoughts><answer>many</answer><people/></response>"),
                Behaviour(text=XML_ANSWER))
    body = call(server).json()
    assert body["json_payload"] == PAYLOAD
    assert len(fake.requests) == 3
    first_reask = fake.requests[1].json["messages"][-1]["content"]
    assert "not well-formed" in first_reask and "<response>" in first_reask
    shown = fake.requests[1].json["messages"][-2]
    assert shown == {"role": "assistant", "content": "<response><thoughts>a < b</thoughts>"}
    assert "many" in fake.requests[2].json["messages"][-1]["content"]
    assert span(server, body["span_id"])["attempts"] == 3


@pytest.mark.parametrize("hostile", [LAUGHS, PASSWD_ENTITY, "<response>" + "<x>" * 5000,
                                     "<response><thoughts>" + "x" * (MAX_XML_CHARS + 10) + "</thoughts></response>"])
def test_hostile_xml_is_a_misfit_never_expanded_nor_read(server: ServerProcess, fake: FakeProvider,
                                                         hostile: str) -> None:
    fake.script("gpt-4o-mini", Behaviour(text=hostile), Behaviour(text=hostile))
    reply = call(server, configuration={**XML_ON, "invocation.structured_generation.max_attempts": 2})
    assert reply.status == 400, reply.body[:500]
    body = reply.json()
    assert body["type"] == "StructuredGenerationError"
    assert "root:" not in reply.body.decode() and "aaaaaaaaaaaaaaaaaaaa" not in reply.body.decode()
    assert len(fake.requests) == 2
    reask = fake.requests[1].json["messages"][-1]["content"]
    assert "root:" not in reask


def test_a_hostile_answer_then_a_good_one_succeeds(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text=PASSWD_ENTITY), Behaviour(text=XML_ANSWER))
    assert call(server).json()["json_payload"] == PAYLOAD


def test_a_long_answer_is_read_whole(server: ServerProcess, fake: FakeProvider) -> None:
    """Over the engine's XML_THREAD_CHARS, read in a worker thread; under the reader's limit."""
    people = "".join(f"<item><name>person {i}</name><active>{str(i % 2 == 0).lower()}</active></item>"
                     for i in range(4000))
    text = "x" * 100_000
    fake.script("gpt-4o-mini", Behaviour(text=f"<response><thoughts>{text}</thoughts><answer>4000</answer>"
                                              f"<people>{people}</people></response>"))
    payload = call(server).json()["json_payload"]
    assert payload["thoughts"] == text and payload["answer"] == 4000 and len(payload["people"]) == 4000
    assert payload["people"][3999] == {"name": "person 3999", "active": False}


def test_xml_mode_without_an_output_schema_is_a_400(server: ServerProcess, fake: FakeProvider) -> None:
    reply = call(server, output_schema=None)
    assert reply.status == 400 and "needs an output_schema" in reply.json()["detail"]
    bad = call(server, configuration={"beta.invocation.xml_mode.enabled": "yes"})
    assert bad.status == 422 and "must be a boolean" in bad.json()["detail"]
    names = call(server, output_schema={"type": "object", "properties": {"a b": {"type": "string"}}})
    assert names.status == 400 and "'a b'" in names.json()["detail"]
    assert fake.requests == []


def test_xml_mode_off_is_json_as_before(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(json=PAYLOAD))
    body = call(server, configuration={"beta.invocation.xml_mode.enabled": False}).json()
    assert body["json_payload"] == PAYLOAD
    assert fake.requests[-1].json["response_format"]["type"] == "json_schema"


def test_examples_answer_in_xml_too(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text=XML_ANSWER))
    call(server, examples=[{"input": "Cy", "output": {"thoughts": "One.", "answer": 1, "people": [{"name": "Cy"}]}}])
    messages = fake.requests[-1].json["messages"]
    assert messages[2] == {"role": "assistant", "content": "<response><thoughts>One.</thoughts><answer>1</answer>"
                                                           "<people><item><name>Cy</name></item></people></response>"}


def test_the_stream_gives_json_path_deltas(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text=XML_ANSWER, event_delay_s=0.002))
    events = stream(server)
    assert list(events[0]) == ["span_id"]
    assert all(event["chunk_type"] == "json" for event in events[1:])
    assert glue(events) == {
        "response.thoughts": PAYLOAD["thoughts"], "response.answer": 2,
        "response.people[0].name": "Ann <A>", "response.people[0].active": True,
        "response.people[1].name": "Bo & <co>",
    }
    assert len([e for e in events if e.get("json_path") == "response.thoughts"]) > 1  # as the text came
    assert span(server, events[0]["span_id"])["output"] == PAYLOAD


def test_a_stream_whose_xml_breaks_ends_with_an_error_chunk(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="<response><thoughts>ok</thoughts><answer>2</answer></response>"))
    events = stream(server)
    assert events[-1]["chunk_type"] == "error" and events[-1]["error_type"] == "StructuredGenerationError"
    assert "people" in events[-1]["error_message"]


def test_a_cached_answer_replays_as_the_same_deltas(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text=XML_ANSWER))
    configuration = {**XML_ON, "invocation.cache.ttl": 60}
    first = stream(server, configuration=configuration, name="xml-cached")
    second = stream(server, configuration=configuration, name="xml-cached")
    assert len(fake.requests) == 1
    assert glue(second) == glue(first) and glue(first)["response.answer"] == 2


def test_a_stored_function_keeps_xml_mode(server: ServerProcess, fake: FakeProvider) -> None:
    made = post(f"{server.url}/v2/functions", {"name": "xml-stored", "instructions": "Count.",
                                               "output_schema": SCHEMA, "model": "openai/gpt-4o-mini",
                                               "configuration": XML_ON})
    assert made.status == 201, made.body
    assert made.json()["configuration"]["beta.invocation.xml_mode.enabled"] is True
    fake.script("gpt-4o-mini", Behaviour(text=XML_ANSWER), Behaviour(text=XML_ANSWER))
    function_id = made.json()["id"]
    called = post(f"{server.url}/v2/functions/{function_id}/call", {"input": "x"})
    assert called.status == 200 and called.json()["json_payload"] == PAYLOAD
    assert "response_format" not in fake.requests[-1].json
    reply = post(f"{server.url}/v2/functions/{function_id}/call/stream", {"input": "x"})
    events = [json.loads(event) for event in sse_events(reply)]
    assert glue(events)["response.answer"] == "2"  # a stored function's deltas are text (1.7.2 types them so)
    refused = post(f"{server.url}/v2/functions", {"name": "xml-no-schema", "instructions": "x",
                                                  "configuration": XML_ON})
    assert refused.status == 400 and "needs an output_schema" in refused.json()["detail"]


def test_functions_stored_without_xml_mode_show_it_off(server: ServerProcess, fake: FakeProvider) -> None:
    made = post(f"{server.url}/v2/functions", {"name": "xml-off", "instructions": "Count."}).json()
    assert made["configuration"]["beta.invocation.xml_mode.enabled"] is False

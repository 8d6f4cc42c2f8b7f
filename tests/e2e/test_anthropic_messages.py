"""`POST /v3/compat/v1/messages` over HTTP: the conversation each upstream receives, spans, auth, and
hostile bodies, each a 4xx in Anthropic's error envelope before any upstream is called."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from taskgate.api.anthropic.messages_request import parse_messages_request
from taskgate.errors import BadRequestError
from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post, sse_events

PATH = "/v3/compat/v1/messages"
OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5"
USER = [{"role": "user", "content": "hi"}]
TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": OPENAI, "max_tokens": 100, "messages": USER, **fields}


def messages(server: ServerProcess, payload: Any, **kw: Any) -> Reply:
    return post(server.url + PATH, payload, **kw)


def parse(payload: dict[str, Any], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_messages_request(payload, headers or {}, "p1")


# ---- parsing, without a server


def test_a_tool_loop_becomes_the_openai_conversation() -> None:
    call = parse(body(system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
                      tools=[TOOL], tool_choice={"type": "tool", "name": "get_weather",
                                                 "disable_parallel_tool_use": True},
                      messages=[*USER, {"role": "assistant", "content": [{"type": "text", "text": "Let me see."}, USE]},
                                {"role": "user", "content": [{"type": "text", "text": "and?"}, RESULT]}]))
    task = call.task
    assert task.messages == [
        {"role": "system", "content": "Be brief.\n\nBe kind."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Let me see.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},  # results first, as OpenAI needs
        {"role": "user", "content": "and?"},
    ]
    assert task.tools == [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL["input_schema"]}}]
    assert task.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert task.options == {"max_tokens": 100, "parallel_tool_calls": False}
    assert task.function_name == "messages" and task.span_type == "chat" and not task.record_function


def test_images_documents_errors_and_options_are_carried() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
    remote = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}
    call = parse(body(temperature=0.5, top_p=0.9, top_k=5, stop_sequences=["END"], metadata={"user_id": "u1"},
                      model="claude-haiku-4-5", messages=[
                          {"role": "user", "content": [image, remote, pdf]},
                          {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                                            USE]},
                          {"role": "user", "content": [{**RESULT, "is_error": True}]}]))
    task = call.task
    assert task.models[0].name == "anthropic/claude-haiku-4-5"
    assert task.options == {"max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "top_k": 5, "stop": ["END"],
                            "user": "u1"}
    assert task.messages[0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER"}},
    ]
    assert task.messages[1]["content"] is None  # the thinking block is the model's own, left out
    assert task.messages[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: Sunny"}


def test_output_config_is_a_schema_and_an_effort() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    task = parse(body(output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"})).task
    assert task.output_schema == schema and task.options["reasoning_effort"] == "low"


def test_headers_name_the_span_and_its_parent() -> None:
    task = parse(body(), {"x-opper-name": "claude-code", "x-opper-parent-span-id": "parent-1"}).task
    assert task.function_name == "claude-code" and task.parent_span_id == "parent-1"


BAD_BODIES = [
    (body(messages=[]), "messages must be a non-empty array"),
    (body(messages="hi"), "messages must be a non-empty array"),
    (body(max_tokens=None), "max_tokens is required"),
    (body(max_tokens=-1), "max_tokens is required"),
    (body(max_tokens=True), "max_tokens is required"),
    (body(max_tokens="100"), "max_tokens is required"),
    (body(model=None), "model must be"),
    (body(model=["openai/a"]), "model must be"),
    (body(model="gpt-4o"), "provider/model"),
    (body(temperature="hot"), "temperature must be a number"),
    (body(stop_sequences="END"), "stop_sequences"),
    (body(stop_sequences=[""]), "stop_sequences"),
    (body(metadata={"user_id": 5}), "metadata"),
    (body(metadata={"team": "a"}), "metadata"),
    (body(thinking={"type": "deep"}), "thinking"),
    (body(stream="yes"), "stream must be a boolean"),
    (body(output_config={"effort": "max"}), "output_config.effort must be one of low, medium, high"),
    (body(output_config={"format": {"type": "json_object"}}), "output_config.format must be"),
    (body(output_config={"format": {"type": "json_schema", "schema": "x"}}), "output_config.format must be"),
    (body(output_config={"task_budget": 5}), "only format and effort"),
    (body(output_config="json"), "only format and effort"),
    (body(container="c1", mcp_servers=[]), "container, mcp_servers: not supported"),
    (body(system=5), "system must be"),
    (body(system=[{"type": "image"}]), "system[0] must be a text block"),
    (body(messages=[{"role": "system", "content": "x"}]), "role must be user or assistant"),
    (body(messages=["hi"]), "messages[0] must be an object"),
    (body(messages=[{"role": "user"}]), "messages[0].content must be a string or an array"),
    (body(messages=[{"role": "user", "content": []}]), "must not be empty"),
    (body(messages=[{"role": "user", "content": [{"text": "no type"}]}]), "with a string 'type'"),
    (body(messages=[{"role": "user", "content": [{"type": "hologram"}]}]), "block type 'hologram'"),
    (body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]), "needs a string 'text'"),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
     "source must be an object with type base64 or url"),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "file:///etc"}}]}]),
     "http(s) URL"),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]),
     "media_type"),
    (body(messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]}]), "base64 data"),
    (body(messages=[{"role": "user", "content": [RESULT]}]), "answers no tool_use"),
    (body(messages=[*USER, {"role": "assistant", "content": [USE]},
                    {"role": "user", "content": [{**RESULT, "tool_use_id": "toolu_2"}]}]), "answers no tool_use"),
    (body(messages=[*USER, {"role": "assistant", "content": [USE]}, *USER]), "has no tool_result"),
    (body(messages=[*USER, {"role": "assistant", "content": [USE, USE]}]), "used twice"),
    (body(messages=[*USER, {"role": "assistant", "content": [{**USE, "input": "city=Paris"}]}]),
     "input must be an object"),
    (body(messages=[*USER, {"role": "assistant", "content": [{**USE, "id": None}]}]), "needs a string 'id'"),
    (body(messages=[*USER, {"role": "assistant", "content": [RESULT]}]), "not supported in an assistant"),
    (body(messages=[*USER, {"role": "assistant", "content": [USE]},
                    {"role": "user", "content": [{**RESULT, "is_error": "yes"}]}]), "is_error must be a boolean"),
    (body(messages=[*USER, {"role": "assistant", "content": [USE]},
                    {"role": "user", "content": [{**RESULT, "content": [{"type": "tool_use"}]}]}]),
     "not supported in a tool_result"),
    (body(messages=[*USER, {"role": "assistant", "content": [USE]},
                    {"role": "user", "content": [{**RESULT, "content": 5}]}]), "content must be a string or an array"),
    (body(tools={"name": "x"}), "tools must be an array"),
    (body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "server tools are not supported"),
    (body(tools=[{"name": "has spaces", "input_schema": {"type": "object"}}]), "tools[0].name must match"),
    (body(tools=[TOOL, TOOL]), "declared twice"),
    (body(tools=[{"name": "t"}]), "input_schema must be"),
    (body(tools=[{**TOOL, "description": 5}]), "description must be a string"),
    (body(tool_choice="auto"), "tool_choice must be an object"),
    (body(tool_choice={"type": "sometimes"}), "tool_choice must be an object"),
    (body(tool_choice={"type": "any"}), "needs tools"),
    (body(tools=[TOOL], tool_choice={"type": "tool", "name": "nope"}), "not in tools"),
    (body(tools=[TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
     "disable_parallel_tool_use"),
]


@pytest.mark.parametrize(("payload", "fragment"), BAD_BODIES)
def test_bad_bodies_are_refused_by_name(payload: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        parse(payload)
    assert fragment in raised.value.detail


# ---- over HTTP


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_x_api_key_authenticates_and_the_span_is_recorded(any_server: ServerProcess, fake: FakeProvider,
                                                           model: str) -> None:
    parent = messages(any_server, body(model=model)).headers["x-opper-span-id"]
    reply = messages(any_server, body(model=model), key=None,
                     headers={"x-api-key": "test-key", "X-Opper-Name": "claude-code", "X-Opper-Parent-Span-Id": parent})
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert answer["type"] == "message" and answer["content"][0]["type"] == "text"
    assert float(reply.headers["x-opper-cost"]) > 0
    span = get(f"{any_server.url}/v3/spans/{reply.headers['x-opper-span-id']}").json()["data"]
    assert span["name"] == "claude-code" and span["parent_id"] == parent and span["type"] == "chat"
    assert span["cost"] == pytest.approx(float(reply.headers["x-opper-cost"]))


@pytest.mark.parametrize(("key", "headers"), [
    (None, {}),
    (None, {"x-api-key": "wrong"}),
    (None, {"x-api-key": "  "}),
    ("wrong", {}),
])
def test_wrong_auth_is_an_anthropic_authentication_error(server: ServerProcess, fake: FakeProvider,
                                                         key: str | None, headers: dict[str, str]) -> None:
    reply = messages(server, body(), key=key, headers=headers)
    assert reply.status == 401
    assert reply.json()["type"] == "error" and reply.json()["error"]["type"] == "authentication_error"
    assert fake.requests == []


@pytest.mark.parametrize("raw", [b"", b"{", b"[1]", b'"text"', b"[" * 10_000, b'{"max_tokens": 1' + b"0" * 40 + b"}"])
def test_malformed_json_is_a_400_envelope(server: ServerProcess, fake: FakeProvider, raw: bytes) -> None:
    reply = messages(server, None, raw=raw)
    assert reply.status == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert fake.requests == []


def test_a_bad_body_over_http_names_the_block(server: ServerProcess, fake: FakeProvider) -> None:
    reply = messages(server, body(messages=[{"role": "user", "content": [RESULT]}], stream=True))
    assert reply.status == 400
    assert "messages[0].content[0]: tool_result 'toolu_1'" in reply.json()["error"]["message"]
    assert fake.requests == []


def test_a_huge_body_is_a_413_envelope(server: ServerProcess, fake: FakeProvider) -> None:
    reply = messages(server, body(messages=[{"role": "user", "content": "x" * (11 * 1024 * 1024)}]))
    assert reply.status == 413 and reply.json()["error"]["type"] == "request_too_large"


def test_upstream_failure_before_output_is_an_envelope(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(status=500), Behaviour(status=500))
    for stream in (False, True):
        reply = messages(server, body(stream=stream))
        assert reply.status == 502 and reply.json()["error"]["type"] == "api_error"


def test_a_tool_call_whose_arguments_are_not_an_object_is_an_upstream_failure(server: ServerProcess,
                                                                            fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(tool_calls=[("get_weather", "not json")]))  # type: ignore[list-item]
    reply = messages(server, body(tools=[TOOL]))
    assert reply.status == 502 and "get_weather" in reply.json()["error"]["message"]


def test_stream_event_names_match_their_types(server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Hi there", tool_calls=[("get_weather", {"city": "Oslo"})]))
    reply = messages(server, body(tools=[TOOL], stream=True))
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in reply.body.decode().split("\n\n") if block.startswith("event:")]
    pairs = [(block.split("\n")[0][7:], orjson.loads(block.split("\n")[1][6:])) for block in blocks]
    assert all(name == data["type"] for name, data in pairs)
    starts = [data for name, data in pairs if name == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use")]
    stops = [data["index"] for name, data in pairs if name == "content_block_stop"]
    assert stops == [0, 1]
    json_text = "".join(data["delta"]["partial_json"] for name, data in pairs
                        if name == "content_block_delta" and data["index"] == 1)
    assert orjson.loads(json_text) == {"city": "Oslo"}
    assert pairs[-2][1]["delta"]["stop_reason"] == "tool_use"


CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        "additionalProperties": False}


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_structured_output_is_validated_and_reasked(server: ServerProcess, fake: FakeProvider, model: str) -> None:
    upstream = model.split("/", 1)[1]
    structured = {"output_config": {"format": {"type": "json_schema", "schema": CITY}}, "model": model}
    fake.script(upstream, Behaviour(json={"town": "Oslo"}), Behaviour(json={"city": "Oslo"}))
    reply = messages(server, body(**structured))
    assert reply.status == 200, reply.body
    [block] = reply.json()["content"]
    assert block["type"] == "text" and orjson.loads(block["text"]) == {"city": "Oslo"}
    assert len(fake.requests) == 2  # the misfit was asked again
    fake.script(upstream, Behaviour(json={"city": "Bergen"}))
    streamed = messages(server, body(**structured, stream=True))
    text = "".join(orjson.loads(line[6:])["delta"]["text"] for line in streamed.body.decode().split("\n")
                   if line.startswith("data: ") and '"text_delta"' in line)
    assert orjson.loads(text) == {"city": "Bergen"}


# ---- stop sequences, and the options only Anthropic takes


def _events(reply: Reply) -> list[dict[str, Any]]:
    return [orjson.loads(data) for data in sse_events(reply)]


def test_an_anthropic_stop_sequence_is_named_plain_and_streamed(server: ServerProcess, fake: FakeProvider) -> None:
    stopped = body(model=ANTHROPIC, stop_sequences=["STOP", "END"])
    fake.script("claude-haiku-4-5", Behaviour(text="One, two END three"), Behaviour(text="One, two END three"))
    reply = messages(server, stopped)
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert (answer["stop_reason"], answer["stop_sequence"]) == ("stop_sequence", "END")
    assert answer["content"] == [{"type": "text", "text": "One, two "}]
    assert fake.requests[-1].json["stop_sequences"] == ["STOP", "END"]
    events = _events(messages(server, {**stopped, "stream": True}))
    [delta] = [event for event in events if event["type"] == "message_delta"]
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    fake.script("claude-haiku-4-5", Behaviour(text="One END"))
    compat = post(server.url + "/v3/compat/chat/completions", {"model": ANTHROPIC, "messages": USER, "stop": ["END"]})
    assert compat.status == 200, compat.body
    [choice] = compat.json()["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "One "  # compat is unchanged


def test_an_openai_stop_is_an_end_turn(server: ServerProcess, fake: FakeProvider) -> None:
    """finish_reason "stop" does not say whether a stop sequence ended the answer."""
    stopped = body(stop_sequences=["END"])
    answer = messages(server, stopped).json()
    assert (answer["stop_reason"], answer["stop_sequence"]) == ("end_turn", None)
    assert fake.requests[-1].json["stop"] == ["END"]
    [delta] = [event for event in _events(messages(server, {**stopped, "stream": True}))
               if event["type"] == "message_delta"]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(("option", "value"), [("thinking", THINKING), ("top_k", 5)])
def test_anthropic_only_options_are_refused_for_an_openai_upstream(server: ServerProcess, fake: FakeProvider,
                                                                   option: str, value: Any) -> None:
    for stream in (False, True):
        reply = messages(server, body(stream=stream, **{option: value}))
        assert reply.status == 400, reply.body
        error = reply.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert f"'{option}'" in error["message"] and "'openai'" in error["message"]
    assert fake.requests == []


def test_anthropic_only_options_reach_an_anthropic_upstream(server: ServerProcess, fake: FakeProvider) -> None:
    for stream in (False, True):
        reply = messages(server, body(model=ANTHROPIC, stream=stream, thinking=THINKING, top_k=5, max_tokens=2048))
        assert reply.status == 200, reply.body
        sent = fake.requests[-1].json
        assert sent["thinking"] == THINKING and sent["top_k"] == 5

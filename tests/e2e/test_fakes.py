"""The fakes speak the real wire formats, and the harness starts what it claims to start."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import urllib.request
from typing import Any

import aiohttp
import jsonschema_rs
import orjson
import pytest

from tests.fakes.common import pieces
from tests.fakes.openai_wire import embedding_vector
from tests.fakes.provider import Behaviour, FakeProvider
from tests.fakes.schema_instance import SAMPLE_TEXT, instance_for
from tests.harness import ServerProcess

OPENAI_HEADERS = {"Authorization": "Bearer sk-fake"}
ANTHROPIC_HEADERS = {"x-api-key": "ak-fake", "anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "What is the weather in Paris today?"}]
WEATHER_TOOL = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


# ----- helpers -----

async def post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


def sse_data(raw: bytes) -> list[str]:
    return [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


async def openai_chat(fake: FakeProvider, **body: Any) -> tuple[int, dict[str, str], bytes]:
    return await post(f"{fake.openai_base_url}/chat/completions", {"messages": USER, **body}, OPENAI_HEADERS)


async def anthropic_messages(fake: FakeProvider, **body: Any) -> tuple[int, dict[str, str], bytes]:
    payload = {"max_tokens": 256, "messages": USER, **body}
    return await post(f"{fake.anthropic_base_url}/v1/messages", payload, ANTHROPIC_HEADERS)


# ----- schema instances -----

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18}},
     "required": ["name"]},
    {"type": "array", "items": {"type": "integer", "exclusiveMinimum": 5, "maximum": 9}, "minItems": 3,
     "uniqueItems": True},
    {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": True},
    {"enum": ["red", "green"]},
    {"const": {"fixed": True}},
    {"anyOf": [{"type": "null"}, {"type": "string", "format": "email"}]},
    {"oneOf": [{"type": "number", "multipleOf": 0.25, "minimum": 2.1}, {"type": "string"}]},
    {"type": ["null", "boolean"]},
    {"type": "string", "minLength": 40, "maxLength": 50},
    {"type": "string", "maxLength": 3},
    {"type": "string", "format": "date-time"},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2},
    {"type": "array", "items": {"type": "string"}, "maxItems": 0},
    {"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]},
               {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
    {"$defs": {"node": {"type": "object", "properties": {"value": {"type": "string"},
                                                         "children": {"type": "array",
                                                                      "items": {"$ref": "#/$defs/node"}}},
                        "required": ["value", "children"]}},
     "$ref": "#/$defs/node"},
    {"definitions": {"item": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"],
                              "additionalProperties": False}},
     "type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/definitions/item"}}},
     "required": ["items"]},
    {"type": "object", "required": ["free"], "additionalProperties": {"type": "integer"}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_generated_instances_are_valid(schema: dict[str, Any]) -> None:
    instance = instance_for(schema)
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(instance)]
    assert errors == [], (instance, errors)


def test_generated_strings_are_multi_word_and_stable() -> None:
    schema = SCHEMAS[0]
    assert instance_for(schema) == instance_for(schema)
    assert instance_for(schema)["name"] == SAMPLE_TEXT
    assert len(pieces(json.dumps(instance_for(schema)))) > 4


# ----- OpenAI -----

async def test_openai_default_text_and_usage(fake: FakeProvider) -> None:
    status, _, raw = await openai_chat(fake, model="gpt-4o-mini")
    body = orjson.loads(raw)
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant", "content": "Hello from gpt-4o-mini! This is a fake reply.", "refusal": None,
        "annotations": [],
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(USER[0]["content"]) // 4 + 1
    assert usage["completion_tokens"] == len(pieces("Hello from gpt-4o-mini! This is a fake reply."))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_openai_requires_bearer_and_records_requests(fake: FakeProvider) -> None:
    status, _, raw = await post(f"{fake.openai_base_url}/chat/completions", {"model": "m", "messages": USER}, {})
    assert status == 401
    assert orjson.loads(raw)["error"]["type"] == "invalid_request_error"
    await openai_chat(fake, model="m2")
    assert [(r.path, r.model) for r in fake.requests] == [
        ("/openai/v1/chat/completions", "m"), ("/openai/v1/chat/completions", "m2"),
    ]
    assert fake.requests[1].headers["authorization"] == "Bearer sk-fake"
    assert fake.requests[1].json["messages"] == USER
    fake.clear()
    assert fake.requests == []


async def test_openai_json_schema_answer_is_a_valid_instance(fake: FakeProvider) -> None:
    schema = SCHEMAS[0]
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    _, _, raw = await openai_chat(fake, model="m", response_format=fmt)
    content = orjson.loads(raw)["choices"][0]["message"]["content"]
    assert jsonschema_rs.is_valid(schema, json.loads(content))
    _, _, raw = await openai_chat(fake, model="m", response_format=fmt, stream=True)
    deltas = [json.loads(d)["choices"][0]["delta"].get("content") for d in sse_data(raw)[:-1]]
    texts = [d for d in deltas if d]
    assert "".join(texts) == content
    assert "sample " in texts  # a string value is split across deltas


async def test_openai_stream_shape_with_text_and_tool_calls(fake: FakeProvider) -> None:
    fake.script("m", Behaviour(text="Let me check.", tool_calls=[("get_weather", {"city": "Paris"}),
                                                                ("get_time", {"zone": "CET"})]))
    _, headers, raw = await openai_chat(fake, model="m", stream=True, stream_options={"include_usage": True})
    assert headers["content-type"].startswith("text/event-stream")
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    assert "".join(d.get("content", "") for d in deltas) == "Let me check."
    fragments = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    calls: dict[int, dict[str, str]] = {}
    for fragment in fragments:
        if fragment["index"] not in calls:
            assert fragment["function"]["arguments"] == ""
            calls[fragment["index"]] = {"id": fragment["id"], "name": fragment["function"]["name"], "args": ""}
        else:
            assert set(fragment) == {"index", "function"} and set(fragment["function"]) == {"arguments"}
            calls[fragment["index"]]["args"] += fragment["function"]["arguments"]
    assert [(c["name"], json.loads(c["args"])) for c in calls.values()] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"}),
    ]
    assert len(fragments) > 4  # arguments arrive in several pieces
    _, _, raw = await openai_chat(fake, model="m", stream=True)
    assert all("usage" not in json.loads(d) for d in sse_data(raw)[:-1])


async def test_openai_forced_function_gets_generated_arguments(fake: FakeProvider) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL}}]
    choice = {"type": "function", "function": {"name": "get_weather"}}
    _, _, raw = await openai_chat(fake, model="m", tools=tools, tool_choice=choice)
    choice_body = orjson.loads(raw)["choices"][0]
    assert choice_body["finish_reason"] == "tool_calls" and choice_body["message"]["content"] is None
    call = choice_body["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert jsonschema_rs.is_valid(WEATHER_TOOL, json.loads(call["function"]["arguments"]))


async def test_scripts_are_fifo_per_model_then_default(fake: FakeProvider) -> None:
    fake.script("m", Behaviour(text="first"), Behaviour(json={"n": 2}, finish_reason="length",
                                                       usage={"prompt_tokens_details": {"cached_tokens": 7}}))
    answers = []
    for model in ("other", "m", "m", "m"):
        _, _, raw = await openai_chat(fake, model=model)
        answers.append(orjson.loads(raw))
    contents = [a["choices"][0]["message"]["content"] for a in answers]
    assert contents == ["Hello from other! This is a fake reply.", "first", '{"n":2}',
                        "Hello from m! This is a fake reply."]
    assert answers[2]["choices"][0]["finish_reason"] == "length"
    assert answers[2]["usage"]["prompt_tokens_details"] == {"cached_tokens": 7, "audio_tokens": 0}


async def test_error_statuses_use_each_providers_body(fake: FakeProvider) -> None:
    fake.script("m", Behaviour(status=429), Behaviour(status=500))
    status, headers, raw = await openai_chat(fake, model="m")
    assert status == 429 and headers["retry-after"] == "1"
    assert orjson.loads(raw)["error"]["code"] == "rate_limit_exceeded"
    status, _, raw = await openai_chat(fake, model="m")
    assert status == 500 and orjson.loads(raw)["error"]["type"] == "server_error"
    fake.script("c", Behaviour(status=529))
    status, _, raw = await anthropic_messages(fake, model="c")
    assert status == 529
    assert orjson.loads(raw) == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


async def test_reject_model_on_both_providers(fake: FakeProvider) -> None:
    status, _, raw = await openai_chat(fake, model="reject-model")
    error = orjson.loads(raw)["error"]
    assert status == 404 and error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert "The model `reject-model` does not exist" in error["message"]
    status, _, raw = await anthropic_messages(fake, model="reject-model")
    assert status == 404
    expected = {"type": "error", "error": {"type": "not_found_error", "message": "model: reject-model"}}
    assert orjson.loads(raw) == expected


async def test_raw_body_is_sent_verbatim(fake: FakeProvider) -> None:
    fake.script("m", Behaviour(raw_body=b'{"choices": [tru'))
    status, headers, raw = await openai_chat(fake, model="m")
    assert (status, raw) == (200, b'{"choices": [tru')
    assert headers["content-type"].startswith("application/json")


async def test_cut_after_ends_the_stream_without_a_clean_end(fake: FakeProvider) -> None:
    fake.script("m", Behaviour(cut_after=3))
    received = []
    async with aiohttp.ClientSession() as session:
        body = {"model": "m", "messages": USER, "stream": True}
        async with session.post(f"{fake.openai_base_url}/chat/completions", json=body,
                                headers=OPENAI_HEADERS) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                async for line in resp.content:
                    if line.startswith(b"data: "):
                        received.append(line)
    assert len(received) == 3
    assert fake.disconnects == 0


async def test_fail_after_sends_the_in_stream_error(fake: FakeProvider) -> None:
    fake.script("m", Behaviour(fail_after=2))
    _, _, raw = await openai_chat(fake, model="m", stream=True)
    data = sse_data(raw)
    assert len(data) == 3 and json.loads(data[-1])["error"]["type"] == "server_error"
    fake.script("c", Behaviour(fail_after=4))
    _, _, raw = await anthropic_messages(fake, model="c", stream=True)
    events = sse_events(raw)
    assert len(events) == 5 and events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"


async def test_delay_triggers_client_timeouts(fake: FakeProvider) -> None:
    fake.script("m", Behaviour(delay_s=30))
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            body = {"model": "m", "messages": USER}
            async with session.post(f"{fake.openai_base_url}/chat/completions", json=body,
                                    headers=OPENAI_HEADERS) as resp:
                await resp.read()


async def test_client_leaving_mid_stream_is_counted(fake: FakeProvider) -> None:
    fake.script("c", Behaviour(event_delay_s=0.05))
    body = {"model": "c", "max_tokens": 10, "messages": USER, "stream": True}
    async with aiohttp.ClientSession() as session, session.post(
        f"{fake.anthropic_base_url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS,
    ) as resp:
        await resp.content.readline()
        resp.close()
    assert await _wait_disconnects(fake, 1)


async def _wait_disconnects(fake: FakeProvider, count: int) -> bool:
    return await asyncio.to_thread(fake.wait_disconnects, count, 20.0)


# ----- Anthropic -----

async def test_anthropic_checks_its_headers_and_body(fake: FakeProvider) -> None:
    url = f"{fake.anthropic_base_url}/v1/messages"
    body = {"model": "c", "max_tokens": 5, "messages": USER}
    status, _, raw = await post(url, body, {"anthropic-version": "2023-06-01"})
    assert status == 401 and orjson.loads(raw)["error"]["type"] == "authentication_error"
    status, _, raw = await post(url, body, {"x-api-key": "k"})
    assert status == 400 and "anthropic-version" in orjson.loads(raw)["error"]["message"]
    status, _, _ = await post(url, body, {"authorization": "Bearer k", "anthropic-version": "2023-06-01"})
    assert status == 200
    status, _, raw = await post(url, {"model": "c", "messages": USER}, ANTHROPIC_HEADERS)
    assert status == 400 and orjson.loads(raw)["error"]["message"] == "max_tokens: Field required"


async def test_anthropic_default_message(fake: FakeProvider) -> None:
    status, _, raw = await anthropic_messages(fake, model="claude-x", system="Be brief.")
    body = orjson.loads(raw)
    assert status == 200
    assert body["type"] == "message" and body["role"] == "assistant" and body["stop_reason"] == "end_turn"
    assert body["content"] == [{"type": "text", "text": "Hello from claude-x! This is a fake reply."}]
    assert body["usage"]["input_tokens"] == (len("Be brief.") + len(USER[0]["content"])) // 4 + 1
    assert body["stop_sequence"] is None and body["usage"]["cache_read_input_tokens"] == 0


async def test_anthropic_stream_event_sequence_with_forced_tool(fake: FakeProvider) -> None:
    tools = [{"name": "get_weather", "input_schema": WEATHER_TOOL}]
    _, _, raw = await anthropic_messages(fake, model="c", stream=True, tools=tools,
                                         tool_choice={"type": "tool", "name": "get_weather"})
    events = sse_events(raw)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    block = events[2][1]["content_block"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather"
    partial = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert len(partial) > 3
    assert jsonschema_rs.is_valid(WEATHER_TOOL, json.loads("".join(partial)))
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] > 0


async def test_anthropic_scripted_json_becomes_the_tool_input(fake: FakeProvider) -> None:
    tools = [{"name": "respond", "input_schema": {"type": "object"}}]
    fake.script("c", Behaviour(json={"answer": 42}, finish_reason="max_tokens",
                               usage={"cache_read_input_tokens": 11}))
    _, _, raw = await anthropic_messages(fake, model="c", tools=tools, tool_choice={"type": "tool", "name": "respond"})
    body = orjson.loads(raw)
    assert [(b["type"], b["name"], b["input"]) for b in body["content"]] == [("tool_use", "respond", {"answer": 42})]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["cache_read_input_tokens"] == 11


async def test_anthropic_stream_text_then_tool_use_blocks(fake: FakeProvider) -> None:
    fake.script("c", Behaviour(text="Sure thing.", tool_calls=[("get_weather", {"city": "Oslo"})]))
    _, _, raw = await anthropic_messages(fake, model="c", stream=True)
    events = sse_events(raw)
    starts = [d for n, d in events if n == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use")]
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["index"] == 0)
    args = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1)
    assert text == "Sure thing." and json.loads(args) == {"city": "Oslo"}


# ----- embeddings and options -----

async def test_embeddings_are_deterministic_and_honour_dimensions(fake: FakeProvider) -> None:
    url = f"{fake.openai_base_url}/embeddings"
    _, _, raw = await post(url, {"model": "e", "input": ["a", "b"], "dimensions": 4}, OPENAI_HEADERS)
    body = orjson.loads(raw)
    assert body["object"] == "list"
    assert [d["embedding"] for d in body["data"]] == [embedding_vector("a", 4), embedding_vector("b", 4)]
    assert embedding_vector("a", 4) != embedding_vector("b", 4)
    _, _, raw = await post(url, {"model": "e", "input": "a"}, OPENAI_HEADERS)
    assert len(orjson.loads(raw)["data"][0]["embedding"]) == 8
    _, _, raw = await post(url, {"model": "e", "input": "a", "encoding_format": "base64"}, OPENAI_HEADERS)
    decoded = struct.unpack("<8f", base64.b64decode(orjson.loads(raw)["data"][0]["embedding"]))
    assert decoded == pytest.approx(embedding_vector("a", 8), abs=1e-6)
    status, _, _ = await post(url, {"model": "e"}, OPENAI_HEADERS)
    assert status == 400


async def test_stream_events_option_sets_the_number_of_deltas() -> None:
    with FakeProvider(stream_events=54, record=False) as fake:
        _, _, raw = await openai_chat(fake, model="m", stream=True)
        assert fake.requests == []
    contents = [json.loads(d)["choices"][0]["delta"].get("content") for d in sse_data(raw)[1:-1]]
    assert len([c for c in contents if c]) == 54


# ----- harness -----

def test_server_process_serves_health(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"{server.url}/health", timeout=10) as resp:
        assert resp.status == 200


def test_server_process_reports_a_failed_start(fake_provider: FakeProvider, tmp_path: Any) -> None:
    process = ServerProcess(fake_provider, tmp_path, args=("--no-such-flag",))
    with pytest.raises(RuntimeError, match="no-such-flag"):
        process.start()
    assert process.process is not None and process.process.returncode != 0


@pytest.mark.sdk
@pytest.mark.parametrize(("venv", "script", "client"), [
    ("opperai-1.7.2", "smoke_opperai.py", "Opper 1.7.2"),
    ("opperai-2.1.1", "smoke_opperai.py", "Opper 2.1.1"),
    ("openai", "smoke_openai.py", "OpenAI "),
    ("anthropic", "smoke_anthropic.py", "Anthropic "),
])
def test_sdk_venvs_import_their_client(sdk_venv: Any, venv: str, script: str, client: str) -> None:
    result = sdk_venv.run(venv, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(client)


@pytest.mark.sdk
def test_official_openai_client_parses_the_fake(sdk_venv: Any, fake: FakeProvider) -> None:
    tool_turn = Behaviour(text="Checking.", tool_calls=[("get_weather", {"city": "Paris"})])
    fake.script("tool-model", tool_turn, tool_turn)
    result = sdk_venv.run("openai", "fake_openai_client.py", fake.openai_base_url)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["plain_text"] == "Hello from gpt-4o-mini! This is a fake reply."
    assert out["plain_finish"] == "stop" and out["plain_usage"][2] == sum(out["plain_usage"][:2])
    assert out["last_chunk_usage"] > 0
    assert out["stream_text"] == "Checking." and out["stream_finish"] == "tool_calls"
    assert [t[1:] for t in out["stream_tools"]] == [["get_weather", {"city": "Paris"}]]
    assert out["stream_usage"] > 0
    assert out["embedding"] == pytest.approx(embedding_vector("hello", 4), abs=1e-6)


@pytest.mark.sdk
def test_official_anthropic_client_parses_the_fake(sdk_venv: Any, fake: FakeProvider) -> None:
    fake.script("claude-tool", Behaviour(text="Checking the weather.", tool_calls=[("get_weather", {"city": "Oslo"})]))
    result = sdk_venv.run("anthropic", "fake_anthropic_client.py", fake.anthropic_base_url)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["plain"] == [{"type": "text", "text": "Hello from claude-plain! This is a fake reply."}]
    assert out["plain_stop"] == "end_turn" and min(out["plain_usage"]) > 0
    assert "".join(out["stream_deltas"]) == "Checking the weather."
    assert out["stream"] == [
        {"type": "text", "text": "Checking the weather."},
        {"type": "tool_use", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert out["stream_stop"] == "tool_use" and min(out["stream_usage"]) > 0
    assert out["forced"][0]["type"] == "tool_use"
    assert jsonschema_rs.is_valid(WEATHER_TOOL, out["forced"][0]["input"])


# ----- images -----

async def test_images_answer_per_model_as_openai_does_and_are_logged(fake: FakeProvider) -> None:
    url = f"{fake.openai_base_url}/images/generations"
    status, _, raw = await post(url, {"model": "gpt-image-1", "prompt": "a kite", "n": 2}, OPENAI_HEADERS)
    body = orjson.loads(raw)
    assert status == 200 and len(body["data"]) == 2 and body["usage"]["output_tokens"] > 0
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(b"\x89PNG")
    status, _, raw = await post(url, {"model": "dall-e-3", "prompt": "a kite"}, OPENAI_HEADERS)
    item = orjson.loads(raw)["data"][0]
    assert status == 200 and item["url"].startswith("https://") and item["revised_prompt"]
    assert "usage" not in orjson.loads(raw)
    refused = [
        {"model": "gpt-image-1", "prompt": "x", "response_format": "b64_json"},
        {"model": "dall-e-3", "prompt": "x", "n": 2},
        {"model": "dall-e-3", "prompt": "x", "size": "9x9"},
        {"model": "dall-e-3", "prompt": "x", "output_format": "webp"},
        {"model": "dall-e-3"},
        {"model": "dall-e-3", "prompt": "x", "colour": "red"},
    ]
    for request in refused:
        status, _, raw = await post(url, request, OPENAI_HEADERS)
        assert status == 400 and orjson.loads(raw)["error"]["message"], request
    assert (await post(url, {"model": "gpt-4o-mini", "prompt": "x"}, OPENAI_HEADERS))[0] == 404
    assert (await post(url, {"model": "dall-e-3", "prompt": "x"}, {}))[0] == 401
    assert [r.path for r in fake.requests] == ["/openai/v1/images/generations"] * (len(refused) + 4)

"""The real `anthropic` client against `POST /v3/compat/v1/messages`, in front of both fake upstreams.

Each test runs tests/sdk_scripts/anthropic_messages.py in the client's own virtualenv and asserts on
the JSON it prints, and on what the fake upstream received: an `openai/...` model answers an
Anthropic-shaped request as well as an `anthropic/...` one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.http_client import get

pytestmark = pytest.mark.sdk

OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5"
UPSTREAMS = [OPENAI, ANTHROPIC]


def run(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str, **cfg: Any) -> Any:
    config = {"base_url": f"{server.url}/v3/compat", "api_key": server.api_key, "scenario": scenario, **cfg}
    done = sdk_venv.run("anthropic", "anthropic_messages.py", json.dumps(config), server=server)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def upstream(model: str) -> str:
    return model.split("/", 1)[1]


@pytest.mark.parametrize("model", UPSTREAMS)
def test_create_text_is_recorded_and_priced(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                            model: str) -> None:
    out = run(sdk_venv, server, "create_text", model=model)
    assert out["content"] == [{"type": "text", "text": fake.default_text(upstream(model))}]
    assert out["stop_reason"] == "end_turn" and out["model"] == model
    assert out["usage"]["input_tokens"] > 0 and out["usage"]["output_tokens"] > 0
    assert float(out["cost"]) > 0
    sent = fake.requests[-1].json
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 200
    if model == OPENAI:
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["stop"] == ["\n\n\n"]
    else:
        assert sent["system"] == "Be brief." and sent["stop_sequences"] == ["\n\n\n"]
    span = get(f"{server.url}/v3/spans/{out['span_id']}").json()["data"]
    assert span["name"] == "sdk-messages" and span["type"] == "chat"
    assert out["id"] == "msg_" + out["span_id"].replace("-", "")


@pytest.mark.parametrize("model", UPSTREAMS)
def test_tool_round_trip(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, model: str) -> None:
    fake.script(upstream(model), Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]),
                Behaviour(text="It is sunny in Paris."))
    out = run(sdk_venv, server, "tool_round_trip", model=model)
    first, final = out["first"], out["final"]
    assert first["stop_reason"] == "tool_use"
    [use] = first["content"]
    assert use["type"] == "tool_use" and use["name"] == "get_weather" and use["input"] == {"city": "Paris"}
    assert final["content"] == [{"type": "text", "text": "It is sunny in Paris."}]
    second = fake.requests[-1].json
    if model == OPENAI:
        assistant, tool = second["messages"][1:]
        assert assistant["tool_calls"][0]["id"] == use["id"]
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
        assert tool == {"role": "tool", "tool_call_id": use["id"], "content": "Sunny"}
        assert fake.requests[0].json["tool_choice"] == "auto"
    else:
        assistant, result = second["messages"][1:]
        assert {"type": "tool_use", "id": use["id"], "name": "get_weather", "input": {"city": "Paris"}} \
            in assistant["content"]
        assert result["content"][0] == {"type": "tool_result", "tool_use_id": use["id"], "content": "Sunny"}
        assert fake.requests[0].json["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize("model", UPSTREAMS)
def test_stream_text(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, model: str) -> None:
    fake.script(upstream(model), Behaviour(event_delay_s=0.005))
    out = run(sdk_venv, server, "stream_text", model=model)
    text = fake.default_text(upstream(model))
    assert "".join(out["pieces"]) == text and len(out["pieces"]) > 1
    assert out["final"]["content"] == [{"type": "text", "text": text}]
    assert out["final"]["stop_reason"] == "end_turn"
    assert out["final"]["usage"]["input_tokens"] > 0 and out["final"]["usage"]["output_tokens"] > 0
    assert out["events"][0] == "message_start" and out["events"][-1] == "message_stop"
    assert {"content_block_start", "text", "content_block_stop", "message_delta"} <= set(out["events"])


@pytest.mark.parametrize("model", UPSTREAMS)
def test_stop_sequence_is_named_when_the_upstream_names_it(sdk_venv: SdkVenvs, server: ServerProcess,
                                                           fake: FakeProvider, model: str) -> None:
    """Anthropic says which sequence stopped the answer; an OpenAI finish_reason "stop" does not."""
    fake.script(upstream(model), Behaviour(text="Rain, then END sun"), Behaviour(text="Rain, then END sun"))
    out = run(sdk_venv, server, "stop_sequence", model=model, stop_sequences=["END"])
    if model == ANTHROPIC:
        expected = {"content": [{"type": "text", "text": "Rain, then "}], "stop_reason": "stop_sequence",
                    "stop_sequence": "END"}
    else:
        expected = {"content": [{"type": "text", "text": "Rain, then END sun"}], "stop_reason": "end_turn",
                    "stop_sequence": None}
    assert out == {"created": expected, "streamed": expected}


@pytest.mark.parametrize("model", UPSTREAMS)
def test_stream_tool_use(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, model: str) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo, Norway"})]
    fake.script(upstream(model), Behaviour(tool_calls=calls))
    out = run(sdk_venv, server, "stream_tools", model=model)
    final = out["final"]
    assert final["stop_reason"] == "tool_use"
    assert [(block["type"], block["name"], block["input"]) for block in final["content"]] == [
        ("tool_use", "get_weather", {"city": "Paris"}), ("tool_use", "get_weather", {"city": "Oslo, Norway"})]
    assert all(block["id"] for block in final["content"])
    assert "input_json" in out["events"]
    sent = fake.requests[-1].json
    assert sent["tool_choice"] == ("required" if model == OPENAI else {"type": "any"})


@pytest.mark.parametrize("model", UPSTREAMS)
def test_parse_with_pydantic_reasks_until_valid(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                                model: str) -> None:
    fake.script(upstream(model), Behaviour(json={"city": "Oslo", "population": "many"}),
                Behaviour(json={"city": "Oslo", "population": 709000}))
    out = run(sdk_venv, server, "parse", model=model)
    assert out == {"parsed": {"city": "Oslo", "population": 709000}, "stop_reason": "end_turn"}
    assert len(fake.requests) == 2


def test_raw_stream_events_are_anthropics(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    out = run(sdk_venv, server, "create_stream_raw", model=OPENAI)
    events = out["events"]
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["role"] == "assistant" and events[0]["message"]["content"] == []
    assert events[1]["content_block"] == {"type": "text", "text": ""} and events[1]["index"] == 0
    assert all(event["delta"]["type"] == "text_delta" for event in events if event["type"] == "content_block_delta")
    assert events[-2]["delta"]["stop_reason"] == "end_turn" and events[-2]["usage"]["output_tokens"] > 0


def test_mid_stream_failure_raises_in_the_client(sdk_venv: SdkVenvs, server: ServerProcess,
                                                 fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Once upon a time there was a gateway", fail_after=4))
    out = run(sdk_venv, server, "stream_error", model=OPENAI)
    assert out["raised"] == "APIStatusError" and out["received"]
    assert out["body"]["type"] == "error" and out["body"]["error"]["type"] == "api_error"


BAD_INPUTS = [
    ({"model": OPENAI, "max_tokens": 10, "messages": []}, "messages"),
    ({"model": OPENAI, "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": OPENAI, "max_tokens": 10, "messages": [{"role": "narrator", "content": "x"}]}, "role"),
    ({"model": OPENAI, "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
     "'hologram'"),
    ({"model": OPENAI, "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "orphan"}]}]}, "answers no tool_use"),
    ({"model": OPENAI, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
      "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
    ({"model": "nowhere/model-x", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
     "unknown provider"),
]


def test_bad_input_raises_bad_request_error(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    outcomes = run(sdk_venv, server, "bad_request", cases=[kwargs for kwargs, _ in BAD_INPUTS])
    for outcome, (kwargs, fragment) in zip(outcomes, BAD_INPUTS, strict=True):
        assert outcome["raised"] == "BadRequestError" and outcome["status"] == 400, kwargs
        assert outcome["body"]["type"] == "error" and outcome["body"]["error"]["type"] == "invalid_request_error"
        assert fragment in outcome["message"], outcome
    assert fake.requests == []


def test_wrong_key_is_an_authentication_error(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    out = run(sdk_venv, server, "wrong_key", model=OPENAI)
    assert out == {"raised": "AuthenticationError", "status": 401,
                   "body": {"type": "error", "error": {"type": "authentication_error", "message": "invalid API key"}}}

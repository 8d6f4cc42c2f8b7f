"""The real `openai` Python client against `taskgate serve`, which talks to the fake upstreams.

Each test runs tests/sdk_scripts/compat_openai.py in the client's own virtualenv and asserts on
the JSON it prints, plus on what the fake upstream received.
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
    done = sdk_venv.run("openai", "compat_openai.py", json.dumps(config), server=server)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def upstream(model: str) -> str:
    return model.split("/", 1)[1]


@pytest.mark.parametrize("model", UPSTREAMS)
def test_seed_text_stream_loop(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, model: str) -> None:
    fake.script(upstream(model), Behaviour(event_delay_s=0.005))  # tokens apart, as a model makes them
    out = run(sdk_venv, server, "stream_text", model=model)
    assert out["text"] == fake.default_text(upstream(model))
    assert out["pieces"] > 1


def test_seed_tool_loop_parses_the_same_on_both_upstreams(sdk_venv: SdkVenvs, server: ServerProcess,
                                                           fake: FakeProvider) -> None:
    calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo, Norway"})]
    results = []
    for model in UPSTREAMS:
        fake.script(upstream(model), Behaviour(tool_calls=calls))
        out = run(sdk_venv, server, "stream_tools", model=model)
        assert out["finish_reason"] == "tool_calls"
        assert all(call["id"] for call in out["calls"])
        results.append([(c["index"], c["name"], c["arguments"]) for c in out["calls"]])
    assert results[0] == results[1] == [(0, "get_weather", {"city": "Paris"}),
                                        (1, "get_weather", {"city": "Oslo, Norway"})]


@pytest.mark.parametrize("model", UPSTREAMS)
def test_non_streamed_tool_round_trip(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                      model: str) -> None:
    fake.script(upstream(model), Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]),
                Behaviour(text="It is sunny in Paris."))
    out = run(sdk_venv, server, "tool_round_trip", model=model)
    assert out["first"]["finish_reason"] == "tool_calls"
    assert out["first"]["content"] is None
    assert [(c["name"], c["arguments"]) for c in out["first"]["tool_calls"]] == [("get_weather", {"city": "Paris"})]
    assert out["final"] == {"content": "It is sunny in Paris.", "finish_reason": "stop"}
    call_id = out["first"]["tool_calls"][0]["id"]
    first, second = (request.json for request in fake.requests)
    if model == OPENAI:
        assert first["temperature"] == 0.2 and first["max_tokens"] == 200 and first["tool_choice"] == "auto"
        assistant, tool = second["messages"][2:]
        assert assistant["tool_calls"][0]["id"] == call_id
        assert tool == {"role": "tool", "tool_call_id": call_id, "content": "Sunny in Paris"}
    else:
        assert first["temperature"] == 0.2 and first["max_tokens"] == 200
        assert first["tool_choice"] == {"type": "auto"}
        assert "Use the tools." in json.dumps(second["system"])
        assistant, result = second["messages"][1:]
        assert assistant["role"] == "assistant"
        assert {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}} \
            in assistant["content"]
        assert result["role"] == "user"
        block = result["content"][0]
        assert block["type"] == "tool_result" and block["tool_use_id"] == call_id
        assert "Sunny in Paris" in json.dumps(block["content"])


@pytest.mark.parametrize("model", UPSTREAMS)
def test_stream_helper_assembles_text_and_tools(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                                model: str) -> None:
    text = run(sdk_venv, server, "stream_helper", model=model)
    assert text["content"] == fake.default_text(upstream(model))
    assert {"content.delta", "content.done", "chunk"} <= set(text["events"])
    assert text["total_tokens"] > 0
    fake.script(upstream(model), Behaviour(tool_calls=[("Weather", {"city": "Paris"})]))
    tools = run(sdk_venv, server, "stream_helper", model=model, tools=True)
    assert tools["tool_calls"] == [{"name": "Weather", "parsed": {"city": "Paris"}}]
    assert tools["finish_reason"] == "tool_calls"
    assert "tool_calls.function.arguments.done" in tools["events"]


@pytest.mark.parametrize("model", UPSTREAMS)
def test_parse_with_pydantic_reasks_until_valid(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                                model: str) -> None:
    fake.script(upstream(model), Behaviour(json={"city": "Oslo", "population": "many"}),
                Behaviour(json={"city": "Oslo", "population": 709000}))
    out = run(sdk_venv, server, "parse", model=model)
    assert out["parsed"] == {"city": "Oslo", "population": 709000}
    assert len(fake.requests) == 2


def test_mid_stream_failure_raises_in_the_client(sdk_venv: SdkVenvs, server: ServerProcess,
                                                 fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Once upon a time there was a gateway", fail_after=4))
    out = run(sdk_venv, server, "mid_stream_error", model=OPENAI)
    assert out["raised"] == "APIError"
    assert out["message"] and out["body"]["code"]
    assert out["received"]


def test_fallback_before_first_chunk_through_the_client(sdk_venv: SdkVenvs, server: ServerProcess,
                                                        fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(status=500))
    out = run(sdk_venv, server, "stream_text", model=[OPENAI, ANTHROPIC])
    assert out["text"] == fake.default_text("claude-haiku-4-5")


BAD_INPUTS = [
    ({"model": OPENAI, "messages": []}, "messages"),
    ({"model": OPENAI, "messages": [{"role": "narrator", "content": "x"}]}, "role"),
    ({"model": OPENAI, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "has spaces"}}]}, "tools[0].function.name"),
    ({"model": "nowhere/model-x", "messages": [{"role": "user", "content": "x"}]}, "unknown provider"),
    ({"model": "openai/reject-model", "messages": [{"role": "user", "content": "x"}], "stream": True},
     "reject-model"),
]


def test_bad_input_raises_bad_request_error(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    outcomes = run(sdk_venv, server, "bad_request", cases=[kwargs for kwargs, _ in BAD_INPUTS])
    assert len(outcomes) == len(BAD_INPUTS)
    for outcome, (kwargs, fragment) in zip(outcomes, BAD_INPUTS, strict=True):
        assert outcome["raised"] == "BadRequestError" and outcome["status"] == 400, kwargs
        assert fragment in outcome["message"], outcome


def test_cost_header_body_and_usage_chunk_and_span(sdk_venv: SdkVenvs, server: ServerProcess,
                                                   fake: FakeProvider) -> None:
    out = run(sdk_venv, server, "with_cost", model=OPENAI, name="sdk-chat")
    assert out["body_cost"] > 0 and float(out["header_cost"]) == out["body_cost"]
    assert out["stream_usage_cost"] > 0 and out["stream_usage_total"] > 0
    assert out["stream_last_choices"] == 0
    recorded = get(f"{server.url}/v3/spans/{out['span_id']}").json()["data"]
    assert recorded["name"] == "sdk-chat" and recorded["tags"] == {"suite": "compat"}
    assert recorded["type"] == "chat" and recorded["parent_id"] is None


def test_embeddings_through_the_client(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    out = run(sdk_venv, server, "embeddings", model="openai/text-embedding-3-small")
    assert out["count"] == 2 and out["dims"] == [8, 8]
    assert out["float_dims"] == 8
    assert out["first"] == pytest.approx(out["float_first"], abs=1e-6)  # base64 decoded == float list
    assert out["prompt_tokens"] > 0 and out["model"] == "openai/text-embedding-3-small"

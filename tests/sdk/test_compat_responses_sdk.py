"""Real clients on the Responses surfaces, each in its own venv against `taskgate serve` and the fakes:
the `openai` SDK's `client.responses` on /v3/compat/responses, and the opperai 2.1.1 `Agent` on
/v3/compat/openresponses (spec §8.4)."""

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


def run(sdk_venv: SdkVenvs, venv: str, script: str, server: ServerProcess, scenario: str, **cfg: Any) -> Any:
    config = {"base_url": f"{server.url}/v3/compat", "server_url": server.url, "api_key": server.api_key,
              "scenario": scenario, **cfg}
    done = sdk_venv.run(venv, script, json.dumps(config), server=server)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


def responses(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str, **cfg: Any) -> Any:
    return run(sdk_venv, "openai", "compat_responses.py", server, scenario, **cfg)


def agent(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str, **cfg: Any) -> Any:
    return run(sdk_venv, "opperai-2.1.1", "v3_agent.py", server, scenario, **cfg)


def upstream(model: str) -> str:
    return model.split("/", 1)[1]


# ---- openai `client.responses`


def test_plain_create(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    out = responses(sdk_venv, server, "plain", model=OPENAI)
    assert out["text"] == fake.default_text("gpt-4o-mini")
    assert out["status"] == "completed" and out["types"] == ["message"] and out["id"].startswith("resp_")
    assert out["usage"]["total_tokens"] > 0
    assert fake.requests[-1].json["max_completion_tokens"] == 100


@pytest.mark.parametrize("model", UPSTREAMS)
def test_tool_round_trip(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, model: str) -> None:
    fake.script(upstream(model), Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]),
                Behaviour(text="It is sunny in Paris."))
    out = responses(sdk_venv, server, "tool_round_trip", model=model)
    assert [(c["name"], c["arguments"]) for c in out["calls"]] == [("get_weather", {"city": "Paris"})]
    assert out["final"] == "It is sunny in Paris."
    assert "Sunny in Paris" in json.dumps(fake.requests[-1].json)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_streamed_tool_round_trip(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider, model: str) -> None:
    fake.script(upstream(model), Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]),
                Behaviour(text="It is sunny in Paris.", event_delay_s=0.002))
    out = responses(sdk_venv, server, "stream_tool_round_trip", model=model)
    assert out["calls"][0]["name"] == "get_weather" and out["calls"][0]["arguments"] == {"city": "Paris"}
    assert out["kinds"][:2] == ["response.created", "response.in_progress"]
    assert out["kinds"][-1] == "response.completed"
    assert {"response.output_item.added", "response.function_call_arguments.delta",
            "response.function_call_arguments.done", "response.output_item.done"} <= set(out["kinds"])
    assert out["text"] == out["final"] == "It is sunny in Paris." and out["pieces"] > 1
    assert out["final_status"] == "completed"


def test_parse_reasks_until_valid(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"city": "Oslo", "population": "many"}),
                Behaviour(json={"city": "Oslo", "population": 709000}))
    out = responses(sdk_venv, server, "parse", model=OPENAI)
    assert out["parsed"] == {"city": "Oslo", "population": 709000}
    assert len(fake.requests) == 2


# ---- opperai 2.1.1 Agent


def agent_spans(server: ServerProcess, trace_name: str) -> list[dict[str, Any]]:
    traces = get(f"{server.url}/v3/traces?name={trace_name}").json()["data"]
    assert len(traces) == 1, traces
    return list(get(f"{server.url}/v3/traces/{traces[0]['id']}").json()["data"]["spans"])


@pytest.mark.parametrize("mode", ["run", "stream"])
@pytest.mark.parametrize("model", UPSTREAMS)
def test_agent_calls_a_tool_then_answers(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider,
                                         mode: str, model: str) -> None:
    fake.script(upstream(model), Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]),
                Behaviour(text="It is sunny in Paris.", event_delay_s=0.002))
    name = f"weather-agent-{mode}-{upstream(model)}"
    out = agent(sdk_venv, server, mode, model=model, name=name)
    assert out["output"] == "It is sunny in Paris."
    assert out["tool_calls"] == [{"name": "get_weather", "input": {"city": "Paris"}, "output": "Sunny in Paris"}]
    assert out["iterations"] == 2 and out["usage"]["total_tokens"] > 0
    if mode == "stream":
        assert {"text_delta", "tool_start", "tool_end", "result"} <= set(out["events"])
        assert out["streamed_text"] == "It is sunny in Paris."
    first, second = (request.json for request in fake.requests)
    assert "Sunny in Paris" in json.dumps(second)
    assert "You answer weather questions." in json.dumps(first)
    # The agent's own span, its tool's span, and both model calls, named and parented by its headers.
    spans = agent_spans(server, name)
    calls = [span for span in spans if span["type"] == "responses"]
    assert len(calls) == 2 and {span["name"] for span in calls} == {name}
    root = next(span for span in spans if span["parent_id"] is None)
    assert all(span["parent_id"] == root["id"] for span in calls)


def test_agent_structured_output(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"city": "Oslo"}), Behaviour(json={"city": "Oslo", "population": 7}))
    out = agent(sdk_venv, server, "structured", model=OPENAI, name="structured-agent")
    assert out["output"] == {"city": "Oslo", "population": 7}
    assert len(fake.requests) == 2  # the misfit was asked again by the gateway, not by the agent


def test_agent_sees_an_upstream_failure(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Once upon a time there was a gateway", fail_after=4))
    out = agent(sdk_venv, server, "stream_failure", model=OPENAI, name="failing-agent")
    assert out["raised"] == "AgentError" and "Server error" in out["message"]

"""The real `opperai==2.1.1` client, unchanged, against `taskgate serve` and the fake providers.

Each test runs one scenario of tests/sdk_scripts/v3_client.py in the SDK's own virtualenv and
checks what the client saw, plus what the fake upstream received.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.fakes.provider import Behaviour, FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str, **cfg: Any) -> Any:
    proc = sdk_venv.run("opperai-2.1.1", "v3_client.py", json.dumps({"scenario": scenario, **cfg}), server=server)
    assert proc.returncode == 0, f"{proc.stderr}\n--- server ---\n{server.stderr_text()[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def system_and_user(fake: FakeProvider) -> tuple[list[dict[str, Any]], str]:
    messages = fake.requests[-1].json["messages"]
    return messages, messages[-1]["content"]


def test_call_with_pydantic_models(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"answer": "Paris", "confidence": 0.9}))
    out = run(sdk_venv, server, "call_pydantic", name=unique("pyd/answer"))
    assert out["type"] == "Answer"
    assert out["data"] == {"answer": "Paris", "confidence": 0.9}
    meta = out["meta"]
    assert meta["function_name"].startswith("pyd/answer")
    assert meta["script_cached"] is False and meta["llm_calls"] == 1 and meta["status"] == "completed"
    assert meta["models_used"] == ["openai/gpt-4o-mini"]
    assert meta["usage"]["input_tokens"] > 0 and meta["usage"]["output_tokens"] > 0
    assert isinstance(meta["cost"], float) and meta["cost"] > 0
    sent = fake.requests[-1].json
    assert sent["response_format"]["type"] == "json_schema"
    assert "Capital of France?" in sent["messages"][-1]["content"]


def test_call_with_a_plain_string(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Hi there"))
    out = run(sdk_venv, server, "call_string", name=unique("plain"), input="Say hi")
    assert out["data"] == "Hi there"
    assert out["meta"]["tool_calls"] == [] and out["meta"]["trace_uuid"]
    messages, user = system_and_user(fake)
    assert user == "Say hi" and messages[0] == {"role": "system", "content": "You are a helpful assistant"}


def test_stream_loop(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("gpt-4o-mini", Behaviour(text="Hello streaming world"))
    chunks = run(sdk_venv, server, "stream", name=unique("streamer"), input="Say hello")["chunks"]
    kinds = [chunk["kind"] for chunk in chunks]
    assert kinds[-2:] == ["done", "complete"] and set(kinds[:-2]) == {"content"}
    assert "".join(chunk["delta"] for chunk in chunks[:-2]) == "Hello streaming world"
    assert chunks[-2]["usage"]["output_tokens"] > 0
    assert chunks[-1]["data"] == "Hello streaming world"
    assert chunks[-1]["meta"]["llm_calls"] == 1 and chunks[-1]["meta"]["function_name"].startswith("streamer")


def test_stream_with_output_schema(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"a": "b"}))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    chunks = run(sdk_venv, server, "stream", name=unique("streamer-json"), input="x", output_schema=schema)["chunks"]
    text = "".join(chunk["delta"] for chunk in chunks if chunk["kind"] == "content")
    assert json.loads(text) == {"a": "b"}
    assert chunks[-1] == {"kind": "complete", "data": {"a": "b"}, "meta": chunks[-1]["meta"]}


def test_tools_in_a_call(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("gpt-4o-mini", Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]))
    out = run(sdk_venv, server, "tools_call", name=unique("weather"))
    assert out["data"] is None
    (call,) = out["meta"]["tool_calls"]
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"} and call["id"]
    (tool,) = fake.requests[-1].json["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "get_weather"
    assert tool["function"]["parameters"]["required"] == ["city"]


def test_tools_in_a_stream(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("gpt-4o-mini", Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]))
    chunks = run(sdk_venv, server, "tools_stream", name=unique("weather-stream"))["chunks"]
    starts = [chunk for chunk in chunks if chunk["kind"] == "tool_call_start"]
    assert len(starts) == 1 and starts[0]["name"] == "get_weather" and starts[0]["index"] == 0 and starts[0]["id"]
    args = "".join(chunk["args"] for chunk in chunks if chunk["kind"] == "tool_call_delta")
    assert json.loads(args) == {"city": "Paris"}
    assert [chunk["kind"] for chunk in chunks[-2:]] == ["done", "complete"]
    assert chunks[-1]["data"] is None
    assert chunks[-1]["meta"]["tool_calls"][0]["arguments"] == {"city": "Paris"}


def test_trace_nests_two_calls(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    trace_name = unique("pipeline")
    out = run(sdk_venv, server, "trace", trace_name=trace_name, name=unique("step"))
    span = out["span"]
    assert out["trace_uuids"] == [span["trace_id"], span["trace_id"]]
    trace = out["trace"]
    assert trace["id"] == span["trace_id"] and trace["name"] == trace_name and trace["span_count"] == 3
    root, *children = sorted(trace["spans"], key=lambda s: s["parent_id"] is not None)
    assert root["id"] == span["id"] and root["parent_id"] is None and root["end_time"]
    assert [child["parent_id"] for child in children] == [span["id"], span["id"]]
    assert all(child["trace_id"] == span["trace_id"] for child in children)


def test_functions_and_revisions(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    # 2.1.1's `functions.list()` reads only the first page (100, by name) and the session's server
    # holds many functions by now: a name that sorts first keeps this one on it.
    name = unique("0-team/fn")
    out = run(sdk_venv, server, "functions", name=name)
    assert out["script_cached"] == [False, True]
    (listed,) = out["listed"]
    assert listed["name"] == name and listed["has_script"] is True and listed["schema_hash"]
    assert out["details"]["source"] == "Reply briefly." and out["details"]["generated_at"]
    assert out["updated_source"] == "Reply in French."
    assert out["after_update_meta"]["script_cached"] is True
    assert fake.requests[-1].json["messages"][0]["content"] == "Reply in French."
    assert out["revisions"] == [{"revision_id": 1, "is_current": False}, {"revision_id": 2, "is_current": True}]
    assert out["revision_one"] == {"revision_id": 1, "source": "Reply briefly."}
    assert out["reverted_source"] == "Reply briefly."
    assert out["revisions_after"][-1]["is_current"] is True and len(out["revisions_after"]) == 3
    assert out["gone"] == "NotFoundError"


def test_examples_shape_a_later_call(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("gpt-4o-mini", Behaviour(text='{"label": "cats"}'))
    out = run(sdk_venv, server, "examples", name=unique("classify"))
    assert out["one"]["uuid"] and out["one"]["tag"] == "golden"
    assert [e["output"]["label"] for e in out["batch"]] == ["dogs", "weather", "cats", "cats"]
    assert len(out["listed"]) == 5
    assert [e["input"]["text"] for e in out["golden"]] == ["stock prices fell sharply"]
    assert len(out["page"]) == 2
    assert {e["uuid"] for e in out["after_delete"]} == {e["uuid"] for e in out["listed"]} - {out["batch"][0]["uuid"]}
    assert out["call_data"] == '{"label": "cats"}'
    messages = fake.requests[-1].json["messages"]
    shown = [json.loads(m["content"])["text"] for m in messages[1:-1] if m["role"] == "user"]
    answers = [json.loads(m["content"])["label"] for m in messages[1:-1] if m["role"] == "assistant"]
    # The default three; the two examples about cats rank first although they were stored last,
    # and the deleted one is gone. The third slot is filled with another stored example.
    assert len(shown) == 3 and answers[:2] == ["cats", "cats"]
    assert set(shown[:2]) == {"the cat sat on the mat", "a kitten chased the cat toy"}
    assert "dogs bark at the mailman" not in shown
    assert json.loads(messages[-1]["content"]) == {"text": "my cat likes the mat"}


def test_spans_and_traces(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    trace_name = unique("manual-trace")
    out = run(sdk_venv, server, "spans_traces", trace_name=trace_name)
    root, child = out["root"], out["child"]
    assert root["name"] == trace_name and root["trace_id"]
    assert child["trace_id"] == root["trace_id"] and child["parent_id"] == root["id"] and child["type"] == "tool"
    fetched = out["fetched"]
    assert fetched["output"] == "child output" and fetched["end_time"].startswith("2030-01-01T00:00:01")
    assert fetched["status"] == "ok" and fetched["parent_id"] == root["id"]
    assert out["fetched_root"] == {"meta": {"k": "v"}, "tags": {"team": "a"}, "metadata": {"m": 1},
                                   "input": "root input"}
    assert out["listed"] == [{"id": root["trace_id"], "name": trace_name, "span_count": 2}]
    assert out["list_meta"]["total_count"] == 1 and out["list_meta"]["limit"] == 100
    assert out["trace"] == {"id": root["trace_id"], "name": trace_name, "span_count": 2,
                            "span_names": sorted(["child", trace_name])}
    assert out["after_span_delete"] == 1
    assert out["trace_gone"] == "NotFoundError"


def test_models_list(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    models = run(sdk_venv, server, "models", provider="openai", q="gpt-4o-mini")["models"]
    ids = [m["id"] for m in models]
    assert "openai/gpt-4o-mini" in ids and all(m["provider"] == "openai" for m in models)
    mini = next(m for m in models if m["id"] == "openai/gpt-4o-mini")
    assert mini["type"] == "llm" and mini["model_id"] == "gpt-4o-mini" and mini["provider_display_name"]
    assert mini["pricing"]["input"][0] > 0 and mini["context_window"] > 0
    anthropic = run(sdk_venv, server, "models", provider="anthropic")["models"]
    assert anthropic and all(m["id"].startswith("anthropic/") for m in anthropic)


def test_every_error_class(server: ServerProcess, fake: FakeProvider, sdk_venv: SdkVenvs) -> None:
    fake.script("rl-a", Behaviour(status=429))
    fake.script("rl-b", Behaviour(status=429))
    out = run(sdk_venv, server, "errors", name=unique("errs"), rate_limited_model=["openai/rl-a", "anthropic/rl-b"])
    assert out["bad_request"]["class"] == "BadRequestError" and out["bad_request"]["code"] == "bad_request"
    assert out["bad_schema"]["class"] == "BadRequestError"
    assert out["unauthorized"]["class"] == "AuthenticationError"
    assert out["not_found"]["class"] == "NotFoundError" and "not found" in out["not_found"]["message"]
    assert out["not_found_parent"]["class"] == "NotFoundError"
    assert out["rate_limited"]["class"] == "RateLimitError" and out["rate_limited"]["status"] == 429
    assert out["stream_not_found"]["class"] == "NotFoundError"

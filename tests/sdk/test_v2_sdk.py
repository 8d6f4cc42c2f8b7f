"""The real `opperai==1.7.2` client, in its own virtualenv, against a real `taskgate serve` (seeds 000, 002, 003)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.http_client import get

pytestmark = pytest.mark.sdk


def run(sdk_venv, server, scenario):
    result = sdk_venv.run("opperai-1.7.2", "v2_sdk.py", scenario, server=server)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_seed_002_get_capital_with_pydantic_schemas(sdk_venv, server, fake):
    seen = run(sdk_venv, server, "get_capital")
    assert seen["message"] is None
    assert isinstance(seen["json_payload"]["capital"], str)
    sent = fake.requests[-1].json
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["capital"]
    assert "country" in sent["messages"][0]["content"]  # the input schema is described to the model
    assert seen["usage"]["total_tokens"] > 0 and seen["cost"]["total"] > 0


def test_seed_003_add_numbers_with_examples_tags_parent_and_configuration(sdk_venv, server, fake):
    fake.script("gpt-4o-mini", Behaviour(json={"sum": 9}))
    seen = run(sdk_venv, server, "add_numbers")
    assert seen["json_payload"] == {"sum": 9}
    messages = fake.requests[-1].json["messages"]
    assert {"role": "assistant", "content": '{"sum":4}'} in messages
    span = get(f"{server.url}/v3/spans/{seen['span_id']}").json()["data"]
    assert span["parent_id"] == "123e4567-e89b-12d3-a456-426614174000"
    assert span["tags"] == {"project": "project_456", "user": "company_123"}


def test_seed_000_creative_writer_stream_text_equals_the_span_output(sdk_venv, server, fake):
    seen = run(sdk_venv, server, "creative_writer")
    assert seen["content_type"].startswith("text/event-stream")
    assert seen["text"] == "Hello from gpt-4o-mini! This is a fake reply."
    span = get(f"{server.url}/v3/spans/{seen['span_id']}").json()["data"]
    assert span["output"] == seen["text"]


def test_seed_003_stream_with_output_schema_gives_json_paths(sdk_venv, server, fake):
    seen = run(sdk_venv, server, "add_numbers_stream")
    events = seen["events"]
    assert events[0]["span_id"]
    deltas = [e for e in events[1:] if e.get("chunk_type") == "json"]
    assert [(e["json_path"], e["delta"]) for e in deltas] == [("response.sum", deltas[0]["delta"])]
    assert isinstance(deltas[0]["delta"], int)
    assert jsonschema_rs.Draft202012Validator({"type": "integer"}).is_valid(deltas[0]["delta"])


def test_typed_error_classes(sdk_venv, server, fake):
    seen = run(sdk_venv, server, "error_classes")
    assert seen == {"400": "BadRequestError", "401": "UnauthorizedError", "404": "NotFoundError",
                    "422": "RequestValidationError"}


def test_the_clients_openai_helper_round_trips_text_tools_and_errors(sdk_venv, server, fake):
    """opperai 1.7.2's `opper.openai.create_chat_completion` posts to /v2/openai/chat/completions."""
    fake.script("claude-haiku-4-5", Behaviour(tool_calls=[("get_weather", {"city": "Paris"})]))
    seen = run(sdk_venv, server, "openai_helper")
    text = seen["text"]
    assert text["object"] == "chat.completion" and text["choices"][0]["finish_reason"] == "stop"
    assert text["choices"][0]["message"]["content"] == fake.default_text("gpt-4o-mini")
    assert seen["total_tokens"] > 0 and text["cost"] > 0
    assert seen["tools"]["choices"][0]["finish_reason"] == "tool_calls"
    [tool_call] = seen["tool_calls"]
    assert tool_call["id"] and tool_call["name"] == "get_weather"
    assert json.loads(tool_call["arguments"]) == {"city": "Paris"}
    assert fake.requests[-1].path.endswith("/v1/messages")  # translated for Anthropic; the bad request sent nothing
    assert fake.requests[-1].json["tool_choice"] == {"type": "any"}
    assert seen["bad_request"]["type"] == "BadRequestError" and "messages" in str(seen["bad_request"]["detail"])
    span = get(f"{server.url}/v3/spans/{span_of(text['id'])}").json()["data"]
    assert span["name"] == "chat" and span["output"] == text["choices"][0]["message"]["content"]
    named = get(f"{server.url}/v3/spans/{span_of(seen['tools']['id'])}").json()["data"]
    assert named["name"] == "weather-helper"  # the X-Opper-Name header the helper was given


def span_of(completion_id: str) -> str:
    """The span id a completion id is made from (`chatcmpl-` and the id without its hyphens)."""
    hex_id = completion_id.removeprefix("chatcmpl-")
    return "-".join((hex_id[:8], hex_id[8:12], hex_id[12:16], hex_id[16:20], hex_id[20:]))


def test_xml_mode_through_the_client(sdk_venv: SdkVenvs, server: ServerProcess, fake: FakeProvider) -> None:
    answer = ("<response><thoughts>Two words: one, two &amp; done.</thoughts><answer>2</answer>"
              "<tags><item>count</item></tags></response>")
    fake.script("gpt-4o-mini", Behaviour(text="<response><answer>two</answer>"), Behaviour(text=answer),
                Behaviour(text=answer))
    seen = run(sdk_venv, server, "xml_mode")
    payload = {"thoughts": "Two words: one, two & done.", "answer": 2, "tags": ["count"]}
    assert seen["json_payload"] == payload and seen["verdict"] == payload
    assert list(seen["json_payload"]) == ["thoughts", "answer", "tags"]
    assert len(fake.requests) == 3  # the first answer was asked again
    sent = fake.requests[0].json
    assert "response_format" not in sent and "<thoughts>" in sent["messages"][0]["content"]
    deltas: dict[str, Any] = {}
    for e in seen["events"][1:]:
        if e.get("chunk_type") == "json":  # text fragments glued per path, as a UI would
            deltas[e["json_path"]] = deltas.get(e["json_path"], "") + e["delta"] if isinstance(e["delta"], str) \
                else e["delta"]
    assert deltas == {"response.thoughts": payload["thoughts"], "response.answer": 2, "response.tags[0]": "count"}
def test_json_payload_keys_come_in_the_order_of_the_callers_pydantic_model(sdk_venv, server, fake):
    seen = run(sdk_venv, server, "reasoned_answer")
    payload = seen["json_payload"]
    assert list(payload) == ["thoughts", "steps", "answer"]
    assert list(payload["steps"][0]) == ["why", "action"]
    sent = fake.requests[-1].json["response_format"]["json_schema"]
    assert sent["strict"] is True
    assert list(sent["schema"]["properties"]) == ["thoughts", "steps", "answer"]
    assert list(sent["schema"]["$defs"]["Step"]["properties"]) == ["why", "action"]

"""Seed examples run with the real opperai==1.7.2 client; prints one JSON document with what it saw.

Usage: v2_sdk.py <scenario>. The server URL and key come from TASKGATE_URL / OPPER_HTTP_BEARER.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

from opperai import Opper, errors, models
from pydantic import BaseModel, Field

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")


def dump(value: object) -> None:
    print(json.dumps(value, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o)))


class CountryInput(BaseModel):
    country: str = Field(description="The name of the country")


class CapitalOutput(BaseModel):
    capital: str = Field(description="The capital city of the country")
    population: Optional[int] = Field(None, description="The population of the capital city")  # noqa: UP045


def get_capital() -> None:
    """Seed 002, verbatim apart from the client's construction."""
    response = opper.call(
        name="get_capital",
        instructions="What is the capital of the provided country? Also include the population if you know it.",
        input_schema=CountryInput,
        output_schema=CapitalOutput,
        input=CountryInput(country="Sweden"),
    )
    dump({"span_id": response.span_id, "json_payload": response.json_payload, "message": response.message,
          "usage": response.usage, "cost": response.cost, "cached": response.cached})


ADD_INPUT_SCHEMA = {
    "properties": {"x": {"title": "X", "type": "integer"}, "y": {"title": "Y", "type": "integer"}},
    "required": ["x", "y"], "title": "OpperInputExample", "type": "object",
}
ADD_OUTPUT_SCHEMA = {
    "properties": {"sum": {"title": "Sum", "type": "integer"}},
    "required": ["sum"], "title": "OpperOutputExample", "type": "object",
}
PARENT = "123e4567-e89b-12d3-a456-426614174000"
ADD_ARGS = dict(
    name="add_numbers", instructions="Calculate the sum of two numbers", input_schema=ADD_INPUT_SCHEMA,
    output_schema=ADD_OUTPUT_SCHEMA, input={"x": 4, "y": 5},
    examples=[{"input": {"x": 1, "y": 3}, "output": {"sum": 4}, "comment": "Adds two numbers"}],
    parent_span_id=PARENT, tags={"project": "project_456", "user": "company_123"},
    # The seed's `models.FunctionCallConfiguration(beta_evaluation=models.EvaluationConfig(...))` is from a
    # newer docs page; 1.7.2 names the same thing FunctionCallConfigurationInput and types beta_evaluation as Any.
    configuration=models.FunctionCallConfigurationInput(beta_evaluation={"scorers": "base"}),
)


def ensure_parent() -> None:
    """The seed's parent span id must exist in this project: create it with the client's spans API."""
    try:
        opper.spans.get(span_id=PARENT)
    except errors.NotFoundError:
        opper.spans.create(name="seed-parent", id=PARENT)


def add_numbers() -> None:
    """Seed 003 `call`, with its examples, tags, parent_span_id and configuration."""
    ensure_parent()
    res = opper.call(**ADD_ARGS)
    dump({"span_id": res.span_id, "json_payload": res.json_payload, "usage": res.usage, "cost": res.cost})


def add_numbers_stream() -> None:
    """Seed 003 `stream`, collecting every event."""
    ensure_parent()
    res = opper.stream(**ADD_ARGS)
    events = []
    with res.result as event_stream:  # the seed's `with res` predates 1.7.2's response wrapper
        for event in event_stream:
            events.append(event.data.model_dump())
    dump({"events": events})


def creative_writer() -> None:
    """Seed 000: prints deltas; we also return what was gathered and the span id."""
    stream_response = opper.stream(
        name="creative_writer",
        instructions="Write a short story about a robot learning to paint. Make it engaging and creative.",
        input={"topic": "robot artist", "length": "short"},
        model="openai/gpt-4o-mini",
    )
    gathered, span_id = [], None
    for event in stream_response.result:
        if hasattr(event, "data") and hasattr(event.data, "delta") and event.data.delta:
            print(event.data.delta, end="", flush=True, file=sys.stderr)
            gathered.append(event.data.delta)
        if event.data.span_id:
            span_id = event.data.span_id
    print("\n", file=sys.stderr)
    dump({"text": "".join(gathered), "span_id": span_id,
          "content_type": stream_response.headers.get("content-type")[0]})


def error_classes() -> None:
    """Each status maps to the client's typed error class."""
    seen = {}
    try:
        opper.call(name="bad", input="x", output_schema={"type": "nope"})
    except errors.BadRequestError as exc:
        seen["400"] = type(exc).__name__
    try:
        Opper(http_bearer="wrong-key", server_url=f"{URL}/v2").call(name="x", input="x")
    except errors.UnauthorizedError as exc:
        seen["401"] = type(exc).__name__
    try:
        opper.call(name="x", input="x", parent_span_id="00000000-0000-4000-8000-000000000000")
    except errors.NotFoundError as exc:
        seen["404"] = type(exc).__name__
    try:
        opper.call(name="   ", input="x")  # the client accepts a blank name; the server does not
    except errors.RequestValidationError as exc:
        seen["422"] = type(exc).__name__
    dump(seen)


def openai_helper() -> None:
    """The 1.7.2 client's own OpenAI-compatible helper (`/v2/openai/chat/completions`, non-streaming)."""
    text = opper.openai.create_chat_completion(request={
        "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}],
    })
    tools = opper.openai.create_chat_completion(request={
        "model": "anthropic/claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
    }, http_headers={"X-Opper-Name": "weather-helper"})
    # the client's own dump leaves optional members (`usage`, `tool_calls`) out: they are read from the models
    calls = tools.choices[0].message.tool_calls or []
    seen: dict[str, object] = {
        "text": text.model_dump(by_alias=True), "tools": tools.model_dump(by_alias=True),
        "total_tokens": text.usage.total_tokens if text.usage else None,
        "tool_calls": [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in calls],
    }
    try:
        opper.openai.create_chat_completion(request={"model": "openai/gpt-4o-mini", "messages": []})
    except errors.BadRequestError as exc:
        seen["bad_request"] = {"type": exc.data.type, "detail": exc.data.detail}
    dump(seen)


class Verdict(BaseModel):
    thoughts: str = Field(description="Reason step by step first")
    answer: int
    tags: list[str] = Field(default_factory=list)


XML_ARGS = dict(
    name="xml_verdict", instructions="Count the words.", input="one two", output_schema=Verdict,
    model="openai/gpt-4o-mini",
    configuration=models.FunctionCallConfigurationInput(beta_invocation_xml_mode_enabled=True),
)


def xml_mode() -> None:
    """`beta.invocation.xml_mode.enabled` on, as the client sends it: a call, then a stream."""
    res = opper.call(**XML_ARGS)
    events = []
    with opper.stream(**XML_ARGS).result as event_stream:
        for event in event_stream:
            events.append(event.data.model_dump())
    dump({"json_payload": res.json_payload, "verdict": Verdict.model_validate(res.json_payload).model_dump(),
          "events": events})


class Step(BaseModel):
    why: str
    action: str


class ReasonedAnswer(BaseModel):
    """Reasoning fields before the answer, as callers write them so that the model reasons first."""

    thoughts: str
    steps: list[Step]
    answer: str


def reasoned_answer() -> None:
    """A pydantic output schema whose field order is not alphabetical, at the top and in a list item."""
    response = opper.call(name="reasoned_answer", instructions="Answer after thinking it through.",
                          output_schema=ReasonedAnswer, input="What is the capital of Sweden?")
    dump({"json_payload": response.json_payload})


SCENARIOS = {f.__name__: f for f in (get_capital, add_numbers, add_numbers_stream, creative_writer, error_classes,
                                     openai_helper, xml_mode, reasoned_answer)}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()

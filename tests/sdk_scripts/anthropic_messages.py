"""Runs inside the `anthropic` SDK virtualenv against `taskgate serve`; prints one JSON result.

Usage: python anthropic_messages.py '<json config>' where the config holds base_url, api_key,
scenario, model and the scenario's own fields. Each scenario is the client code a user would write.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anthropic
from anthropic import Anthropic
from pydantic import BaseModel

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


class City(BaseModel):
    city: str
    population: int


def _blocks(message: Any) -> list[dict[str, Any]]:
    return [block.model_dump(exclude_none=True) for block in message.content]


def _message(message: Any) -> dict[str, Any]:
    return {"id": message.id, "model": message.model, "content": _blocks(message),
            "stop_reason": message.stop_reason, "usage": message.usage.model_dump()}


def create_text(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    raw = client.messages.with_raw_response.create(
        model=cfg["model"], max_tokens=200, system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": "Write a haiku about Tuesday."}], extra_body={"temperature": 0.2},
        stop_sequences=["\n\n\n"], extra_headers={"X-Opper-Name": "sdk-messages"},
    )
    return {**_message(raw.parse()), "span_id": raw.headers.get("x-opper-span-id"),
            "cost": raw.headers.get("x-opper-cost")}


def tool_round_trip(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    """The documented tool loop: call, run the tool, send its result back."""
    first = client.messages.create(model=cfg["model"], max_tokens=200, tools=[WEATHER_TOOL],
                                   tool_choice={"type": "auto"}, messages=QUESTION)
    use = next(block for block in first.content if block.type == "tool_use")
    final = client.messages.create(
        model=cfg["model"], max_tokens=200, tools=[WEATHER_TOOL], messages=[
            *QUESTION,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}]},
        ],
    )
    return {"first": _message(first), "final": _message(final)}


def stream_text(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    pieces: list[str] = []
    kinds: list[str] = []
    with client.messages.stream(model=cfg["model"], max_tokens=200, messages=QUESTION) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "text":
                pieces.append(event.text)
        final = stream.get_final_message()
    return {"pieces": pieces, "events": kinds, "final": _message(final)}


def stream_tools(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    kinds: list[str] = []
    with client.messages.stream(model=cfg["model"], max_tokens=200, tools=[WEATHER_TOOL],
                                tool_choice={"type": "any"}, messages=QUESTION) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    return {"events": kinds, "final": _message(final)}


def create_stream_raw(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    """`create(stream=True)`: the raw events, as lower-level code reads them."""
    events = [event.model_dump(exclude_none=True) for event in
              client.messages.create(model=cfg["model"], max_tokens=200, messages=QUESTION, stream=True)]
    return {"events": events}


def stream_error(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    pieces: list[str] = []
    try:
        with client.messages.stream(model=cfg["model"], max_tokens=200, messages=QUESTION) as stream:
            pieces.extend(stream.text_stream)
    except anthropic.APIStatusError as exc:
        return {"raised": type(exc).__name__, "message": exc.message, "body": exc.body, "received": pieces}
    return {"raised": None, "received": pieces}


def parse(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    """`messages.parse` with a pydantic model: structured output, checked on both sides."""
    message = client.messages.parse(model=cfg["model"], max_tokens=200, messages=QUESTION, output_format=City)
    return {"parsed": message.parsed_output.model_dump() if message.parsed_output else None,
            "stop_reason": message.stop_reason}


def stop_sequence(client: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    """`stop_sequences`, and which one ended the answer, created and streamed."""
    kwargs: dict[str, Any] = {"model": cfg["model"], "max_tokens": 200, "messages": QUESTION,
                              "stop_sequences": cfg["stop_sequences"]}
    created = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    return {name: {"content": _blocks(message), "stop_reason": message.stop_reason,
                   "stop_sequence": message.stop_sequence}
            for name, message in (("created", created), ("streamed", streamed))}


def bad_request(client: Anthropic, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    outcomes = []
    for kwargs in cfg["cases"]:
        try:
            client.messages.create(**kwargs)
            outcomes.append({"raised": None})
        except anthropic.APIStatusError as exc:
            outcomes.append({"raised": type(exc).__name__, "status": exc.status_code, "message": exc.message,
                             "body": exc.body})
    return outcomes


def wrong_key(_: Anthropic, cfg: dict[str, Any]) -> dict[str, Any]:
    client = Anthropic(base_url=cfg["base_url"], api_key="not-a-key", max_retries=0)
    try:
        client.messages.create(model=cfg["model"], max_tokens=10, messages=QUESTION)
    except anthropic.AuthenticationError as exc:
        return {"raised": type(exc).__name__, "status": exc.status_code, "body": exc.body}
    return {"raised": None}


SCENARIOS = {scenario.__name__: scenario for scenario in (
    create_text, tool_round_trip, stream_text, stream_tools, create_stream_raw, stream_error, parse, stop_sequence,
    bad_request, wrong_key,
)}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    client = Anthropic(base_url=cfg["base_url"], api_key=cfg["api_key"], max_retries=0)
    print(json.dumps(SCENARIOS[cfg["scenario"]](client, cfg), default=str))


if __name__ == "__main__":
    main()

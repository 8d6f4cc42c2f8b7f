"""Runs inside the `openai` SDK virtualenv: `client.responses` against `taskgate serve`; prints one JSON result.

Usage: python compat_responses.py '<json config>' with base_url, api_key, scenario and model. Each
scenario is the client code a user would write with the Responses API.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from compat_openai import CityAnswer  # beside this script
from openai import OpenAI

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def weather(arguments: str) -> str:
    return f"Sunny in {json.loads(arguments)['city']}"


def plain(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    response = client.responses.create(model=cfg["model"], instructions="Be brief.", input="Say hello.",
                                       max_output_tokens=100)
    return {"id": response.id, "status": response.status, "text": response.output_text,
            "usage": response.usage.model_dump() if response.usage else None,
            "types": [item.type for item in response.output]}


def tool_round_trip(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """The function-calling guide's loop: run the calls, append their outputs, ask again."""
    items: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.responses.create(model=cfg["model"], input=items, tools=[WEATHER_TOOL])  # type: ignore[arg-type]
    items += first.output
    calls = [item for item in first.output if item.type == "function_call"]
    for call in calls:
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": weather(call.arguments)})
    final = client.responses.create(model=cfg["model"], input=items, tools=[WEATHER_TOOL])  # type: ignore[arg-type]
    return {"calls": [{"name": c.name, "arguments": json.loads(c.arguments), "call_id": c.call_id} for c in calls],
            "final": final.output_text}


def stream_tool_round_trip(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """Streamed: gather each call from its events, answer it, then stream the final text."""
    items: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    kinds: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    completed = None
    stream = client.responses.create(model=cfg["model"], input=items, tools=[WEATHER_TOOL],  # type: ignore[arg-type]
                                     stream=True)
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_item.added" and event.item.type == "function_call":
            calls[event.output_index] = {"call_id": event.item.call_id, "name": event.item.name, "arguments": ""}
        elif event.type == "response.function_call_arguments.delta":
            calls[event.output_index]["arguments"] += event.delta
        elif event.type == "response.completed":
            completed = event.response
    assert completed is not None
    items += completed.output
    for call in calls.values():
        items.append({"type": "function_call_output", "call_id": call["call_id"], "output": weather(call["arguments"])})
    text = []
    with client.responses.stream(model=cfg["model"], input=items, tools=[WEATHER_TOOL]) as helper:  # type: ignore[arg-type]
        for event in helper:
            if event.type == "response.output_text.delta":
                text.append(event.delta)
        final = helper.get_final_response()
    return {"kinds": kinds, "calls": [{**c, "arguments": json.loads(c["arguments"])} for c in calls.values()],
            "pieces": len(text), "text": "".join(text), "final": final.output_text, "final_status": final.status}


def parse(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    response = client.responses.parse(model=cfg["model"], input="Biggest city in Norway?", text_format=CityAnswer)
    parsed = response.output_parsed
    return {"parsed": parsed.model_dump() if parsed else None}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    client = OpenAI(base_url=cfg["base_url"], api_key=cfg["api_key"], max_retries=0)
    print(json.dumps(globals()[cfg["scenario"]](client, cfg)))


if __name__ == "__main__":
    main()

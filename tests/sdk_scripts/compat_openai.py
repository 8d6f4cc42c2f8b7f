"""Runs inside the `openai` SDK virtualenv against `taskgate serve`; prints one JSON result.

Usage: python compat_openai.py '<json config>' where the config holds base_url, api_key, scenario,
model and the scenario's own fields. Each scenario is the client code a user would write.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

import openai
from openai import OpenAI
from pydantic import BaseModel

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class CityAnswer(BaseModel):
    city: str
    population: int


def stream_text(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """The seed 004 loop, verbatim apart from collecting instead of printing."""
    stream = client.chat.completions.create(
        model=cfg["model"],
        messages=[{"role": "user", "content": "Write a haiku about Tuesday."}],
        stream=True,
    )
    pieces = []
    for chunk in stream:
        delta = chunk.choices[0].delta.content
        if delta:
            pieces.append(delta)
    return {"text": "".join(pieces), "pieces": len(pieces)}


def stream_tools(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """The seed 004 tool-call loop, gathering arguments by index."""
    stream = client.chat.completions.create(
        model=cfg["model"],
        messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    args_by_index: dict[int, str] = defaultdict(str)
    tool_call_by_index: dict[int, Any] = {}
    first_by_index: dict[int, Any] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for tc in choice.delta.tool_calls or []:
            first_by_index.setdefault(tc.index, tc)
            tool_call_by_index[tc.index] = tc
            if tc.function and tc.function.arguments:
                args_by_index[tc.index] += tc.function.arguments
    calls = []
    for index, tc in sorted(first_by_index.items()):
        if tc.function and tc.function.name:
            calls.append({"index": index, "id": tc.id, "name": tc.function.name,
                          "arguments": json.loads(args_by_index[index])})
    return {"calls": calls, "finish_reason": finish}


def tool_round_trip(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """Assistant tool_calls, then a tool message, then the final answer."""
    messages: list[Any] = [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    first = client.chat.completions.create(model=cfg["model"], messages=messages, tools=[WEATHER_TOOL],
                                           tool_choice="auto", temperature=0.2, max_tokens=200)
    message = first.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        city = json.loads(call.function.arguments)["city"]
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"Sunny in {city}"})
    final = client.chat.completions.create(model=cfg["model"], messages=messages, tools=[WEATHER_TOOL])
    return {
        "first": {"content": message.content, "finish_reason": first.choices[0].finish_reason,
                  "tool_calls": [{"id": c.id, "name": c.function.name, "arguments": json.loads(c.function.arguments)}
                                 for c in message.tool_calls or []]},
        "final": {"content": final.choices[0].message.content, "finish_reason": final.choices[0].finish_reason},
    }


def stream_helper(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """`client.chat.completions.stream()`, which assembles text and parsed tool arguments itself."""
    kinds = set()
    with client.chat.completions.stream(
        model=cfg["model"],
        messages=[{"role": "user", "content": cfg.get("prompt", "Weather in Paris?")}],
        tools=[openai.pydantic_function_tool(Weather)] if cfg.get("tools") else openai.NOT_GIVEN,
        stream_options={"include_usage": True},
    ) as stream:
        for event in stream:
            kinds.add(event.type)
        final = stream.get_final_completion()
    message = final.choices[0].message
    return {
        "content": message.content,
        "tool_calls": [{"name": c.function.name, "parsed": c.function.parsed_arguments.model_dump()
                        if c.function.parsed_arguments else None} for c in message.tool_calls or []],
        "finish_reason": final.choices[0].finish_reason,
        "events": sorted(kinds),
        "total_tokens": final.usage.total_tokens if final.usage else None,
    }


class Weather(BaseModel):
    city: str


def parse(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """`client.chat.completions.parse()` with a pydantic model as response_format."""
    completion = client.chat.completions.parse(
        model=cfg["model"],
        messages=[{"role": "user", "content": "The biggest city in Norway?"}],
        response_format=CityAnswer,
    )
    parsed = completion.choices[0].message.parsed
    return {"parsed": parsed.model_dump() if parsed else None, "content": completion.choices[0].message.content}


def mid_stream_error(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    received = []
    try:
        for chunk in client.chat.completions.create(
            model=cfg["model"], messages=[{"role": "user", "content": "Tell a long story."}], stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    except openai.APIError as exc:
        return {"raised": type(exc).__name__, "message": exc.message, "body": exc.body, "received": "".join(received)}
    return {"raised": None, "received": "".join(received)}


def bad_request(client: OpenAI, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """One outcome per entry of `cases` (keyword arguments to create), in one process to save start-ups."""
    outcomes: list[dict[str, Any]] = []
    for kwargs in cfg["cases"]:
        try:
            client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            outcomes.append({"raised": type(exc).__name__, "status": exc.status_code, "message": exc.message})
        else:
            outcomes.append({"raised": None})
    return outcomes


def with_cost(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """The X-Opper-Cost header and the `cost` body extra, read the way a client would."""
    raw = client.chat.completions.with_raw_response.create(
        model=cfg["model"], messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Opper-Name": cfg["name"]},
        extra_body={"tags": {"suite": "compat"}},
    )
    completion = raw.parse()
    chunks = list(client.chat.completions.create(
        model=cfg["model"], messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    ))
    return {
        "header_cost": raw.headers.get("x-opper-cost"),
        "span_id": raw.headers.get("x-opper-span-id"),
        "body_cost": (completion.model_extra or {}).get("cost"),
        "usage_total": completion.usage.total_tokens if completion.usage else None,
        "stream_usage_cost": (chunks[-1].model_extra or {}).get("cost"),
        "stream_usage_total": chunks[-1].usage.total_tokens if chunks[-1].usage else None,
        "stream_last_choices": len(chunks[-1].choices),
    }


def embeddings(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    default = client.embeddings.create(model=cfg["model"], input=["hello", "world"])  # base64 on the wire
    floats = client.embeddings.create(model=cfg["model"], input="hello", encoding_format="float", dimensions=8)
    return {
        "count": len(default.data),
        "dims": [len(item.embedding) for item in default.data],
        "first": default.data[0].embedding[:4],
        "float_first": floats.data[0].embedding[:4],
        "float_dims": len(floats.data[0].embedding),
        "prompt_tokens": default.usage.prompt_tokens,
        "model": default.model,
    }


def local_embeddings(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """The offline model through `embeddings.create` (base64 on the wire, as the client asks by default)."""
    done = client.embeddings.create(model=cfg["model"], input=cfg["texts"])
    try:
        client.embeddings.create(model=cfg["model"], input="x", dimensions=64)
        refused = None
    except openai.BadRequestError as exc:
        refused = str(exc)
    return {"vectors": [item.embedding for item in done.data], "model": done.model,
            "prompt_tokens": done.usage.prompt_tokens, "refused": refused}


SCENARIOS = {f.__name__: f for f in (stream_text, stream_tools, tool_round_trip, stream_helper, parse,
                                     mid_stream_error, bad_request, with_cost, embeddings, local_embeddings)}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    client = OpenAI(api_key=cfg["api_key"], base_url=cfg["base_url"], max_retries=0, timeout=30)
    print(json.dumps(SCENARIOS[cfg["scenario"]](client, cfg)))


if __name__ == "__main__":
    main()

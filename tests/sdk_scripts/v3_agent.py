"""Runs inside the opperai 2.1.1 venv: the unchanged `opperai.agent.Agent` against `taskgate serve`.

Usage: python v3_agent.py '<json config>' with server_url, api_key, scenario, model and name; prints
one JSON result. The agent talks to /v3/compat/openresponses and, with tracing on, /v3/spans.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from opperai.agent import Agent, AgentError, tool
from pydantic import BaseModel


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {city}"


class CityAnswer(BaseModel):
    city: str
    population: int


def make_agent(cfg: dict[str, Any], **kw: Any) -> Agent:
    return Agent(name=cfg["name"], instructions="You answer weather questions.", model=cfg["model"],
                 client={"api_key": cfg["api_key"], "base_url": cfg["server_url"]}, **kw)


def summary(result: Any) -> dict[str, Any]:
    output = result.output.model_dump() if isinstance(result.output, BaseModel) else result.output
    return {
        "output": output,
        "iterations": result.meta.iterations,
        "usage": {"total_tokens": result.meta.usage.total_tokens},
        "tool_calls": [{"name": call.name, "input": call.input, "output": call.output}
                       for call in result.meta.tool_calls],
    }


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    return summary(await make_agent(cfg, tools=[get_weather]).run("Weather in Paris?"))


async def stream(cfg: dict[str, Any]) -> dict[str, Any]:
    events: list[str] = []
    text: list[str] = []
    handle = make_agent(cfg, tools=[get_weather]).stream("Weather in Paris?")
    async for event in handle:
        events.append(event.type)
        if event.type == "text_delta":
            text.append(event.text)
    return {**summary(await handle.result()), "events": events, "streamed_text": "".join(text)}


async def structured(cfg: dict[str, Any]) -> dict[str, Any]:
    return summary(await make_agent(cfg, output_schema=CityAnswer).run("Biggest city in Norway?"))


async def stream_failure(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        await make_agent(cfg).run("Tell me a story.")
    except AgentError as exc:
        return {"raised": type(exc).__name__, "message": str(exc)}
    return {"raised": None}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(globals()[cfg["scenario"]](cfg))))


if __name__ == "__main__":
    main()

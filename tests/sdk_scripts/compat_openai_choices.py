"""Runs inside the `openai` SDK virtualenv against `taskgate serve`: `n` choices and log probabilities
through chat completions; prints one JSON result.

Usage: python compat_openai_choices.py '<json config>' (base_url, api_key, scenario, model).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import openai
from openai import OpenAI

QUESTION = [{"role": "user", "content": "Say hello."}]


def choices(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    raw = client.chat.completions.with_raw_response.create(model=cfg["model"], messages=QUESTION, n=cfg["n"])
    completion = raw.parse()
    return {
        "choices": [{"index": c.index, "content": c.message.content, "finish_reason": c.finish_reason}
                    for c in completion.choices],
        "usage": completion.usage.model_dump() if completion.usage else None,
        "cost": (completion.model_extra or {}).get("cost"),
        "span_id": raw.headers.get("x-opper-span-id"),
        "span_ids": raw.headers.get("x-opper-span-ids"),
        "header_cost": raw.headers.get("x-opper-cost"),
    }


def streamed_choices(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    """The stream of several choices, gathered by each choice's index."""
    texts: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    usage = None
    with client.chat.completions.with_streaming_response.create(
            model=cfg["model"], messages=QUESTION, n=cfg["n"], stream=True,
            stream_options={"include_usage": True}) as raw:
        span_ids = raw.headers.get("x-opper-span-ids")
        for chunk in raw.parse():
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                if choice.finish_reason:
                    finishes[choice.index] = choice.finish_reason
            if chunk.usage:
                usage = chunk.usage.model_dump()
                usage["cost"] = (chunk.model_extra or {}).get("cost")
    return {"texts": {str(index): text for index, text in sorted(texts.items())},
            "finishes": {str(index): reason for index, reason in sorted(finishes.items())},
            "usage": usage, "span_ids": span_ids}


def streamed_failure(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    received = []
    try:
        for chunk in client.chat.completions.create(model=cfg["model"], messages=QUESTION, n=cfg["n"], stream=True):
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    except openai.APIError as exc:
        return {"raised": type(exc).__name__, "message": exc.message, "received": "".join(received)}
    return {"raised": None, "received": "".join(received)}


def logprobs(client: OpenAI, cfg: dict[str, Any]) -> dict[str, Any]:
    completion = client.chat.completions.create(model=cfg["model"], messages=QUESTION, logprobs=True, top_logprobs=2)
    whole = completion.choices[0].logprobs
    streamed: list[dict[str, Any]] = []
    text = []
    for chunk in client.chat.completions.create(model=cfg["model"], messages=QUESTION, logprobs=True,
                                                top_logprobs=2, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            streamed.extend(entry.model_dump() for entry in chunk.choices[0].logprobs.content)
    return {
        "content": completion.choices[0].message.content,
        "whole": [entry.model_dump() for entry in whole.content or ()] if whole else None,
        "streamed": streamed,
        "streamed_text": "".join(text),
    }


SCENARIOS = {scenario.__name__: scenario for scenario in (choices, streamed_choices, streamed_failure, logprobs)}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    client = OpenAI(base_url=cfg["base_url"], api_key=cfg["api_key"], max_retries=0)
    print(json.dumps(SCENARIOS[cfg["scenario"]](client, cfg)))


if __name__ == "__main__":
    main()

"""Runs the official anthropic client against the fake upstream: proves the fake's wire format parses.

Usage: fake_anthropic_client.py ANTHROPIC_BASE_URL. Prints one JSON object with what the client parsed.
"""

import json
import sys

from anthropic import Anthropic

client = Anthropic(api_key="ak-fake", base_url=sys.argv[1], max_retries=0)
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
tools = [{
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]

plain = client.messages.create(model="claude-plain", max_tokens=256, messages=messages)

with client.messages.stream(model="claude-tool", max_tokens=256, messages=messages, tools=tools) as stream:
    deltas = list(stream.text_stream)
    final = stream.get_final_message()

forced = client.messages.create(
    model="claude-plain", max_tokens=256, messages=messages, tools=tools,
    tool_choice={"type": "tool", "name": "get_weather"},
)


def blocks(message):
    return [
        {"type": b.type, "text": b.text} if b.type == "text" else {"type": b.type, "name": b.name, "input": b.input}
        for b in message.content
    ]


print(json.dumps({
    "plain": blocks(plain),
    "plain_stop": plain.stop_reason,
    "plain_usage": [plain.usage.input_tokens, plain.usage.output_tokens],
    "stream_deltas": deltas,
    "stream": blocks(final),
    "stream_stop": final.stop_reason,
    "stream_usage": [final.usage.input_tokens, final.usage.output_tokens],
    "forced": blocks(forced),
}))

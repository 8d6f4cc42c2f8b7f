"""Runs the official openai client against the fake upstream: proves the fake's wire format parses.

Usage: fake_openai_client.py OPENAI_BASE_URL. Prints one JSON object with what the client parsed.
"""

import json
import sys

from openai import OpenAI

client = OpenAI(api_key="sk-fake", base_url=sys.argv[1], max_retries=0)
messages = [{"role": "user", "content": "What is the weather in Paris?"}]
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]

plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

chunks = list(client.chat.completions.create(
    model="tool-model", messages=messages, tools=tools, stream=True, stream_options={"include_usage": True},
))
streams = getattr(client.chat.completions, "stream", None) or client.beta.chat.completions.stream
with streams(model="tool-model", messages=messages, tools=tools, stream_options={"include_usage": True}) as stream:
    final = stream.get_final_completion()

embedding = client.embeddings.create(model="text-embedding-3-small", input=["hello"], dimensions=4)

choice = final.choices[0]
print(json.dumps({
    "plain_text": plain.choices[0].message.content,
    "plain_finish": plain.choices[0].finish_reason,
    "plain_usage": [plain.usage.prompt_tokens, plain.usage.completion_tokens, plain.usage.total_tokens],
    "chunk_count": len(chunks),
    "last_chunk_usage": chunks[-1].usage.completion_tokens if chunks[-1].usage else None,
    "stream_text": choice.message.content,
    "stream_finish": choice.finish_reason,
    "stream_tools": [[c.id, c.function.name, json.loads(c.function.arguments)] for c in choice.message.tool_calls],
    "stream_usage": final.usage.completion_tokens if final.usage else None,
    "embedding": embedding.data[0].embedding,
}))

"""The OpenAI Chat Completions and Embeddings wire formats, as the fake upstream speaks them.

Bodies and SSE events are built as bytes from small templates: the fake is the baseline in
benchmarks, so it must cost far less than the gateway it is measured against.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import time
from dataclasses import dataclass
from typing import Any

import orjson

from tests.fakes.common import Behaviour, content_chars, dumps, input_tokens, merge_usage, pieces, token_count
from tests.fakes.schema_instance import instance_for

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to sample from this model.",
    404: "The requested resource does not exist.",
    429: "Rate limit reached for requests. Please try again in 1s.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}
STREAM_ERROR = b'data: {"error":{"message":"The server had an error while processing your request.",' \
    b'"type":"server_error","param":null,"code":null}}\n\n'
DONE = b"data: [DONE]\n\n"


def error_body(status: int, message: str | None = None, code: str | None = None) -> bytes:
    """OpenAI's error envelope for `status`."""
    kind, default_code = _ERROR_TYPES.get(status, ("server_error", None))
    return orjson.dumps({
        "error": {
            "message": message or _MESSAGES.get(status, "The server had an error processing your request."),
            "type": kind,
            "param": None,
            "code": code or default_code,
        }
    })


def unknown_model_body(model: str) -> bytes:
    return error_body(404, f"The model `{model}` does not exist or you do not have access to it.")


def request_problem(body: Any) -> str | None:
    """What OpenAI would refuse in this body before looking at the model, if anything."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Missing required parameter: 'messages'."
    return None


@dataclass(slots=True)
class ChatReply:
    """One completion, renderable as a whole body or as the SSE event sequence."""

    id: str
    model: str
    created: int
    text: str | None
    tool_calls: list[tuple[str, str, str]]  # (id, name, arguments JSON text)
    finish_reason: str
    usage: dict[str, Any]
    top_logprobs: int | None = None  # set when the request asked for `logprobs`: how many alternatives

    def logprobs(self, text: str) -> dict[str, Any] | None:
        """OpenAI's `logprobs` object for `text`, one entry per piece, or None when not asked for."""
        if self.top_logprobs is None:
            return None
        return {"content": [token_logprob(piece, self.top_logprobs) for piece in pieces(text)], "refusal": None}

    def body(self) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": self.text, "refusal": None, "annotations": []}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in self.tool_calls
            ]
        return orjson.dumps({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": self.logprobs(self.text or ""),
                         "finish_reason": self.finish_reason}],
            "usage": self.usage,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        })

    def events(self, include_usage: bool) -> list[bytes]:
        """Role chunk, content deltas, tool-call fragments, the finish chunk, usage, [DONE]."""
        head = (
            f'data: {{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},'
            f'"model":{dumps(self.model)},"system_fingerprint":"fp_fake","choices":[{{"index":0,"delta":'
        ).encode()
        usage_null = b',"usage":null' if include_usage else b""
        tail = b',"logprobs":null,"finish_reason":null}]' + usage_null + b"}\n\n"
        events = [head + b'{"role":"assistant","content":"","refusal":null}' + tail]
        for piece in pieces(self.text or ""):
            if self.top_logprobs is None:
                events.append(head + b'{"content":' + orjson.dumps(piece) + b"}" + tail)
            else:
                events.append(head + b'{"content":' + orjson.dumps(piece) + b'},"logprobs":'
                              + orjson.dumps(self.logprobs(piece)) + b',"finish_reason":null}]' + usage_null + b"}\n\n")
        for index, (cid, name, args) in enumerate(self.tool_calls):
            first = {"index": index, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
            events.append(head + b'{"tool_calls":[' + orjson.dumps(first) + b"]}" + tail)
            for piece in pieces(args) or (args,):
                fragment = {"index": index, "function": {"arguments": piece}}
                events.append(head + b'{"tool_calls":[' + orjson.dumps(fragment) + b"]}" + tail)
        finish = orjson.dumps(self.finish_reason)
        events.append(head + b'{},"logprobs":null,"finish_reason":' + finish + b"}]" + usage_null + b"}\n\n")
        if include_usage:
            events.append(
                f'data: {{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},'
                f'"model":{dumps(self.model)},"system_fingerprint":"fp_fake","choices":[],'
                f'"usage":{dumps(self.usage)}}}\n\n'.encode()
            )
        events.append(DONE)
        return events


def chat_reply(body: dict[str, Any], behaviour: Behaviour | None, default_text: str, seq: int) -> ChatReply:
    """Decide the answer: the scripted behaviour if any, else what the request asks for."""
    model = body["model"]
    text: str | None = None
    calls: list[tuple[str, dict[str, Any] | str]] = []
    if behaviour is not None and (
        behaviour.text is not None or behaviour.json is not None or behaviour.tool_calls
    ):
        text = behaviour.text if behaviour.text is not None else (
            dumps(behaviour.json) if behaviour.json is not None else None
        )
        calls = list(behaviour.tool_calls or [])
    else:
        text, calls = _default_answer(body, default_text)
    tool_calls = [
        (f"call_fake{seq}_{i}", name, args if isinstance(args, str) else dumps(args))
        for i, (name, args) in enumerate(calls)
    ]
    finish = (behaviour.finish_reason if behaviour else None) or ("tool_calls" if tool_calls else "stop")
    prompt = input_tokens(sum(content_chars(m.get("content")) for m in body["messages"] if isinstance(m, dict)))
    completion = token_count(text or "") + sum(token_count(args) for _, _, args in tool_calls)
    usage = merge_usage({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }, behaviour.usage if behaviour else None)
    if behaviour and behaviour.usage and "total_tokens" not in behaviour.usage:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    top_logprobs = (body.get("top_logprobs") or 0) if body.get("logprobs") is True else None
    return ChatReply(f"chatcmpl-fake{seq}", model, int(time.time()), text, tool_calls, finish, usage, top_logprobs)


def token_logprob(token: str, alternatives: int) -> dict[str, Any]:
    """A made-up but stable log probability for `token`, with `alternatives` runner-up tokens."""
    logprob = -round(len(token) / 100, 4)
    raw = list(token.encode())
    top = [{"token": token, "logprob": logprob, "bytes": raw}]
    top += [{"token": f"{token}~{n}", "logprob": logprob - n, "bytes": [*raw, 126]} for n in range(1, alternatives)]
    return {"token": token, "logprob": logprob, "bytes": raw, "top_logprobs": top[:alternatives]}


def _default_answer(body: dict[str, Any], default_text: str) -> tuple[str | None, list[tuple[str, Any]]]:
    """JSON for a json_schema response_format, a call for a forced tool, else the greeting."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            return dumps(instance_for(schema)), []
        if response_format.get("type") == "json_object":
            return dumps({"message": default_text}), []
    forced = _forced_tool(body)
    if forced is not None:
        return None, [(forced["name"], instance_for(forced.get("parameters") or {"type": "object"}))]
    return default_text, []


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools: list[dict[str, Any]] = [
        t["function"] for t in body.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    if choice == "required" and tools:
        return tools[0]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == name), None)
    return None


def embeddings_body(body: Any) -> tuple[int, bytes]:
    """(status, body) for an embeddings request: vectors derived from a hash of each text."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return 400, error_body(400, "you must provide a model parameter")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        return 400, error_body(400, "'input' is a required property")
    words = body["model"].startswith(BAG_OF_WORDS_PREFIX)
    dims = body.get("dimensions", BAG_OF_WORDS_DIMS if words else 8)
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        return 400, error_body(400, "'dimensions' must be a positive integer")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else dumps(item)
        tokens += input_tokens(len(text))
        vector = bag_of_words_vector(text, dims) if words else embedding_vector(text, dims)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return 200, orjson.dumps({
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


def embedding_vector(text: str, dims: int) -> list[float]:
    """A unit vector that depends only on the text, so tests can predict it."""
    digest = hashlib.shake_256(text.encode()).digest(2 * dims)
    raw = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dims}H", digest)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


# Models named `text-embedding-bow…` embed by words: texts sharing words are near, so tests of
# semantic ranking can predict what is found. Any other model gives a hash of the whole text.
BAG_OF_WORDS_PREFIX = "text-embedding-bow"
BAG_OF_WORDS_DIMS = 256
_WORD = re.compile(r"\w+")


def bag_of_words_vector(text: str, dims: int) -> list[float]:
    """A unit vector summing one signed hashed direction per word (lower-cased)."""
    raw = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        digest = hashlib.shake_256(word.encode()).digest(5)
        raw[int.from_bytes(digest[:4], "little") % dims] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


IMAGE_MODELS = {"gpt-image-1": ("1024x1024", "1536x1024", "1024x1536", "auto"),
                "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
                "dall-e-2": ("256x256", "512x512", "1024x1024"),
                "black-forest-labs/FLUX.1-schnell": ("1024x1024",)}  # as Together serves it
IMAGE_OUTPUT_TOKENS = 272  # what gpt-image-1 bills for a low-quality square image


IMAGE_SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff\xe0", "webp": b"RIFF\x00\x00\x00\x00WEBP"}


def fake_png(prompt: str, index: int, image_format: str = "png") -> bytes:
    """An image-signed blob of `image_format` that depends only on the prompt and the image's position."""
    return IMAGE_SIGNATURES[image_format] + hashlib.sha256(f"{index}:{prompt}".encode()).digest()


def images_body(body: Any) -> tuple[int, bytes]:
    """(status, body) for `/images/generations`, refusing what OpenAI refuses for each model."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return 400, error_body(400, "you must provide a model parameter")
    model, prompt = body["model"], body.get("prompt")
    sizes = IMAGE_MODELS.get(model)
    if sizes is None:
        return 404, unknown_model_body(model)
    if not isinstance(prompt, str) or not prompt:
        return 400, error_body(400, "'prompt' is a required property")
    unknown = set(body) - {"model", "prompt", "n", "size", "quality", "style", "response_format", "output_format",
                           "background", "user"}
    if unknown:
        return 400, error_body(400, f"Unknown parameter: '{sorted(unknown)[0]}'.", "unknown_parameter")
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= (1 if model == "dall-e-3" else 10):
        return 400, error_body(400, f"Invalid 'n' for {model}", "invalid_value")
    if body.get("size", sizes[0]) not in sizes:
        return 400, error_body(400, f"Invalid size for {model}; supported: {', '.join(sizes)}", "invalid_value")
    gpt_image = model.startswith("gpt-image")
    if gpt_image and "response_format" in body:
        return 400, error_body(400, "Unknown parameter: 'response_format'.", "unknown_parameter")
    image_format = body.get("output_format", "png")
    if image_format not in IMAGE_SIGNATURES or (image_format != "png" and not gpt_image):
        return 400, error_body(400, f"Invalid output_format for {model}", "invalid_value")
    as_b64 = gpt_image or body.get("response_format") == "b64_json"
    data = []
    for index in range(n):
        image = fake_png(prompt, index, image_format)
        item: dict[str, Any] = ({"b64_json": base64.b64encode(image).decode()} if as_b64
                                else {"url": f"https://images.fake.test/{hashlib.sha256(image).hexdigest()}.png"})
        if model == "dall-e-3":
            item["revised_prompt"] = f"A picture of {prompt}"
        data.append(item)
    reply: dict[str, Any] = {"created": 1700000000, "data": data}
    if gpt_image:
        tokens = input_tokens(len(prompt))
        reply["usage"] = {"input_tokens": tokens, "output_tokens": IMAGE_OUTPUT_TOKENS * n,
                          "total_tokens": tokens + IMAGE_OUTPUT_TOKENS * n,
                          "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0}}
    return 200, orjson.dumps(reply)

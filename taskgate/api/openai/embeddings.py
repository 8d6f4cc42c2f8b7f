"""OpenAI-shaped embeddings (`POST /v3/compat/embeddings`): the request parsed and the answer shaped.

The engine (`taskgate.engine.embeddings`) calls the provider, prices and records the span, so
usage shows up in traces like every other call.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskgate.api.openai.chat_request import MAX_COUNT, header_name, header_parent
from taskgate.api.request_fields import optional
from taskgate.engine.embeddings import DEFAULT_EMBEDDING_NAME, EmbeddingTask
from taskgate.errors import BadRequestError
from taskgate.providers.base import EmbeddingResponse
from taskgate.server.disconnect import until_client_leaves
from taskgate.server.request_io import header_map

if TYPE_CHECKING:
    from starlette.requests import Request

    from taskgate.context import AppContext
    from taskgate.engine.embeddings import EmbeddingResult

ENCODINGS = frozenset({"float", "base64"})
OPTION_NAMES = ("dimensions", "user")  # what `embedding_options` reads


@dataclass(slots=True)
class EmbeddingCall:
    model: str  # provider/model, or a custom model or alias of the project, as the caller wrote it
    inputs: list[str]
    encoding: str = "float"
    options: dict[str, Any] = field(default_factory=dict)  # forwarded to the adapter: dimensions, user
    tags: dict[str, Any] = field(default_factory=dict)


def parse_embedding_request(body: Mapping[str, Any]) -> EmbeddingCall:
    """The OpenAI request: `model`, `input`, `encoding_format`, `dimensions`, `user` and our `tags`."""
    encoding = body.get("encoding_format")
    encoding = "float" if encoding is None else encoding
    if not isinstance(encoding, str) or encoding not in ENCODINGS:  # a list or object is not hashable
        raise BadRequestError("encoding_format must be 'float' or 'base64'")
    tags = optional(body, "tags", dict, "an object", name="tags") or {}
    return embedding_call(body.get("model"), body.get("input"), embedding_options(body), encoding=encoding, tags=tags)


def embedding_call(model: Any, raw_input: Any, options: dict[str, Any], *, encoding: str = "float",
                   tags: dict[str, Any] | None = None) -> EmbeddingCall:
    """What every embeddings dialect checks alike: a model name and one or more texts (the engine
    resolves the name: a `provider/model`, or a custom model or alias of the project)."""
    if not isinstance(model, str) or not model.strip():
        raise BadRequestError("model is required, written as 'provider/model' (or a custom model or alias)")
    inputs = [raw_input] if isinstance(raw_input, str) else raw_input
    if not isinstance(inputs, list) or not inputs or not all(isinstance(item, str) for item in inputs):
        raise BadRequestError("input must be a string or a non-empty array of strings (not token arrays)")
    return EmbeddingCall(model=model.strip(), inputs=inputs,
                         encoding=encoding, options=options, tags=tags or {})


def embedding_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The adapter options an embeddings request may set (`dimensions`, `user`), checked."""
    options: dict[str, Any] = {}
    dimensions = values.get("dimensions")
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_COUNT:
            raise BadRequestError(f"dimensions must be an integer from 1 to {MAX_COUNT}")
        options["dimensions"] = dimensions
    user = optional(values, "user", str, "a string", name="user")
    if user is not None:
        options["user"] = user
    return options


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    """The openai client asks for base64 by default: little-endian float32, as OpenAI sends it."""
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embedding_body(call: EmbeddingCall, response: EmbeddingResponse) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _encode(vector, call.encoding)}
            for index, vector in enumerate(response.vectors)
        ],
        "model": call.model,
        "usage": {"prompt_tokens": response.usage.input_tokens, "total_tokens": response.usage.input_tokens},
    }


def embedding_task(call: EmbeddingCall, project_id: str, headers: Mapping[str, str]) -> EmbeddingTask:
    """The engine's task: the request, named and placed in a trace by the `X-Opper-*` headers."""
    return EmbeddingTask(
        project_id=project_id,
        model=call.model,
        inputs=call.inputs,
        options=call.options,
        tags=call.tags,
        name=header_name(headers, DEFAULT_EMBEDDING_NAME),
        parent_span_id=header_parent(headers),
    )


async def run_embedding(ctx: AppContext, request: Request, project_id: str, call: EmbeddingCall) -> EmbeddingResult:
    """The engine's embedding for `call`, cancelled if the client leaves: every dialect's one path."""
    return await until_client_leaves(request, ctx.engine.embed(embedding_task(call, project_id, header_map(request))))

"""OpenAI-shaped embeddings (`POST /v3/compat/embeddings`): parse, call the provider, shape, record.

Embeddings skip the engine (no prompt, schema or fallback to apply) but are still recorded as
spans, so usage shows up in traces like every other call.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskgate.api.openai.chat_request import MAX_COUNT, header_name, header_parent
from taskgate.api.request_fields import optional
from taskgate.errors import BadRequestError, NotFoundError, TaskgateError
from taskgate.ids import new_id
from taskgate.providers.base import EmbeddingResponse
from taskgate.providers.catalog import split_model_name
from taskgate.store.base import SpanRecord
from taskgate.telemetry.recorder import SpanRecorder

DEFAULT_EMBEDDING_NAME = "embeddings"
ENCODINGS = frozenset({"float", "base64"})


@dataclass(slots=True)
class EmbeddingCall:
    model: str  # provider/model, as the caller wrote it
    provider: str
    provider_model: str
    inputs: list[str]
    encoding: str = "float"
    options: dict[str, Any] = field(default_factory=dict)  # forwarded to the adapter: dimensions, user
    tags: dict[str, Any] = field(default_factory=dict)


def parse_embedding_request(body: Mapping[str, Any]) -> EmbeddingCall:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequestError("model is required, written as 'provider/model'")
    provider, provider_model = split_model_name(model.strip())
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(item, str) for item in inputs):
        raise BadRequestError("input must be a string or a non-empty array of strings (not token arrays)")
    encoding = body.get("encoding_format")
    encoding = "float" if encoding is None else encoding
    if not isinstance(encoding, str) or encoding not in ENCODINGS:  # a list or object is not hashable
        raise BadRequestError("encoding_format must be 'float' or 'base64'")
    options: dict[str, Any] = {}
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_COUNT:
            raise BadRequestError(f"dimensions must be an integer from 1 to {MAX_COUNT}")
        options["dimensions"] = dimensions
    user = optional(body, "user", str, "a string", name="user")
    if user is not None:
        options["user"] = user
    tags = optional(body, "tags", dict, "an object", name="tags") or {}
    return EmbeddingCall(model=model.strip(), provider=provider, provider_model=provider_model, inputs=inputs,
                         encoding=encoding, options=options, tags=tags)


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


@dataclass(slots=True)
class SpanContext:
    """Who the embedding span belongs to; resolved before calling the provider."""

    project_id: str
    name: str
    parent_id: str | None
    trace_id: str


async def span_context(recorder: SpanRecorder, project_id: str, headers: Mapping[str, str]) -> SpanContext:
    name = header_name(headers, DEFAULT_EMBEDDING_NAME)
    parent_id = header_parent(headers)
    trace_id = new_id()
    if parent_id is not None:
        parent = await recorder.find_span(project_id, parent_id)
        if parent is None:
            raise NotFoundError(f"parent span '{parent_id}' was not found")
        trace_id = parent.trace_id
    return SpanContext(project_id=project_id, name=name, parent_id=parent_id, trace_id=trace_id)


def _summary(response: EmbeddingResponse | None) -> dict[str, int] | None:
    """Vectors are not worth keeping in a span: their count and size are."""
    if response is None:
        return None
    return {"count": len(response.vectors), "dimensions": len(response.vectors[0]) if response.vectors else 0}


def embedding_span(where: SpanContext, call: EmbeddingCall, started: datetime,
                   response: EmbeddingResponse | None, error: TaskgateError | None) -> SpanRecord:
    tokens = response.usage.input_tokens if response else 0
    return SpanRecord(
        id=new_id(),
        trace_id=where.trace_id,
        project_id=where.project_id,
        name=where.name,
        type="embedding",
        parent_id=where.parent_id,
        start_time=started,
        end_time=datetime.now(UTC),
        input=call.inputs,
        output=_summary(response),
        error=error.detail if error else None,
        status="error" if error else "ok",
        model_chain=[call.model],
        model_used=call.model if response else None,
        models_failed=[call.model] if error else [],
        attempts=1,
        usage={"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens},
        tags=call.tags,
    )

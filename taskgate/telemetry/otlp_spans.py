"""A Taskgate span as an OpenTelemetry span: its ids, its GenAI attributes, its status.

Ids. OpenTelemetry wants a 128-bit trace id and a 64-bit span id; Taskgate's are strings, normally
version-7 UUIDs (`taskgate.ids`). The mapping is deterministic, so a parent recorded long before its
child (or by another replica) still maps to the same OTel id:
- trace id: the UUID's 128 bits, so Taskgate's trace id with its dashes removed *is* the OTel trace
  id (paste one into Jaeger or Tempo as it is);
- span id: the UUID's low 64 bits, its random part (the high half of a version-7 UUID is a
  millisecond clock, shared by every span of the same millisecond);
- an id that is not a UUID (the span API takes any printable id): the first 16 (trace) or 8 (span)
  bytes of SHA-256 of `taskgate-trace:<id>` / `taskgate-span:<id>`. An all-zero result, which OTel
  forbids (the nil UUID), takes that hash too.
The original ids travel along as `taskgate.trace.id`, `taskgate.span.id` and `taskgate.parent.id`.

Content (input, output, instructions) is never exported: it may be large and private, and the GenAI
conventions make it opt-in. What is exported is listed in `attributes()`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from taskgate.store.base import SpanRecord

SERVICE_NAME = "taskgate"
SCOPE = InstrumentationScope("taskgate")
MAX_ERROR_CHARS = 1024  # a status description is for a glance; the span in Taskgate has the whole error
MAX_LIST_ITEMS = 32
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SPAN_MASK = (1 << 64) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# gen_ai.operation.name by Taskgate span type; other types keep their own name
OPERATIONS = {"call": "chat", "embedding": "embeddings", "dataset-embedding": "embeddings"}


class _HashedOnce(Resource):
    """The SDK's encoder groups a batch's spans by resource, hashing it once per span, and
    `Resource.__hash__` serialises every attribute to JSON each time (about 4 µs): ours never
    changes, so its hash is worked out once."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other)


def service_resource() -> Resource:
    """`service.name` taskgate, under whatever OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say
    (the SDK's resource detector reads them)."""
    return _HashedOnce(Resource.create({"service.name": SERVICE_NAME}).merge(OTELResourceDetector().detect()))


def trace_id_of(taskgate_id: str) -> int:
    """The 128-bit OTel trace id of a Taskgate trace id (see the module docstring)."""
    value = _uuid_int(taskgate_id)
    return value if value else _hashed("taskgate-trace:", taskgate_id, 16)


def span_id_of(taskgate_id: str) -> int:
    """The 64-bit OTel span id of a Taskgate span id (see the module docstring)."""
    value = _uuid_int(taskgate_id) & _SPAN_MASK
    return value if value else _hashed("taskgate-span:", taskgate_id, 8)


def _uuid_int(text: str) -> int:
    if len(text) != 36:  # only the canonical form: `uuid.UUID` also takes braces, urn: and bare hex
        return 0
    try:
        return uuid.UUID(text).int
    except ValueError:
        return 0


def _hashed(prefix: str, text: str, size: int) -> int:
    value = int.from_bytes(hashlib.sha256((prefix + text).encode("utf-8", "surrogatepass")).digest()[:size], "big")
    return value or 1


def _nanos(moment: datetime | None) -> int | None:
    """Nanoseconds since the epoch, exact to the microsecond (`timestamp()` is a float, off by up to
    a few hundred ns today); a naive time is UTC, as the store keeps it."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND * 1000


def split_model(name: str | None) -> tuple[str | None, str | None]:
    """`openai/gpt-4o-mini` -> ("openai", "gpt-4o-mini"); a name without a provider part is a model."""
    if not name:
        return None, None
    provider, sep, model = name.partition("/")
    return (provider, model) if sep else (None, name)


def attributes(span: SpanRecord) -> dict[str, Any]:
    """What a backend gets to see of the span, by the GenAI semantic conventions where they have a
    name for it, under `taskgate.` where they do not. Each attribute costs the SDK's encoder about
    2 µs per span on the export thread, so none repeats another."""
    provider, model = split_model(span.model_used or (span.model_chain[0] if span.model_chain else None))
    found: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(span.type, span.type),
        "taskgate.span.id": span.id,
        "taskgate.trace.id": span.trace_id,
        "taskgate.span.type": span.type,
        "taskgate.project.id": span.project_id,
    }
    if span.status == "cancelled":  # an error shows as the span's status; a cancellation (the client left) is none
        found["taskgate.cancelled"] = True
    if provider is not None:
        found["gen_ai.system"] = provider
    if model is not None:
        found["gen_ai.request.model"] = model
    if span.model_used is not None:
        found["gen_ai.response.model"] = split_model(span.model_used)[1]
    usage = span.usage or {}
    for key in ("input_tokens", "output_tokens"):
        if isinstance(usage.get(key), int):
            found[f"gen_ai.usage.{key}"] = usage[key]
    if span.cost is not None:
        found["taskgate.cost.usd"] = float(span.cost)
    if span.function_name is not None:
        found["taskgate.function.name"] = span.function_name
    if span.parent_id is not None:
        found["taskgate.parent.id"] = span.parent_id
    if len(span.model_chain) > 1:  # one model is gen_ai.request.model already
        found["taskgate.model_chain"] = [str(name) for name in span.model_chain[:MAX_LIST_ITEMS]]
    if span.models_failed:
        found["taskgate.models_failed"] = [str(name)[:MAX_ERROR_CHARS] for name in span.models_failed[:MAX_LIST_ITEMS]]
    if span.attempts:
        found["taskgate.attempts"] = span.attempts
    if isinstance(span.meta, dict) and span.meta.get("cached") is True:
        found["taskgate.cached"] = True
    return found


def readable_span(span: SpanRecord, resource: Resource) -> ReadableSpan:
    """The finished OTel span of `span`: ids mapped, times in nanoseconds, an error as an ERROR status."""
    trace_id = trace_id_of(span.trace_id)
    parent = None
    if span.parent_id is not None:
        parent = SpanContext(trace_id, span_id_of(span.parent_id), is_remote=False, trace_flags=_SAMPLED)
    end = _nanos(span.end_time)
    status = Status(StatusCode.UNSET)
    if span.status == "error":
        status = Status(StatusCode.ERROR, (span.error or "error")[:MAX_ERROR_CHARS])
    return ReadableSpan(
        name=span.name,
        context=SpanContext(trace_id, span_id_of(span.id), is_remote=False, trace_flags=_SAMPLED),
        parent=parent,
        resource=resource,
        attributes=attributes(span),
        kind=SpanKind.CLIENT if span.model_used or span.model_chain else SpanKind.INTERNAL,
        status=status,
        start_time=_nanos(span.start_time) or end,
        end_time=end,
        instrumentation_scope=SCOPE,
    )

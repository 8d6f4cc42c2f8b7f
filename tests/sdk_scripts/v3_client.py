"""Runs inside the `opperai==2.1.1` virtualenv against `taskgate serve`; prints one JSON result.

Usage: python v3_client.py '<json config>' with `scenario` plus the scenario's own fields. The
server's URL and key come from OPPER_BASE_URL / OPPER_API_KEY, as a user would configure them.
Each scenario is the client code a user would write, collecting what it saw instead of printing.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from opperai import (
    ApiError,
    CompleteChunk,
    ContentChunk,
    DoneChunk,
    ErrorChunk,
    Opper,
    ToolCallDeltaChunk,
    ToolCallStartChunk,
)
from pydantic import BaseModel

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class Question(BaseModel):
    text: str
    language: str


class Answer(BaseModel):
    answer: str
    confidence: float


def call_pydantic(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    res = opper.call(cfg["name"], instructions="Answer the question.", input=Question(text="Capital of France?",
                     language="en"), input_schema=Question, output_schema=Answer, model=cfg.get("model"))
    return {"type": type(res.data).__name__, "data": res.data.model_dump(), "meta": res.meta}


def call_string(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    res = opper.call(cfg["name"], input=cfg["input"], model=cfg.get("model"))
    return {"data": res.data, "meta": res.meta}


def _collect(chunks: Any) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    for chunk in chunks:
        if isinstance(chunk, ContentChunk):
            seen.append({"kind": "content", "delta": chunk.delta})
        elif isinstance(chunk, ToolCallStartChunk):
            seen.append({"kind": "tool_call_start", "index": chunk.tool_call_index, "id": chunk.tool_call_id,
                         "name": chunk.tool_call_name})
        elif isinstance(chunk, ToolCallDeltaChunk):
            seen.append({"kind": "tool_call_delta", "index": chunk.tool_call_index, "args": chunk.tool_call_args})
        elif isinstance(chunk, DoneChunk):
            usage = chunk.usage
            seen.append({"kind": "done", "usage": None if usage is None else
                         {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}})
        elif isinstance(chunk, CompleteChunk):
            seen.append({"kind": "complete", "data": chunk.data, "meta": chunk.meta})
        elif isinstance(chunk, ErrorChunk):
            seen.append({"kind": "error", "error": chunk.error})
    return {"chunks": seen}


def stream(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    """The README loop: print content as it comes, then usage, then the final result."""
    return _collect(opper.stream(cfg["name"], input=cfg["input"], output_schema=cfg.get("output_schema"),
                                 model=cfg.get("model")))


def tools_call(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    res = opper.call(cfg["name"], input="What is the weather in Paris?", tools=[WEATHER_TOOL],
                     model=cfg.get("model"))
    return {"data": res.data, "meta": res.meta}


def tools_stream(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    return _collect(opper.stream(cfg["name"], input="What is the weather in Paris?", tools=[WEATHER_TOOL],
                                 model=cfg.get("model")))


def trace(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    with opper.trace(cfg["trace_name"]) as span:
        first = opper.call(cfg["name"], input="first step")
        second = opper.call(cfg["name"], input="second step")
    got = opper.traces.get(span.trace_id)
    return {
        "span": {"id": span.id, "trace_id": span.trace_id},
        "trace_uuids": [first.meta["trace_uuid"], second.meta["trace_uuid"]],
        "trace": {"id": got.id, "name": got.name, "span_count": got.span_count, "end_time": got.end_time,
                  "spans": [{"id": s.id, "name": s.name, "parent_id": s.parent_id, "trace_id": s.trace_id,
                             "end_time": s.end_time} for s in got.spans]},
    }


def functions(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    name = cfg["name"]
    first = opper.call(name, instructions="Reply briefly.", input="hello")
    again = opper.call(name, instructions="Reply briefly.", input="hello again")
    listed = [f for f in opper.functions.list() if f.name == name]
    details = opper.functions.get(name)
    updated = opper.functions.update(name, source="Reply in French.")
    after_update = opper.call(name, input="hello once more")
    revisions = opper.functions.list_revisions(name)
    revision_one = opper.functions.get_revision(name, 1)
    reverted = opper.functions.revert_revision(name, 1)
    revisions_after = opper.functions.list_revisions(name)
    opper.functions.delete(name)
    try:
        opper.functions.get(name)
        gone = "still there"
    except ApiError as exc:
        gone = type(exc).__name__
    return {
        "script_cached": [first.meta["script_cached"], again.meta["script_cached"]],
        "listed": [{"name": f.name, "hit_count": f.hit_count, "has_script": f.has_script,
                    "schema_hash": f.schema_hash} for f in listed],
        "details": {"name": details.name, "source": details.source, "generated_at": details.generated_at},
        "updated_source": updated.source,
        "after_update_meta": after_update.meta,
        "revisions": [{"revision_id": r.revision_id, "is_current": r.is_current} for r in revisions],
        "revision_one": {"revision_id": revision_one.revision_id, "source": revision_one.source},
        "reverted_source": reverted.source,
        "revisions_after": [{"revision_id": r.revision_id, "is_current": r.is_current} for r in revisions_after],
        "gone": gone,
    }


def examples(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    name = cfg["name"]
    one = opper.functions.create_example(name, input={"text": "stock prices fell sharply"},
                                         output={"label": "finance"}, tag="golden")
    batch = opper.functions.create_examples_batch(name, [
        {"input": {"text": "dogs bark at the mailman"}, "output": {"label": "dogs"}},
        {"input": {"text": "rain expected tomorrow"}, "output": {"label": "weather"}},
        {"input": {"text": "the cat sat on the mat"}, "output": {"label": "cats"}, "tag": "train"},
        {"input": {"text": "a kitten chased the cat toy"}, "output": {"label": "cats"}},
    ])
    listed = opper.functions.list_examples(name)
    golden = opper.functions.list_examples(name, tag="golden")
    page = opper.functions.list_examples(name, limit=2, offset=1)
    opper.functions.delete_example(name, batch[0]["uuid"])
    after_delete = opper.functions.list_examples(name)
    res = opper.call(name, input={"text": "my cat likes the mat"}, model=cfg.get("model"))
    return {"one": one, "batch": batch, "listed": listed, "golden": golden, "page": page,
            "after_delete": after_delete, "call_data": res.data}


def spans_traces(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    root = opper.spans.create(name=cfg["trace_name"], input="root input", meta={"k": "v"},
                              tags={"team": "a"}, metadata={"m": 1})
    child = opper.spans.create(name="child", parent_id=root.id, trace_id=root.trace_id, type="tool")
    opper.spans.update(child.id, output="child output", end_time="2030-01-01T00:00:01+00:00")
    fetched = opper.spans.get(child.id)
    fetched_root = opper.spans.get(root.id)
    listed = opper.traces.list(name=cfg["trace_name"].upper())
    trace_got = opper.traces.get(root.trace_id)
    opper.spans.delete(child.id)
    after_span_delete = opper.traces.get(root.trace_id)
    opper.traces.delete(root.trace_id)
    try:
        opper.traces.get(root.trace_id)
        trace_gone = "still there"
    except ApiError as exc:
        trace_gone = type(exc).__name__
    return {
        "root": {"id": root.id, "trace_id": root.trace_id, "name": root.name},
        "child": {"id": child.id, "trace_id": child.trace_id, "parent_id": child.parent_id, "type": child.type},
        "fetched": {"output": fetched.output, "end_time": fetched.end_time, "parent_id": fetched.parent_id,
                    "status": fetched.status, "type": fetched.type},
        "fetched_root": {"meta": fetched_root.meta, "tags": fetched_root.tags, "metadata": fetched_root.metadata,
                         "input": fetched_root.input},
        "listed": [{"id": t.id, "name": t.name, "span_count": t.span_count} for t in listed.data],
        "list_meta": listed.meta,
        "trace": {"id": trace_got.id, "name": trace_got.name, "span_count": trace_got.span_count,
                  "span_names": sorted(s.name for s in trace_got.spans)},
        "after_span_delete": after_span_delete.span_count,
        "trace_gone": trace_gone,
    }


def models(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    listed = opper.models.list(provider=cfg.get("provider"), q=cfg.get("q"))
    return {"models": [{"id": m.id, "provider": m.provider, "model_id": m.model_id, "type": m.type,
                        "pricing": m.pricing, "context_window": m.context_window,
                        "provider_display_name": m.provider_display_name} for m in listed.models]}


def _error_of(action: Any) -> dict[str, Any]:
    try:
        action()
    except ApiError as exc:
        detail = exc.error or {}  # a TypedDict {code, message, details}
        return {"class": type(exc).__name__, "status": exc.status, "code": detail.get("code"),
                "message": detail.get("message")}
    return {"class": None}


def errors(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    wrong_key = Opper(api_key="not-the-key", base_url=os.environ["OPPER_BASE_URL"])
    checks = {
        "bad_request": lambda: opper.call(cfg["name"], input="x", model=[{"options": {}}]),
        "bad_schema": lambda: opper.call(cfg["name"], input="x", output_schema={"type": "nonsense"}),
        "unauthorized": lambda: wrong_key.functions.list(),
        "not_found": lambda: opper.functions.get(cfg["name"] + "-missing"),
        "not_found_parent": lambda: opper.call(cfg["name"], input="x", parent_span_id="no-such-span"),
        "rate_limited": lambda: opper.call(cfg["name"], input="x", model=cfg["rate_limited_model"]),
        "stream_not_found": lambda: list(opper.stream(cfg["name"], input="x", parent_span_id="no-such-span")),
    }
    return {name: _error_of(action) for name, action in checks.items()}


def internal_error(opper: Opper, cfg: dict[str, Any]) -> dict[str, Any]:
    return _error_of(lambda: opper.functions.list())


SCENARIOS = {f.__name__: f for f in (call_pydantic, call_string, stream, tools_call, tools_stream, trace,
                                     functions, examples, spans_traces, models, errors, internal_error)}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    opper = Opper()  # OPPER_API_KEY and OPPER_BASE_URL, as documented
    print(json.dumps(SCENARIOS[cfg["scenario"]](opper, cfg), default=str))


if __name__ == "__main__":
    main()

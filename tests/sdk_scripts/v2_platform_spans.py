"""Span feedback, metrics, save_examples and traces through the real opperai==1.7.2 client; prints
one JSON document with what it saw. Usage: v2_platform_spans.py <scenario>."""

from __future__ import annotations

import json
import os
import sys

from opperai import Opper, errors

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")


def dump(value: object) -> None:
    print(json.dumps(value, default=lambda o: o.model_dump(mode="json") if hasattr(o, "model_dump") else str(o)))


def status_of(action) -> object:  # type: ignore[no-untyped-def]
    try:
        action()
    except errors.OpperError as exc:
        return exc.status_code
    return "no error"


def feedback_and_examples() -> None:
    """A call, then right away: save it as an example, rate it, read the span back."""
    name = sys.argv[2]
    called = opper.call(name=name, instructions="Answer.", input={"q": "why"},
                        output_schema={"type": "object", "properties": {"a": {"type": "string"}}})
    saved = opper.spans.save_examples(span_id=called.span_id)
    rated = opper.spans.submit_feedback(span_id=called.span_id, score=0.9, comment="good")
    span = opper.spans.get(span_id=called.span_id)
    dump({"span_id": called.span_id, "saved": saved, "rated": rated, "feedback": span.feedback,
          "bad_score": status_of(lambda: opper.spans.submit_feedback(span_id=called.span_id, score=2)),
          "unknown": status_of(lambda: opper.spans.save_examples(span_id="no-such-span"))})


def metrics_and_traces() -> None:
    """A span API root with a call under it, metrics on the call, and the trace read back."""
    name = sys.argv[2]
    root = opper.spans.create(name=name, input="the job")
    called = opper.call(name=f"{name}-step", input="hi", parent_span_id=root.id)
    made = opper.span_metrics.create_metric(span_id=called.span_id, dimension="accuracy", value=0.5,
                                            comment="first")
    other = opper.span_metrics.create_metric(span_id=called.span_id, dimension="tone", value=1)
    updated = opper.span_metrics.update_metric(span_id=called.span_id, metric_id=made.id, value=0.75)
    got = opper.span_metrics.get(span_id=called.span_id, metric_id=made.id)
    opper.span_metrics.delete(span_id=called.span_id, metric_id=other.id)
    listed = opper.span_metrics.list(span_id=called.span_id, offset=0, limit=10)
    traces = opper.traces.list(name=name, limit=5)
    trace = opper.traces.get(trace_id=root.trace_id)
    dump({"root": root, "call_span": called.span_id, "made": made, "updated": updated, "got": got,
          "listed": listed, "traces": traces, "trace": trace,
          "gone": status_of(lambda: opper.span_metrics.get(span_id=called.span_id, metric_id=other.id))})


SCENARIOS = {"feedback_and_examples": feedback_and_examples, "metrics_and_traces": metrics_and_traces}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()

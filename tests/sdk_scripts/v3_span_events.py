"""Span and trace events through opperai==2.1.1. The client has no events methods of its own, so
the events go through its own transport (`Opper._client`: its auth, base URL and error mapping),
and its typed `spans`/`traces` methods must still read what the events added. Prints one JSON result."""

from __future__ import annotations

import json
import sys

from opperai import ApiError, Opper

opper = Opper()  # OPPER_API_KEY and OPPER_BASE_URL, as a user would configure them


def main(name: str) -> None:
    root = opper.spans.create(name=name, input="job")
    child = opper.spans.create(name="guard", parent_id=root.id, trace_id=root.trace_id, type="tool")
    posted = opper._client._post(f"/v3/spans/{child.id}/events",
                                 {"kind": "guardrail", "source": "pii", "data": {"blocked": False}})
    opper._client._post(f"/v3/spans/{root.id}/events", {"kind": "evaluation", "data": {"score": 0.7}})
    span_events = opper._client._get(f"/v3/spans/{child.id}/events")
    trace_events = opper._client._get(f"/v3/traces/{root.trace_id}/events", query={"kind": "evaluation"})
    trace = opper.traces.get(root.trace_id)
    try:
        opper._client._post(f"/v3/spans/{child.id}/events", {"kind": "praise"})
        refused = "accepted"
    except ApiError as exc:
        refused = f"{type(exc).__name__} {exc.status}"
    print(json.dumps({"root": root.id, "child": child.id, "posted": posted, "span_events": span_events,
                      "trace_events": trace_events, "trace_span_count": trace.span_count, "refused": refused}))


if __name__ == "__main__":
    main(sys.argv[1])

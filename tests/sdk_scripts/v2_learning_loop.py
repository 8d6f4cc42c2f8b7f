"""Opper's learning loop with the real opperai==1.7.2 client, end to end: a stored function is called,
its span saved as an example, an entry added by hand, the next call made (its prompt must carry both),
feedback given, a metric recorded and listed, the trace read back and the usage grouped by model and
by a tag. Prints one JSON document with what it saw.

The server URL and key come from TASKGATE_URL / OPPER_HTTP_BEARER.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

from opperai import Opper

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")
QUESTION = {"type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]}
ANSWER = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}


def plain(value: object) -> object:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def main() -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    function = opper.functions.create(
        name=f"learning/loop-{uuid.uuid4().hex[:8]}", instructions="Give the capital of the country.",
        input_schema=QUESTION, output_schema=ANSWER, model="openai/gpt-4o-mini",
        configuration={"invocation.few_shot.count": 3},
    )
    first = opper.functions.call(function_id=function.id, input={"country": "Sweden"}, tags={"team": team})
    saved = opper.spans.save_examples(span_id=first.span_id)
    by_hand = opper.datasets.create_entry(dataset_id=function.dataset_id, input={"country": "Norway"},
                                          output={"capital": "Oslo"}, comment="written by hand")
    entries = opper.datasets.list_entries(dataset_id=function.dataset_id)
    second = opper.functions.call(function_id=function.id, input={"country": "Denmark"}, tags={"team": team})
    feedback = opper.spans.submit_feedback(span_id=second.span_id, score=1.0, comment="right", save_to_dataset=False)
    metric = opper.span_metrics.create_metric(span_id=second.span_id, dimension="accuracy", value=1.0,
                                              comment="exact")
    metrics = opper.span_metrics.list(span_id=second.span_id)
    span = opper.spans.get(span_id=second.span_id)
    trace = opper.traces.get(trace_id=span.trace_id)
    now = datetime.now(UTC)
    window = {"from_date": now - timedelta(days=1), "to_date": now + timedelta(days=1), "granularity": "day"}
    by_model = opper.analytics.get_usage(**window, group_by=["model"])
    by_tag = opper.analytics.get_usage(**window, group_by=["team"])
    print(json.dumps({
        "function": plain(function), "first": plain(first), "saved": plain(saved), "by_hand": plain(by_hand),
        "entries": plain(entries), "second": plain(second), "feedback": plain(feedback), "metric": plain(metric),
        "metrics": plain(metrics), "span": plain(span), "trace": plain(trace),
        "by_model": [plain(item) for item in by_model], "by_tag": [plain(item) for item in by_tag], "team": team,
    }, default=str))


if __name__ == "__main__":
    main()

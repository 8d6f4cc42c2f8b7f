"""opperai==1.7.2 `analytics.get_usage` and `embeddings.create` against Taskgate; prints one JSON
document with what the client parsed. Usage: v2_platform_analytics.py <scenario>."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta

from opperai import Opper, errors

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")


def usage() -> None:
    for model, customer in [("openai/gpt-4o-mini", "acme"), ("openai/gpt-4o-mini", "acme"),
                            ("anthropic/claude-haiku-4-5", "globex")]:
        opper.call(name="sdk-usage", input="hi", model=model, tags={"customer": customer})
    now = datetime.now(UTC)
    window = dict(from_date=now - timedelta(hours=1), to_date=now + timedelta(hours=1))
    by_model = opper.analytics.get_usage(**window, granularity="hour", group_by=["model"],
                                         fields=["input_tokens", "output_tokens"])
    by_tag = opper.analytics.get_usage(**window, granularity="day", group_by=["customer"], fields=["calls"])
    try:
        opper.analytics.get_usage(from_date=now, to_date=now - timedelta(days=1))
        refused = None
    except errors.BadRequestError as exc:
        refused = exc.data.detail if exc.data else str(exc)
    print(json.dumps({
        "by_model": [{"time_bucket": item.time_bucket.isoformat(), "cost": item.cost, **item.additional_properties}
                     for item in by_model],
        "by_tag": [{"cost": item.cost, **item.additional_properties} for item in by_tag],
        "refused": refused,
    }))


def embeddings() -> None:
    one = opper.embeddings.create(input="hello", model="openai/text-embedding-3-small")
    many = opper.embeddings.create(input=["a", "bb", "ccc"],
                                   model={"name": "openai/text-embedding-3-small", "options": {"dimensions": 4}})
    try:
        opper.embeddings.create(input="x", model="nowhere/model")
        refused = None
    except errors.BadRequestError as exc:
        refused = exc.data.detail if exc.data else str(exc)
    print(json.dumps({"one": one.model_dump(), "many": many.model_dump(), "refused": refused}))


def local_embeddings() -> None:
    """The offline model, named as a string and as a Model object."""
    texts = json.loads(os.environ["TEXTS"])
    named = opper.embeddings.create(input=texts, model="local/all-minilm-l6-v2")
    as_object = opper.embeddings.create(input=texts[0], model={"name": "local/all-minilm-l6-v2"})
    print(json.dumps({"named": named.model_dump(), "as_object": as_object.model_dump()}))


if __name__ == "__main__":
    {"usage": usage, "embeddings": embeddings, "local_embeddings": local_embeddings}[sys.argv[1]]()

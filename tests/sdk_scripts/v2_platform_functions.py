"""`opper.functions.*` and `opper.datasets.*` of the real opperai==1.7.2 client; prints one JSON
document with what it saw.

Usage: v2_platform_functions.py <scenario> <unique suffix>. The server URL and key come from
TASKGATE_URL / OPPER_HTTP_BEARER.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from opperai import Opper, errors, models

URL = os.environ["TASKGATE_URL"]
opper = Opper(http_bearer=os.environ["OPPER_HTTP_BEARER"], server_url=f"{URL}/v2")
SUFFIX = sys.argv[2]
OUTPUT = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}


def dump(value: object) -> None:
    print(json.dumps(value, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o)))


def error_name(call: Any) -> str:
    try:
        call()
    except errors.OpperError as exc:
        return f"{type(exc).__name__} {exc.status_code}"
    return "no error"


def functions() -> None:
    """Every `opper.functions` method but the calls, and their errors."""
    name = f"sdk/functions/{SUFFIX}"
    made = opper.functions.create(name=name, instructions="Add the numbers.", description="adds",
                                  output_schema=OUTPUT, model="openai/gpt-4o-mini",
                                  configuration=models.FunctionCallConfigurationInput(invocation_few_shot_count=2))
    got = opper.functions.get(function_id=made.id)
    by_name = opper.functions.get_by_name(name=name)
    listed = opper.functions.list(name=SUFFIX, sort="-created_at", offset=0, limit=10)
    updated = opper.functions.update(function_id=made.id, instructions="Sum them.",
                                     configuration={"invocation.few_shot.count": 1})
    revisions = opper.functions.revisions.list(function_id=made.id, offset=0, limit=10)
    first = opper.functions.get_by_revision(function_id=made.id, revision_id=made.revision_id)
    seen = {
        "created": made.model_dump(), "got": got.model_dump(), "by_name": by_name.model_dump(),
        "listed": listed.model_dump(), "updated": updated.model_dump(), "revisions": revisions.model_dump(),
        "first": first.model_dump(),
        "duplicate": error_name(lambda: opper.functions.create(name=name, instructions="again")),
        "unknown": error_name(lambda: opper.functions.get(function_id="0190a8c2-7d3e-7a1b-8c4d-5e6f7a8b9c0d")),
        "bad_body": error_name(lambda: opper.functions.create(name=f"{name}-2", instructions="x",
                                                              configuration={"invocation.few_shot.count": -1})),
    }
    called = f"sdk/called/{SUFFIX}"  # made by a call: its model as the engine stores it
    opper.call(name=called, instructions="Greet.", input="hi", model={"name": "openai/gpt-4o-mini",
                                                                     "options": {"temperature": 0.1}})
    seen["by_call"] = opper.functions.get_by_name(name=called).model_dump()
    opper.functions.delete(function_id=made.id)
    seen["after_delete"] = error_name(lambda: opper.functions.get(function_id=made.id))
    dump(seen)


def calls() -> None:
    """`call`, `stream`, `call_revision` and `stream_revision` of a stored function."""
    made = opper.functions.create(name=f"sdk/calls/{SUFFIX}", instructions="Add the numbers.", output_schema=OUTPUT)
    updated = opper.functions.update(function_id=made.id, instructions="Sum them.")
    now = opper.functions.call(function_id=made.id, input={"x": 1, "y": 2}, tags={"via": "sdk"})
    then = opper.functions.call_revision(function_id=made.id, revision_id=made.revision_id, input={"x": 1, "y": 2})
    streamed = opper.functions.stream(function_id=made.id, input={"x": 2, "y": 2})
    events = [event.data.model_dump() for event in streamed.result]
    old = opper.functions.stream_revision(function_id=made.id, revision_id=made.revision_id, input={"x": 3, "y": 2})
    old_events = [event.data.model_dump() for event in old.result]
    revisions = opper.functions.revisions.list(function_id=made.id)
    dump({"now": now.model_dump(), "then": then.model_dump(), "events": events, "old_events": old_events,
          "content_type": streamed.headers.get("content-type"), "revisions": revisions.meta.total_count,
          "current": updated.revision_id})


def datasets() -> None:
    """Every `opper.datasets` method, and `opper.datasets.entries.update`."""
    function = opper.functions.create(name=f"sdk/datasets/{SUFFIX}", instructions="Name the animal.")
    dataset_id = function.dataset_id
    assert dataset_id is not None
    cat = opper.datasets.create_entry(dataset_id=dataset_id, input={"sound": "meow"}, output="cat",
                                      expected="a cat", comment="easy")
    dog = opper.datasets.create_entry(dataset_id=dataset_id, input={"sound": "woof"}, output="dog")
    listed = opper.datasets.list_entries(dataset_id=dataset_id, offset=0, limit=10)
    got = opper.datasets.get_entry(dataset_id=dataset_id, entry_id=cat.id)
    found = opper.datasets.query_entries(dataset_id=dataset_id, query="woof", limit=1)
    updated = opper.datasets.entries.update(dataset_id=dataset_id, entry_id=dog.id, output="a dog",
                                            comment="edited")
    opper.datasets.delete_entry(dataset_id=dataset_id, entry_id=cat.id)
    dump({"cat": cat.model_dump(), "dog": dog.model_dump(), "listed": listed.model_dump(), "got": got.model_dump(),
          "found": [entry.model_dump() for entry in found], "updated": updated.model_dump(),
          "after_delete": error_name(lambda: opper.datasets.get_entry(dataset_id=dataset_id, entry_id=cat.id)),
          "unknown": error_name(lambda: opper.datasets.list_entries(dataset_id=function.id)),
          "remaining": opper.datasets.list_entries(dataset_id=dataset_id).meta.total_count})


def learning_loop() -> None:
    """A stored function is called; an entry is added by hand; the next call shows it as a demonstration."""
    function = opper.functions.create(name=f"sdk/loop/{SUFFIX}", instructions="Translate to French.")
    first = opper.functions.call(function_id=function.id, input="good morning")
    assert function.dataset_id is not None
    entry = opper.datasets.create_entry(dataset_id=function.dataset_id, input="good night", output="bonne nuit")
    second = opper.functions.call(function_id=function.id, input="good evening")
    dump({"first": first.span_id, "second": second.span_id, "entry": entry.model_dump()})


SCENARIOS = {f.__name__: f for f in (functions, calls, datasets, learning_loop)}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()

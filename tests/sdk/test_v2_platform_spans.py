"""opperai==1.7.2's span feedback, span metrics, save_examples and traces against a real server
(SQLite and Postgres): its own models must parse every answer."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.http_client import get

pytestmark = pytest.mark.sdk


def run(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str, *args: str) -> Any:
    result = sdk_venv.run("opperai-1.7.2", "v2_platform_spans.py", scenario, *args, server=server)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_feedback_and_save_examples(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    name = f"sdk-rated-{uuid.uuid4().hex[:8]}"
    fake.script("gpt-4o-mini", Behaviour(json={"a": "because"}))
    seen = run(sdk_venv, any_server, "feedback_and_examples", name)
    saved = seen["saved"]
    assert saved["dataset_id"] and saved["dataset_entry_id"]
    assert (saved["input"], saved["output"]) == ('{"q":"why"}', '{"a":"because"}')
    assert seen["rated"] == {"span_id": seen["span_id"], "score": 0.9, "example_saved": True, "comment": "good"}
    assert seen["feedback"] == {"score": 0.9, "comment": "good"}
    assert (seen["bad_score"], seen["unknown"]) == (422, 404)
    examples = get(f"{any_server.url}/v3/functions/{quote(name, safe='')}/examples").json()["examples"]
    assert len(examples) == 2  # the explicit save, then the positive feedback's


def test_metrics_and_traces(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    name = f"sdk-trace-{uuid.uuid4().hex[:8]}"
    fake.script("gpt-4o-mini", Behaviour(text="hello", usage={"prompt_tokens": 4, "completion_tokens": 2}))
    seen = run(sdk_venv, any_server, "metrics_and_traces", name)
    made, updated = seen["made"], seen["updated"]
    assert (made["dimension"], made["value"], made["comment"]) == ("accuracy", 0.5, "first")
    assert (updated["id"], updated["value"], updated["comment"]) == (made["id"], 0.75, "first")
    assert seen["got"] == updated and seen["gone"] == 404
    assert seen["listed"]["meta"]["total_count"] == 1 and [m["id"] for m in seen["listed"]["data"]] == [made["id"]]
    [item] = seen["traces"]["data"]
    assert (item["id"], item["name"], item["input"], item["total_tokens"]) == (
        seen["root"]["trace_id"], name, "the job", 6)
    trace = seen["trace"]
    assert trace["name"] == name and len(trace["spans"]) == 2
    call = next(span for span in trace["spans"] if span["id"] == seen["call_span"])
    assert call["parent_id"] == seen["root"]["id"] and call["data"]["output"] == "hello"
    assert [(m["dimension"], m["value"]) for m in call["metrics"]] == [("accuracy", 0.75)]

"""Opper's learning loop through the real `opperai==1.7.2` client, end to end, on SQLite and on
Postgres: call a stored function, save its span as an example, add an entry by hand, and see the
next call's prompt carry both; then give feedback, record a metric, read the trace back and group
the usage by model and by a tag."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def test_the_learning_loop(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", Behaviour(json={"capital": "Stockholm"}), Behaviour(json={"capital": "Copenhagen"}))
    result = sdk_venv.run("opperai-1.7.2", "v2_learning_loop.py", server=any_server)
    assert result.returncode == 0, result.stderr
    seen: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])

    function, first, second = seen["function"], seen["first"], seen["second"]
    assert first["json_payload"] == {"capital": "Stockholm"}
    assert second["json_payload"] == {"capital": "Copenhagen"}
    assert seen["saved"]["dataset_id"] == function["dataset_id"]
    assert seen["entries"]["meta"]["total_count"] == 2

    # The second call's prompt carries the saved span and the hand-written entry as few-shot examples.
    prompts = [r.json["messages"] for r in fake.requests if r.path.endswith("/chat/completions")]
    assert len(prompts) == 2
    shown = json.dumps(prompts[1])
    assert "Sweden" in shown and "Stockholm" in shown
    assert "Norway" in shown and "Oslo" in shown
    assert [message["role"] for message in prompts[0]] == ["system", "user"]  # the dataset was empty then
    assert len(prompts[1]) == len(prompts[0]) + 4  # two examples, each a user and an assistant turn

    assert seen["feedback"] == {"span_id": second["span_id"], "score": 1.0, "example_saved": False,
                                "comment": "right"}
    assert seen["span"]["feedback"] == {"score": 1.0, "comment": "right"}
    assert seen["metric"]["dimension"] == "accuracy" and seen["metric"]["value"] == 1.0
    assert [m["id"] for m in seen["metrics"]["data"]] == [seen["metric"]["id"]]

    trace = seen["trace"]
    assert trace["id"] == seen["span"]["trace_id"]
    assert [span["id"] for span in trace["spans"]] == [second["span_id"]]
    assert trace["spans"][0]["metrics"][0]["dimension"] == "accuracy"

    by_model = [item for item in seen["by_model"] if item.get("model") == "openai/gpt-4o-mini"]
    assert by_model and float(by_model[0]["cost"]) > 0
    by_tag = {item.get("team"): item for item in seen["by_tag"]}
    assert seen["team"] in by_tag
    assert float(by_tag[seen["team"]]["cost"]) == pytest.approx(first["cost"]["total"] + second["cost"]["total"])

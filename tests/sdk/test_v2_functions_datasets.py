"""`opper.functions.*` and `opper.datasets.*` of the real `opperai==1.7.2` client, in its own
virtualenv, against a real `taskgate serve` on SQLite and on Postgres."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.fakes.common import Behaviour
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def run(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str) -> dict[str, Any]:
    result = sdk_venv.run("opperai-1.7.2", "v2_platform_functions.py", scenario, uuid.uuid4().hex[:8], server=server)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_function_api(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    seen = run(sdk_venv, any_server, "functions")
    created = seen["created"]
    assert created["description"] == "adds" and created["model"] == "openai/gpt-4o-mini"
    assert created["configuration"]["invocation_few_shot_count"] == 2 and created["dataset_id"]
    assert seen["got"] == created and seen["by_name"] == created  # the name holds `/`
    assert seen["listed"]["meta"]["total_count"] == 1 and seen["listed"]["data"][0]["id"] == created["id"]
    updated = seen["updated"]
    assert updated["instructions"] == "Sum them." and updated["revision_id"] != created["revision_id"]
    assert updated["configuration"]["invocation_few_shot_count"] == 1
    assert seen["revisions"]["meta"]["total_count"] == 2
    assert [r["id"] for r in seen["revisions"]["data"]] == [updated["revision_id"], created["revision_id"]]
    assert seen["first"]["instructions"] == "Add the numbers."
    assert seen["duplicate"] == "ConflictError 409"
    assert seen["unknown"] == seen["after_delete"] == "NotFoundError 404"
    assert seen["bad_body"] == "RequestValidationError 422"
    assert seen["by_call"]["instructions"] == "Greet." and seen["by_call"]["dataset_id"]


def test_stored_calls_and_streams(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    fake.script("gpt-4o-mini", *(Behaviour(json={"sum": value}) for value in (3, 33, 4, 5)))
    seen = run(sdk_venv, any_server, "calls")
    assert seen["now"]["json_payload"] == {"sum": 3} and seen["now"]["cached"] is False
    assert seen["then"]["json_payload"] == {"sum": 33}
    chats = [r.json for r in fake.requests if r.path.endswith("/chat/completions")]
    prompts = [chat["messages"][0]["content"].split("\n")[0] for chat in chats]
    assert prompts == ["Sum them.", "Add the numbers.", "Sum them.", "Add the numbers."]
    assert seen["content_type"][0].startswith("text/event-stream")
    assert seen["events"][0]["span_id"] and {"delta": "4", "span_id": None} in seen["events"]
    assert {"delta": "5", "span_id": None} in seen["old_events"]
    assert seen["revisions"] == 2  # calling the old revision wrote no new one


def test_dataset_entries(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    seen = run(sdk_venv, any_server, "datasets")
    cat, dog = seen["cat"], seen["dog"]
    assert cat["input"] == '{"sound":"meow"}' and cat["output"] == "cat" and cat["expected"] == "a cat"
    assert cat["comment"] == "easy" and dog["expected"] is None
    assert seen["listed"]["meta"]["total_count"] == 2 and [e["id"] for e in seen["listed"]["data"]] == [dog["id"],
                                                                                                        cat["id"]]
    assert seen["got"] == cat
    assert [entry["id"] for entry in seen["found"]] == [dog["id"]]
    assert seen["updated"] == {**dog, "output": "a dog", "comment": "edited"}
    assert seen["after_delete"] == seen["unknown"] == "NotFoundError 404"
    assert seen["remaining"] == 1


def test_an_entry_added_by_hand_shapes_the_next_call(sdk_venv: SdkVenvs, any_server: ServerProcess,
                                                     fake: FakeProvider) -> None:
    seen = run(sdk_venv, any_server, "learning_loop")
    first, second = (r.json["messages"] for r in fake.requests if r.path.endswith("/chat/completions"))
    assert [m["role"] for m in first] == ["system", "user"]
    assert second[1:] == [{"role": "user", "content": "good night"}, {"role": "assistant", "content": "bonne nuit"},
                          {"role": "user", "content": "good evening"}]
    assert seen["first"] != seen["second"]

"""opperai==1.7.2's `analytics.get_usage` and `embeddings.create`, in its own virtualenv, against a
real `taskgate serve` on SQLite and Postgres."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.test_v2_analytics_embeddings import new_key
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def run(sdk_venv: SdkVenvs, server: ServerProcess, scenario: str) -> Any:
    """The scenario under a key of a project of its own, so earlier usage does not count."""
    result = sdk_venv.run("opperai-1.7.2", "v2_platform_analytics.py", scenario, server=server,
                          env={"OPPER_HTTP_BEARER": new_key(server)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_get_usage_grouped_by_model_and_tag(sdk_venv: SdkVenvs, any_server: ServerProcess,
                                            fake: FakeProvider) -> None:
    seen = run(sdk_venv, any_server, "usage")
    models = {item["model"]: item for item in seen["by_model"]}
    assert set(models) == {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"}
    for item in models.values():
        assert float(item["cost"]) > 0 and item["total_tokens"] == item["input_tokens"] + item["output_tokens"]
    assert sorted((item["customer"], item["calls"]) for item in seen["by_tag"]) == [("acme", 2), ("globex", 1)]
    assert "before" in seen["refused"]


def test_embeddings_create(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    seen = run(sdk_venv, any_server, "embeddings")
    assert seen["one"]["model"] == "openai/text-embedding-3-small" and len(seen["one"]["data"]) == 1
    assert [len(item["embedding"]) for item in seen["many"]["data"]] == [4, 4, 4]
    assert seen["many"]["usage"]["total_tokens"] > 0
    assert "nowhere" in seen["refused"]

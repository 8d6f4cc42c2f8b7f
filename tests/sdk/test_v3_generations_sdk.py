"""opperai==2.1.1's `generations` client against a real `taskgate serve`, on SQLite and Postgres."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_v2_analytics_embeddings import new_key
from tests.fakes.provider import FakeProvider
from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess
from tests.http_client import get

pytestmark = pytest.mark.sdk


def test_list_get_delete(sdk_venv: SdkVenvs, any_server: ServerProcess, fake: FakeProvider) -> None:
    key = new_key(any_server)
    result = sdk_venv.run("opperai-2.1.1", "v3_generations.py", server=any_server, env={"OPPER_API_KEY": key})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["meta"] == {"page": 1, "page_size": 10, "total_count": 1, "total_pages": 1}
    assert seen["count"] == seen["searched"] == 1
    got = seen["got"]
    assert (got["provider"], got["model"], got["status_code"]) == ("openai", "gpt-4o-mini", 200)
    assert got["request"]["messages"] and got["response"]["choices"]
    assert got["request"] == fake.requests[-1].json
    span = get(f"{any_server.url}/v3/spans/{got['span_id']}", key=key).json()["data"]
    assert span["name"] == "sdk-generations" and span["trace_id"] == got["trace_id"]
    assert seen["deleted"] == {"deleted": True} and seen["missing"] == 404

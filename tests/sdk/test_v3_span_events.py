"""v3 span and trace events through opperai==2.1.1's own transport, on SQLite and Postgres."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.fixtures import SdkVenvs
from tests.harness import ServerProcess

pytestmark = pytest.mark.sdk


def test_span_and_trace_events(sdk_venv: SdkVenvs, any_server: ServerProcess) -> None:
    result = sdk_venv.run("opperai-2.1.1", "v3_span_events.py", f"events-{uuid.uuid4().hex[:8]}", server=any_server)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    posted = seen["posted"]["data"]
    assert (posted["span_id"], posted["kind"], posted["source"], posted["data"]) == (
        seen["child"], "guardrail", "pii", {"blocked": False})
    assert seen["span_events"]["data"] == [posted] and seen["span_events"]["meta"]["total_count"] == 1
    [evaluation] = seen["trace_events"]["data"]
    assert (evaluation["span_id"], evaluation["source"], evaluation["data"]) == (seen["root"], "api", {"score": 0.7})
    assert seen["trace_span_count"] == 2
    assert seen["refused"].endswith(" 400")

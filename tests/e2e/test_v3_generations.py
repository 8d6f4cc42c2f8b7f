"""v3 generations over HTTP, on SQLite and Postgres: every upstream exchange of a call recorded with
its span, bodies as sent and received, no credentials, bounded sizes, and the hostile matrix."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from taskgate.providers.wire_capture import MAX_CAPTURE_BYTES
from tests.e2e.test_v2_analytics_embeddings import new_key
from tests.fakes.provider import Behaviour, FakeProvider
from tests.harness import ServerProcess
from tests.http_client import Reply, get, post, request, sse_events


def generations(server: ServerProcess, key: str, **params: object) -> Reply:
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return get(f"{server.url}/v3/generations?{query}", key=key)


def of_span(server: ServerProcess, key: str, span_id: str) -> list[dict[str, Any]]:
    items = generations(server, key, page_size=100).json()["data"]
    return sorted((item for item in items if item["span_id"] == span_id), key=lambda item: item["created_at"])


def test_a_call_records_its_exchange(any_server: ServerProcess, fake: FakeProvider) -> None:
    key = new_key(any_server)
    marker = uuid.uuid4().hex
    reply = post(any_server.url + "/v2/call", {"name": "gen-fn", "input": marker, "model": "openai/gpt-4o-mini"},
                 key=key)
    assert reply.status == 200, reply.body
    [item] = of_span(any_server, key, reply.json()["span_id"])
    assert (item["provider"], item["model"], item["path"], item["stream"]) == (
        "openai", "gpt-4o-mini", "/chat/completions", False)
    assert item["status_code"] == 200 and item["error"] is None and item["duration_ms"] >= 1
    assert item["request"] == fake.requests[-1].json  # the very body the vendor got
    assert item["response"]["choices"][0]["message"]["content"] == reply.json()["message"]
    assert item["request_truncated"] is item["response_truncated"] is False
    assert "sk-fake" not in str(item) and "authorization" not in str(item).lower()
    assert get(f"{any_server.url}/v3/generations/{item['id']}", key=key).json() == item
    found = generations(any_server, key, query=marker).json()
    assert [entry["id"] for entry in found["data"]] == [item["id"]]
    assert found["meta"] == {"page": 1, "page_size": 50, "total": 1, "total_count": 1, "total_pages": 1}
    assert generations(any_server, key, query="no-such-text-" + marker).json()["data"] == []
    deleted = request("DELETE", f"{any_server.url}/v3/generations/{item['id']}", key=key)
    assert (deleted.status, deleted.json()) == (200, {"deleted": True})
    assert get(f"{any_server.url}/v3/generations/{item['id']}", key=key).status == 404
    assert request("DELETE", f"{any_server.url}/v3/generations/{item['id']}", key=key).status == 404


def test_streams_fallbacks_and_errors_are_recorded(server: ServerProcess, fake: FakeProvider) -> None:
    key = new_key(server)
    fake.script("gpt-4o-mini", Behaviour(status=503))
    reply = post(server.url + "/v2/call/stream", {"name": "gen-stream", "input": "hi",
                                                  "model": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]},
                 key=key)
    assert reply.status == 200
    span_id = next(json.loads(event)["span_id"] for event in sse_events(reply) if '"span_id"' in event)
    failed, answered = of_span(server, key, span_id)
    assert (failed["provider"], failed["status_code"], failed["stream"]) == ("openai", 503, True)
    assert failed["error"] and failed["response"] is not None
    assert (answered["provider"], answered["status_code"], answered["path"]) == ("anthropic", 200, "/v1/messages")
    assert answered["request"]["stream"] is True
    names = [event["event"] for event in answered["response"]]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "ak-fake" not in str(answered)


def test_embeddings_are_recorded_and_bodies_bounded(server: ServerProcess, fake: FakeProvider) -> None:
    key = new_key(server)
    big = "word " * (MAX_CAPTURE_BYTES // 4)
    reply = post(server.url + "/v3/compat/embeddings", {"model": "openai/text-embedding-3-small", "input": big},
                 key=key)
    assert reply.status == 200, reply.body
    [item] = of_span(server, key, reply.headers["x-opper-span-id"])
    assert item["path"] == "/embeddings" and item["request_truncated"] is True
    assert isinstance(item["request"], str) and len(item["request"].encode()) <= MAX_CAPTURE_BYTES
    assert item["response_truncated"] is False and item["response"]["data"][0]["embedding"]


def test_another_projects_generation_is_404(any_server: ServerProcess, fake: FakeProvider) -> None:
    mine, theirs = new_key(any_server), new_key(any_server)
    reply = post(any_server.url + "/v2/call", {"name": "private", "input": "x"}, key=theirs)
    [item] = of_span(any_server, theirs, reply.json()["span_id"])
    assert get(f"{any_server.url}/v3/generations/{item['id']}", key=mine).status == 404
    assert request("DELETE", f"{any_server.url}/v3/generations/{item['id']}", key=mine).status == 404
    assert generations(any_server, mine).json()["data"] == []
    assert get(f"{any_server.url}/v3/generations/{item['id']}", key=theirs).status == 200


@pytest.mark.parametrize("params", [
    {"page": 0}, {"page": -1}, {"page": "x"}, {"page": 10**30}, {"page_size": 0}, {"page_size": 101},
    {"page_size": "1.5"}, {"query": "q" * 501},
])
def test_bad_paging_is_400(any_server: ServerProcess, params: dict[str, object]) -> None:
    reply = generations(any_server, any_server.api_key, **params)
    assert reply.status == 400 and reply.json()["error"]["message"]


def test_unknown_ids_and_keys(server: ServerProcess) -> None:
    for generation_id in ("nope", "123e4567-e89b-12d3-a456-426614174000", "x" * 5000):
        assert get(f"{server.url}/v3/generations/{generation_id}").status == 404
    assert get(server.url + "/v3/generations", key=None).status == 401
    assert get(server.url + "/v3/generations", key="wrong").status == 401
    assert post(server.url + "/v3/generations", {}).status == 405

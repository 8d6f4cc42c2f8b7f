"""Three replicas on one Postgres and one Redis, with calls spread over them (tests/replicas.py).

A cached answer is a hit on every replica; a function changed through one replica is called as
changed on another at once; an alias made on one resolves on the others; a span id one replica
answered is readable from all the others at once (their batches are held for 30 s, so only the
span mirror can answer); and a Redis that dies (a throwaway `redis-server`, killed) costs no 5xx,
after which the replicas use it again once it is back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess, free_port
from tests.http_client import Reply, request
from tests.limits_helpers import make_key
from tests.replicas import SHARED_REDIS, ReplicaSet, ThrowawayRedis, redis_unreachable
from tests.store_fixtures import PostgresDatabases

# Spans reach the store only after 30 s: within a test, a span read on another replica came from Redis.
HELD_SPANS = {"TASKGATE_SPAN_FLUSH_SECONDS": "30"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def database(postgres: PostgresDatabases | str) -> str:
    if isinstance(postgres, str):
        pytest.skip(postgres)
    return postgres.create()


@pytest.fixture(scope="module")
def replicas(fake_provider: FakeProvider, postgres: PostgresDatabases | str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaSet]:
    reason = redis_unreachable()
    if reason:
        pytest.skip(reason)
    with ReplicaSet(fake_provider, tmp_path_factory.mktemp("replicas"), database(postgres), SHARED_REDIS,
                    env=HELD_SPANS) as replica_set:
        yield replica_set


def call(server: ServerProcess, name: str, **fields: Any) -> Reply:
    return request("POST", f"{server.url}/v2/call", {"name": name, "input": "hello", **fields})


def function_call(server: ServerProcess, name: str, **fields: Any) -> Reply:
    return request("POST", f"{server.url}/v3/functions/{quote(name, safe='')}/call", {"input": "hello", **fields})


def system_prompt(fake: FakeProvider) -> str:
    """The instructions the last upstream request carried."""
    messages = fake.requests[-1].json["messages"]
    return "\n".join(str(m["content"]) for m in messages if m["role"] == "system")


def test_a_cached_answer_is_a_hit_on_every_replica(replicas: ReplicaSet, fake: FakeProvider) -> None:
    name = unique("cached")
    config = {"invocation.cache.ttl": 60}
    answers = [call(server, name, configuration=config) for server in replicas.servers]
    assert [reply.status for reply in answers] == [200, 200, 200], replicas.stderr()
    assert [reply.json()["cached"] for reply in answers] == [False, True, True]
    assert len({reply.json()["message"] for reply in answers}) == 1
    assert len(fake.requests) == 1  # only the first replica asked the provider


def test_a_function_changed_on_one_replica_is_called_changed_on_another_within_100ms(
        replicas: ReplicaSet, fake: FakeProvider) -> None:
    first, second, third = replicas.servers
    name = unique("prompted")
    for server in replicas.servers:  # every replica now remembers the function as first written
        assert function_call(server, name, instructions="First prompt.").status == 200
    assert function_call(second, name).status == 200 and "First prompt." in system_prompt(fake)
    fid = request("GET", f"{first.url}/v2/functions/by-name/{quote(name)}").json()["id"]
    changed = request("PATCH", f"{first.url}/v2/functions/{fid}", {"instructions": "Second prompt."})
    assert changed.status == 200
    updated_at = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # both called at once, right after the change was answered
        calls = list(pool.map(lambda server: (time.monotonic() - updated_at, function_call(server, name)),
                              (second, third)))
    for sent_after, reply in calls:
        assert sent_after < 0.1 and reply.status == 200
    prompts = [str(m["content"]) for r in fake.requests[-2:] for m in r.json["messages"] if m["role"] == "system"]
    assert sum("Second prompt." in prompt for prompt in prompts) == 2, prompts


def test_examples_added_on_one_replica_are_shown_by_the_others_at_once(replicas: ReplicaSet,
                                                                       fake: FakeProvider) -> None:
    first, second, third = replicas.servers
    made = request("POST", f"{first.url}/v2/functions", {"name": unique("shots"), "instructions": "Echo.",
                                                          "configuration": {"invocation.few_shot.count": 2}})
    assert made.status == 201, made.body
    call_path = f"/v2/functions/{made.json()['id']}/call"

    def shown() -> list[str]:
        return [m["content"] for m in fake.requests[-1].json["messages"] if m["role"] == "assistant"]

    for server in (second, third):  # each finds the function without examples, and remembers that
        assert request("POST", server.url + call_path, {"input": "banana"}).status == 200 and shown() == []
    entry = {"input": "banana", "output": "BANANA"}
    assert request("POST", f"{first.url}/v2/datasets/{made.json()['dataset_id']}", entry).status == 200
    for server in (second, third):
        assert request("POST", server.url + call_path, {"input": "banana"}).status == 200
        assert shown() == ["BANANA"], f"{server.url} did not show the example added on {first.url}"


def test_an_alias_made_on_one_replica_resolves_on_the_others(replicas: ReplicaSet, fake: FakeProvider) -> None:
    first, second, third = replicas.servers
    for server in (second, third):  # each reads the project's (alias-less) model names, and keeps them
        assert call(server, unique("warm"), model="openai/gpt-4o-mini").status == 200
    alias = unique("team-fast")
    made = request("POST", f"{first.url}/v2/models/aliases", {"name": alias, "fallback_models": ["openai/gpt-4o"]})
    assert made.status == 200, made.body
    for server in (second, third):
        reply = call(server, unique("aliased"), model=alias)
        assert reply.status == 200, reply.body
        assert fake.requests[-1].model == "gpt-4o"


def test_a_key_revoked_on_one_replica_is_refused_by_the_others_at_once(replicas: ReplicaSet,
                                                                         fake: FakeProvider) -> None:
    first, second, third = replicas.servers
    key_id, secret = make_key(first)
    for server in (second, third):  # each reads the key, and would keep it for REFRESH_S without notices
        assert request("GET", f"{server.url}/v2/functions", key=secret).status == 200
    assert request("DELETE", f"{first.url}/v2/admin/keys/{key_id}").status == 200
    time.sleep(0.1)  # the notice's way through Redis
    for server in (second, third):
        assert request("GET", f"{server.url}/v2/functions", key=secret).status == 401


def test_a_span_and_its_trace_are_readable_from_every_replica_at_once(replicas: ReplicaSet, fake: FakeProvider) -> None:
    for _ in range(6):
        answered_by, reply = replicas.send("POST", "/v2/call", {"name": unique("traced"), "input": "hi"})
        assert reply.status == 200
        span_id = reply.json()["span_id"]
        for server in replicas.servers:
            started = time.monotonic()
            for path in (f"/v3/spans/{span_id}", f"/v2/spans/{span_id}"):
                found = request("GET", server.url + path)
                assert found.status == 200, (answered_by.url, server.url, path, found.body)
                assert found.json()["id"] == span_id
            trace_id = found.json()["trace_id"]
            for path in (f"/v3/traces/{trace_id}", f"/v2/traces/{trace_id}"):
                trace = request("GET", server.url + path)
                assert trace.status == 200, (answered_by.url, server.url, path, trace.body)
                assert [item["id"] for item in trace.json()["spans"]] == [span_id]
            assert time.monotonic() - started < 0.5  # read from Redis, not waited for


def test_a_missing_span_is_a_404_without_waiting_for_peers(replicas: ReplicaSet, fake: FakeProvider) -> None:
    started = time.monotonic()
    assert request("GET", f"{replicas.next().url}/v3/spans/{uuid.uuid4()}").status == 404
    assert time.monotonic() - started < 0.5  # without Redis a shared store waits up to 2 s for peers' batches


def test_redis_dying_costs_no_5xx_and_is_used_again_once_back(
        fake_provider: FakeProvider, postgres: PostgresDatabases | str, tmp_path: Path) -> None:
    missing = ThrowawayRedis.missing()
    if missing:
        pytest.skip(missing)
    url = database(postgres)
    with ThrowawayRedis(tmp_path / "redis") as redis_server, \
            ReplicaSet(fake_provider, tmp_path, url, redis_server.url, env={"TASKGATE_SPAN_FLUSH_SECONDS": "0.2"}) \
            as replicas:
        first, second, _ = replicas.servers
        name = unique("outage")
        fake_provider.clear()
        statuses = [status for _ in range(2) for status in _every_kind_of_request(replicas, name)]
        redis_server.kill()
        for _ in range(3):
            statuses += _every_kind_of_request(replicas, name)
        assert statuses and all(status < 500 for status in statuses), (statuses, replicas.stderr())
        assert "Redis failed" in replicas.stderr()
        ready = request("GET", f"{first.url}/ready", key=None)
        assert ready.status == 200 and ready.json()["redis"] == "down"  # still ready: it falls back

        redis_server.start()  # the same port: the replicas reconnect on their own
        deadline = time.monotonic() + 15
        while not _change_seen_at_once(first, second, unique("back")):
            assert time.monotonic() < deadline, "a change on one replica was never seen at once after Redis returned"
            time.sleep(0.3)
        cached = unique("cached-again")
        config = {"invocation.cache.ttl": 60}
        assert call(first, cached, configuration=config).json()["cached"] is False
        assert call(second, cached, configuration=config).json()["cached"] is True
        assert "Redis answers again" in replicas.stderr()
        assert request("GET", f"{second.url}/ready", key=None).json()["redis"] == "ok"


def test_a_server_starts_and_answers_with_its_redis_unreachable(fake_provider: FakeProvider, tmp_path: Path) -> None:
    nothing = f"redis://127.0.0.1:{free_port()}/0"
    with ServerProcess(fake_provider, tmp_path, env={"TASKGATE_REDIS_URL": nothing}) as server:
        name = unique("no-redis")
        replies = [call(server, name, configuration={"invocation.cache.ttl": 60}) for _ in range(2)]
        assert [reply.status for reply in replies] == [200, 200]
        assert replies[1].json()["cached"] is True  # from the store's cache table
        assert request("GET", f"{server.url}/v3/spans/{replies[0].json()['span_id']}").status == 200
        assert function_call(server, name, instructions="Changed.").status == 200
        assert "Redis failed" in server.stderr_text()
        assert request("GET", f"{server.url}/ready", key=None).json()["redis"] == "down"


def _every_kind_of_request(replicas: ReplicaSet, name: str) -> list[int]:
    """One of each request that touches Redis (cached call, stream, function change, example, alias,
    span look-up), on every replica; their statuses."""
    statuses = []
    for server in replicas.servers:
        replies = [
            call(server, name, configuration={"invocation.cache.ttl": 60}),
            request("POST", f"{server.url}/v2/call/stream", {"name": name, "input": "hello"}),
            function_call(server, name, instructions=f"Prompt {uuid.uuid4()}."),
            request("POST", f"{server.url}/v3/functions/{quote(name)}/examples", {"input": "a", "output": "b"}),
            request("POST", f"{server.url}/v2/models/aliases",
                    {"name": unique("alias"), "fallback_models": ["openai/gpt-4o"]}),
        ]
        span_id = replies[0].json()["span_id"]
        replies += [request("GET", f"{other.url}/v3/spans/{span_id}") for other in replicas.servers]
        statuses += [reply.status for reply in replies]
        assert all(reply.status == 200 for reply in replies[-3:]), [r.body for r in replies[-3:]]
    return statuses


def _change_seen_at_once(first: ServerProcess, second: ServerProcess, name: str) -> bool:
    """Whether `second`, remembering a function, calls it as changed on `first` right after the change."""
    assert function_call(second, name, instructions="Before.").status == 200
    fid = request("GET", f"{first.url}/v2/functions/by-name/{quote(name)}").json()["id"]
    assert request("PATCH", f"{first.url}/v2/functions/{fid}", {"instructions": "After."}).status == 200
    reply = function_call(second, name)
    return reply.status == 200 and "After." in system_prompt(first.fake)

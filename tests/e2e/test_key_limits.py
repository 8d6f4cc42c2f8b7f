"""Keys with limits through a real `taskgate serve`, on SQLite and on Postgres: requests and tokens
per minute (429 with Retry-After), a USD budget (402 BudgetExceededError), the allowed models
(403, on every endpoint that calls a model and for every model of a chain), usage readable per key,
and budgets that survive a restart."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_v2_rerank import rerank_env
from tests.fakes.provider import FakeProvider
from tests.harness import ServerProcess
from tests.http_client import KEY, Reply, get, post
from tests.limits_helpers import CALL_MODEL, call, make_key, patch_key, usage

PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC")


@pytest.fixture(scope="module")
def limits_server(fake_provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose rerank presets point at the fake too (every endpoint that calls a model works)."""
    process = ServerProcess(fake_provider, Path(tmp_path_factory.mktemp("taskgate-limits")),
                            env={**rerank_env(fake_provider), "TASKGATE_SPAN_FLUSH_SECONDS": "0.2"})
    process.start()
    yield process
    process.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_server(request: pytest.FixtureRequest) -> ServerProcess:
    """The module's SQLite server, then the session's Postgres one."""
    return request.getfixturevalue("limits_server" if request.param == "sqlite" else "pg_server")  # type: ignore[no-any-return]


def test_requests_per_minute_refuse_the_next_call_with_retry_after(store_server: ServerProcess) -> None:
    _, key = make_key(store_server, rpm=3)
    assert [call(store_server, key).status for _ in range(3)] == [200, 200, 200]
    refused = call(store_server, key)
    assert refused.status == 429, refused.body
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # one request refills in 60/3 s
    body = refused.json()
    assert body["type"] == "RateLimitError" and body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["scope"] == "key" and body["error"]["details"]["per_minute"] == 3
    _, other = make_key(store_server, rpm=3)
    assert call(store_server, other).status == 200  # each key has its own bucket


def test_a_request_with_several_model_calls_counts_once(limits_server: ServerProcess) -> None:
    _, key = make_key(limits_server, rpm=2)
    chat = {"model": CALL_MODEL, "n": 4, "messages": [{"role": "user", "content": "hi"}]}
    many = post(f"{limits_server.url}/v3/compat/chat/completions", chat, key=key)
    assert many.status == 200 and len(many.json()["choices"]) == 4
    assert [call(limits_server, key).status for _ in range(2)] == [200, 429]


def test_tokens_per_minute_shut_the_key_once_spent(store_server: ServerProcess) -> None:
    _, key = make_key(store_server, tpm=5)
    first = call(store_server, key)
    assert first.status == 200, first.body  # a call is let in while the bucket holds any tokens
    assert first.json()["usage"]["total_tokens"] > 5
    refused = call(store_server, key)
    assert refused.status == 429 and refused.json()["error"]["details"]["limit"] == "tpm"
    assert int(refused.headers["retry-after"]) >= 1


def test_a_budget_lets_the_calls_it_covers_and_refuses_the_next(store_server: ServerProcess) -> None:
    probe_id, probe = make_key(store_server)
    cost = call(store_server, probe).json()["cost"]["total"]
    assert cost > 0
    key_id, key = make_key(store_server, budget_usd=cost * 2.5, period="day")
    assert [call(store_server, key).status for _ in range(3)] == [200, 200, 200]
    refused = call(store_server, key)
    assert refused.status == 402, refused.body
    body = refused.json()
    assert body["type"] == "BudgetExceededError" and body["error"]["code"] == "budget_exceeded"
    details = body["error"]["details"]
    assert details["period"] == "day" and details["spent_usd"] == pytest.approx(cost * 3)
    assert details["resets_at"].endswith("+00:00")
    spent = usage(store_server, key_id)
    assert spent["day"]["requests"] == 3 and spent["month"]["requests"] == 3
    assert spent["day"]["cost_usd"] == pytest.approx(cost * 3) and spent["day"]["tokens"] > 0
    assert spent["budget"]["remaining_usd"] == 0.0
    assert usage(store_server, probe_id)["day"]["requests"] == 1


def test_raising_a_budget_lets_the_key_call_again(store_server: ServerProcess) -> None:
    _, probe = make_key(store_server)
    cost = call(store_server, probe).json()["cost"]["total"]
    key_id, key = make_key(store_server, budget_usd=cost / 2)
    assert call(store_server, key).status == 200
    assert call(store_server, key).status == 402
    assert patch_key(store_server, key_id, {"budget_usd": cost * 10}).status == 200
    assert call(store_server, key).status == 200  # the admin API's change is read at once on this replica


def test_project_limits_bind_every_key_of_the_project(limits_server: ServerProcess) -> None:
    """A bootstrap key may set its project's limits; they bind its own calls too (it is the operator's
    guard rail), until it lifts them."""
    try:
        set_limits = post_patch(limits_server, "/v2/admin/project", {"rpm": 2, "models": ["openai/*"]})
        assert set_limits.status == 200, set_limits.body
        _, key = make_key(limits_server)
        assert call(limits_server, key, "anthropic/claude-haiku-4-5").status == 403
        statuses = [call(limits_server, key).status for _ in range(2)] + [call(limits_server, KEY).status]
        assert statuses == [200, 200, 429]
        assert get(f"{limits_server.url}/v2/admin/project").json()["limits"]["rpm"] == 2
    finally:
        lifted = post_patch(limits_server, "/v2/admin/project", {"rpm": None, "models": None})
        assert lifted.status == 200 and lifted.json()["limits"]["rpm"] is None


def post_patch(server: ServerProcess, path: str, body: Any, key: str = KEY) -> Reply:
    from tests.http_client import request

    return request("PATCH", server.url + path, body, key=key)


# ------------------------------------------------------------------ allowed models, on every endpoint

def _endpoints(kb_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """A request to each endpoint that calls a model, naming `openai/...` models."""
    chat = {"model": CALL_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    return {
        "v2 call": ("/v2/call", {"name": "f", "input": "x", "model": CALL_MODEL}),
        "v2 stream": ("/v2/call/stream", {"name": "f", "input": "x", "model": CALL_MODEL}),
        "v2 function call": ("/v2/functions/{function_id}/call", {"input": "x"}),
        "v3 call": ("/v3/call", {"name": "f", "input": "x", "model": CALL_MODEL}),
        "v3 stream": ("/v3/call/stream", {"name": "f", "input": "x", "model": CALL_MODEL}),
        "chat completions": ("/v3/compat/chat/completions", chat),
        "chat stream": ("/v3/compat/chat/completions", {**chat, "stream": True}),
        "responses": ("/v3/compat/responses", {"model": CALL_MODEL, "input": "hi"}),
        "messages": ("/v3/compat/v1/messages", {**chat, "max_tokens": 10}),
        "compat embeddings": ("/v3/compat/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"}),
        "v2 embeddings": ("/v2/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"}),
        "rerank": ("/v2/rerank", {"model": "jina/jina-reranker-v2-base-multilingual", "query": "q",
                                  "documents": [{"text": "a"}, {"text": "b"}]}),
        "ocr": ("/v2/ocr", {"model": CALL_MODEL, "document": {"type": "base64", "content": PNG_B64,
                                                               "document_name": "x.png"}}),
        "knowledge query": (f"/v2/knowledge/{kb_id}/query", {"query": "capital"}),
        "knowledge add": (f"/v2/knowledge/{kb_id}/add", {"content": "Paris is in France."}),
    }


@pytest.fixture(scope="module")
def model_targets(limits_server: ServerProcess) -> dict[str, tuple[str, dict[str, Any]]]:
    """The endpoints, with a knowledge base (embedding with an openai model) and a function to call."""
    base = post(f"{limits_server.url}/v2/knowledge", {"name": f"kb-{uuid.uuid4().hex[:6]}",
                                                     "embedding_model": "openai/text-embedding-bow-1"})
    assert base.status == 200, base.body
    function = post(f"{limits_server.url}/v2/functions", {"name": f"fn-{uuid.uuid4().hex[:6]}",
                                                         "model": CALL_MODEL, "instructions": "echo"})
    assert function.status == 201, function.body
    targets = _endpoints(base.json()["id"])
    path, body = targets["v2 function call"]
    targets["v2 function call"] = (path.format(function_id=function.json()["id"]), body)
    return targets


@pytest.mark.parametrize("endpoint", list(_endpoints("kb")))
def test_a_model_outside_the_list_is_refused_on_every_endpoint(limits_server: ServerProcess, fake: FakeProvider,
                                                              model_targets: dict[str, Any], endpoint: str) -> None:
    path, body = model_targets[endpoint]
    allowed = post(limits_server.url + path, body)  # the bootstrap key: no list
    assert allowed.status in (200, 201), (endpoint, allowed.body[:300])
    _, key = make_key(limits_server, models=["anthropic/*"])
    before = len(fake.requests)
    refused = post(limits_server.url + path, body, key=key)
    assert refused.status == 403, (endpoint, refused.body[:300])
    error = refused.json()["error"]
    if endpoint == "messages":  # Anthropic's error shape
        assert error["type"] == "permission_error" and "not allowed" in error["message"]
    else:
        assert error["code"] == "model_not_allowed" and refused.json()["type"] == "ForbiddenError"
    assert len(fake.requests) == before  # refused before any upstream call


def test_every_model_of_a_fallback_chain_must_be_allowed(limits_server: ServerProcess) -> None:
    _, key = make_key(limits_server, models=["openai/gpt-4o-mini", "anthropic/claude-*"])
    assert call(limits_server, key, ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]).status == 200
    refused = call(limits_server, key, ["openai/gpt-4o-mini", "openai/gpt-4o"])
    assert refused.status == 403 and refused.json()["error"]["details"]["model"] == "openai/gpt-4o"


def test_every_model_an_alias_stands_for_must_be_allowed(limits_server: ServerProcess) -> None:
    alias = f"alias-{uuid.uuid4().hex[:6]}"
    made = post(f"{limits_server.url}/v2/models/aliases",
                {"name": alias, "fallback_models": ["openai/gpt-4o-mini", "openai/gpt-4o"]})
    assert made.status == 200, made.body
    _, narrow = make_key(limits_server, models=["openai/gpt-4o-mini"])
    assert call(limits_server, narrow, alias).status == 403
    _, wide = make_key(limits_server, models=["openai/gpt-4o*"])
    assert call(limits_server, wide, alias).status == 200
    _, by_name = make_key(limits_server, models=[alias])  # the alias's own name is not what is called
    assert call(limits_server, by_name, alias).status == 403


def test_a_refused_call_records_nothing_and_counts_no_request(limits_server: ServerProcess) -> None:
    key_id, key = make_key(limits_server, rpm=5, models=["anthropic/*"])
    assert call(limits_server, key).status == 403
    assert usage(limits_server, key_id)["day"]["requests"] == 0


# ------------------------------------------------------------------ streams and restarts

def test_a_stream_counts_its_tokens_and_cost(limits_server: ServerProcess) -> None:
    key_id, key = make_key(limits_server, tpm=1_000_000)
    reply = post(f"{limits_server.url}/v3/compat/chat/completions",
                 {"model": CALL_MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}, key=key)
    assert reply.status == 200
    spent = wait_for(lambda: usage(limits_server, key_id)["day"], lambda day: day["tokens"] > 0)
    assert spent["requests"] == 1 and spent["cost_usd"] > 0


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_a_spent_budget_stays_spent_after_a_restart(fake: FakeProvider, tmp_path: Path) -> None:
    with ServerProcess(fake, tmp_path / "data") as server:
        _, probe = make_key(server)
        cost = call(server, probe).json()["cost"]["total"]
        key_id, key = make_key(server, budget_usd=cost * 1.5)
        assert [call(server, key).status for _ in range(3)] == [200, 200, 402]
    with ServerProcess(fake, tmp_path / "data") as server:
        assert call(server, key).status == 402  # counted from the store's usage totals
        assert usage(server, key_id)["month"]["requests"] == 2
        assert call(server, probe).status == 200


def test_a_revoked_key_no_longer_authenticates(limits_server: ServerProcess) -> None:
    key_id, key = make_key(limits_server)
    assert call(limits_server, key).status == 200
    from tests.http_client import request

    revoked = request("DELETE", f"{limits_server.url}/v2/admin/keys/{key_id}")
    assert revoked.status == 200 and revoked.json()["revoked_at"] is not None
    assert call(limits_server, key).status == 401
    listed = get(f"{limits_server.url}/v2/admin/keys?include_revoked=true").json()["data"]
    assert key_id in [k["id"] for k in listed]
    assert key_id not in [k["id"] for k in get(f"{limits_server.url}/v2/admin/keys").json()["data"]]
    assert usage(limits_server, key_id)["day"]["requests"] == 1  # its usage stays readable

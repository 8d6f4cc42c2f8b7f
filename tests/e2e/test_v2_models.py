"""v2 `/models`, `/models/custom` and `/models/aliases` over HTTP on SQLite and Postgres, and the
names they define used in calls of every dialect: through a custom model served by the fake
provider, through an alias that falls back, and to a custom model nobody listens for."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.fakes.common import Behaviour
from tests.harness import ServerProcess, taskgate_command
from tests.http_client import Reply, get, post, request, sse_events

SECRET = "sk-custom-secret-0123456789"
CLOSED_PORT_BASE = "http://127.0.0.1:1/v1"  # nothing listens on port 1


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body[:500])
    body = reply.json()
    assert isinstance(body["detail"], str) and body["error"]["message"]
    return body


def custom(server: ServerProcess, name: str, base: str, **fields: Any) -> dict[str, Any]:
    reply = post(f"{server.url}/v2/models/custom",
                 {"name": name, "identifier": "gpt-4o-mini", "extra": {"api_base": base}, **fields})
    assert reply.status == 200, reply.body
    return reply.json()  # type: ignore[no-any-return]


def alias(server: ServerProcess, name: str, *models: str, **fields: Any) -> dict[str, Any]:
    reply = post(f"{server.url}/v2/models/aliases", {"name": name, "fallback_models": list(models), **fields})
    assert reply.status == 200, reply.body
    return reply.json()  # type: ignore[no-any-return]


def other_project_key(server: ServerProcess) -> str:
    result = subprocess.run([*taskgate_command(), "keys", "create", "--project", unique("other"),
                             "--data-dir", str(server.data_dir)], env=server.env, capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()


# ---- GET /models

@pytest.mark.parametrize("prefix", ["/v2", ""])
def test_the_model_list_has_the_catalogues_models_paged(any_server: ServerProcess, prefix: str) -> None:
    reply = get(f"{any_server.url}{prefix}/models?limit=5&offset=1")
    assert reply.status == 200
    body = reply.json()
    assert body["meta"]["total_count"] > 5 and len(body["data"]) == 5
    model = body["data"][0]
    assert set(model) == {"hosting_provider", "name", "location", "input_cost_per_token", "output_cost_per_token"}
    everything = get(f"{any_server.url}/v2/models?limit=1000").json()
    assert len(everything["data"]) == min(100, everything["meta"]["total_count"])  # capped
    names = {m["name"]: m for m in everything["data"]}
    mini = names.get("openai/gpt-4o-mini") or next(m for m in everything["data"] if m["hosting_provider"] == "openai")
    assert mini["location"] == "remote" and mini["input_cost_per_token"] > 0


@pytest.mark.parametrize("query", ["limit=-1", "offset=-5", "limit=abc", "offset=1.5", "limit=99999999999999"])
def test_bad_paging_is_a_400(server: ServerProcess, query: str) -> None:
    for path in ("/v2/models", "/v2/models/custom", "/v2/models/aliases"):
        error_of(get(f"{server.url}{path}?{query}"), 400)


# ---- CRUD

def test_a_custom_model_round_trip_never_shows_its_key(any_server: ServerProcess) -> None:
    url, name = any_server.url, unique("acme/llama")
    created = custom(any_server, name, "https://llm.example.com/v1", api_key=SECRET)
    assert created == {"id": created["id"], "name": name, "identifier": "gpt-4o-mini",
                       "extra": {"api_base": "https://llm.example.com/v1"}}
    replies = [
        get(f"{url}/v2/models/custom/{created['id']}"),
        get(f"{url}/v2/models/custom/by-name/{name}"),
        get(f"{url}/models/custom/by-name/{name}"),
        get(f"{url}/v2/models/custom?limit=100"),
        request("PATCH", f"{url}/v2/models/custom/{created['id']}",
                {"identifier": "other-id", "extra": {"api_base": "https://x.example/v1", "api_version": "2024-06-01"}}),
        request("PATCH", f"{url}/v2/models/custom/{created['id']}", {"api_key": SECRET + "-new"}),
    ]
    for reply in replies:
        assert reply.status == 200 and b"sk-custom-secret" not in reply.body and b"api_key" not in reply.body
    assert replies[0].json() == created
    listed = [m for m in replies[3].json()["data"] if m["id"] == created["id"]]
    assert listed == [created]
    updated = replies[5].json()
    assert updated["identifier"] == "other-id" and updated["extra"]["api_version"] == "2024-06-01"
    assert request("DELETE", f"{url}/v2/models/custom/{created['id']}").status == 204
    error_of(get(f"{url}/v2/models/custom/{created['id']}"), 404)
    error_of(request("DELETE", f"{url}/v2/models/custom/{created['id']}"), 404)


def test_an_alias_round_trip(any_server: ServerProcess) -> None:
    url, name = any_server.url, unique("team/fast")
    created = alias(any_server, name, "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", description="fast ones")
    assert created == {"id": created["id"], "name": name, "description": "fast ones",
                       "fallback_models": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]}
    assert get(f"{url}/v2/models/aliases/{created['id']}").json() == created
    assert get(f"{url}/v2/models/aliases/by-name/{name}").json() == created
    renamed = request("PATCH", f"{url}/v2/models/aliases/{created['id']}", {"name": name + "-2", "description": None})
    assert renamed.status == 200
    assert renamed.json()["name"] == name + "-2" and renamed.json()["description"] is None
    assert renamed.json()["fallback_models"] == created["fallback_models"]
    error_of(get(f"{url}/v2/models/aliases/by-name/{name}"), 404)
    assert request("DELETE", f"{url}/models/aliases/{created['id']}").status == 204
    error_of(get(f"{url}/v2/models/aliases/{created['id']}"), 404)


def test_duplicate_names_are_409_across_both_kinds(any_server: ServerProcess) -> None:
    url, name = any_server.url, unique("dup")
    custom(any_server, name, "https://x.example/v1")
    for path, body in (("custom", {"name": name, "identifier": "m", "extra": {"api_base": "https://y.example"}}),
                       ("aliases", {"name": name, "fallback_models": ["openai/gpt-4o-mini"]})):
        assert error_of(post(f"{url}/v2/models/{path}", body), 409)["error"]["code"] == "conflict"
    other = alias(any_server, unique("dup"), "openai/gpt-4o-mini")
    error_of(request("PATCH", f"{url}/v2/models/aliases/{other['id']}", {"name": name}), 409)


def test_another_projects_names_are_404_and_not_callable(any_server: ServerProcess) -> None:
    url = any_server.url
    mine_custom = custom(any_server, unique("private"), any_server.fake.openai_base_url)
    mine_alias = alias(any_server, unique("private"), "openai/gpt-4o-mini")
    key = other_project_key(any_server)
    for kind, record in (("custom", mine_custom), ("aliases", mine_alias)):
        error_of(get(f"{url}/v2/models/{kind}/{record['id']}", key=key), 404)
        error_of(get(f"{url}/v2/models/{kind}/by-name/{record['name']}", key=key), 404)
        error_of(request("PATCH", f"{url}/v2/models/{kind}/{record['id']}", {"name": unique("x")}, key=key), 404)
        error_of(request("DELETE", f"{url}/v2/models/{kind}/{record['id']}", key=key), 404)
        listed = get(f"{url}/v2/models/{kind}", key=key).json()
        assert listed == {"meta": {"total_count": 0}, "data": []}
        assert get(f"{url}/v2/models/{kind}/{record['id']}").status == 200  # still there for its owner
    refused = post(f"{url}/v2/call", {"name": "t", "input": "x", "model": mine_alias["name"]}, key=key)
    assert refused.status == 400  # to them it is only a malformed or unknown model name


# ---- hostile input

@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"identifier": "m", "extra": {"api_base": "https://x"}}, 422, "'name' is required"),
    ({"name": "n"}, 422, "'identifier' is required"),
    ({"name": 5, "identifier": "m"}, 422, "'name' must be a string"),
    ({"name": "n", "identifier": ["m"]}, 422, "'identifier' must be a string"),
    ({"name": "n", "identifier": "m", "extra": "https://x"}, 422, "'extra' must be an object"),
    ({"name": "n", "identifier": "m", "extra": {"api_base": "https://x"}, "api_key": 7}, 422, "api_key"),
    ({"name": "n", "identifier": "m", "extra": {"api_base": "https://x"}, "owner": "me"}, 422, "unknown fields"),
    ({"name": "x" * 300, "identifier": "m", "extra": {"api_base": "https://x"}}, 422, "1 to 256"),
    ({"name": " padded ", "identifier": "m", "extra": {"api_base": "https://x"}}, 422, "spaces"),
    ({"name": "bad\u0000name", "identifier": "m", "extra": {"api_base": "https://x"}}, 422, "printable"),
    ({"name": "n", "identifier": "m"}, 400, "api_base is required"),
    ({"name": "n", "identifier": "m", "extra": {"api_base": "file:///etc/passwd"}}, 400, "http:// or https://"),
    ({"name": "n", "identifier": "m", "extra": {"api_base": "gopher://127.0.0.1:70/"}}, 400, "http:// or https://"),
    ({"name": "n", "identifier": "m", "extra": {"api_base": "http://u:p@h/v1"}}, 400, "credentials"),
    ({"name": "n", "identifier": "m", "extra": {"api_base": "https://x", "api_version": "v" * 100}}, 400,
     "api_version"),
    ({"name": "n", "identifier": "m", "extra": {"api_base": "https://x"}, "api_key": "k" * 5000}, 400, "api_key"),
])
def test_malformed_custom_models_are_refused(server: ServerProcess, body: dict[str, Any], status: int,
                                             needle: str) -> None:
    assert needle in error_of(post(f"{server.url}/v2/models/custom", body), status)["detail"]


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"fallback_models": ["openai/a"]}, 422, "'name' is required"),
    ({"name": "n"}, 422, "'fallback_models' is required"),
    ({"name": "n", "fallback_models": "openai/a"}, 422, "list of 1 to 32"),
    ({"name": "n", "fallback_models": []}, 422, "list of 1 to 32"),
    ({"name": "n", "fallback_models": ["openai/a"] * 10_000}, 422, "list of 1 to 32"),
    ({"name": "n", "fallback_models": [{"name": "openai/a"}]}, 422, "fallback_models[0] must be a string"),
    ({"name": "n", "fallback_models": ["openai/a"], "description": 5}, 422, "'description'"),
    ({"name": "n", "fallback_models": ["openai/a"], "description": "d" * 10_000}, 422, "'description'"),
    ({"name": "n", "fallback_models": ["gpt4"]}, 400, "neither a model"),
])
def test_malformed_aliases_are_refused(server: ServerProcess, body: dict[str, Any], status: int,
                                       needle: str) -> None:
    assert needle in error_of(post(f"{server.url}/v2/models/aliases", body), status)["detail"]


def test_non_object_bodies_are_refused(server: ServerProcess) -> None:
    for path in ("/v2/models/custom", "/v2/models/aliases"):
        for raw in (b"[]", b"\"x\"", b"{not json", b"null"):
            assert 400 <= post(f"{server.url}{path}", raw=raw).status < 500


def test_alias_loops_are_refused_when_made(any_server: ServerProcess) -> None:
    url = any_server.url
    first = alias(any_server, unique("loop-a"), "openai/gpt-4o-mini")
    second = alias(any_server, unique("loop-b"), first["name"])
    third = alias(any_server, unique("loop-c"), second["name"])
    body = error_of(request("PATCH", f"{url}/v2/models/aliases/{first['id']}",
                            {"fallback_models": [third["name"]]}), 400)
    assert body["error"]["code"] == "alias_loop" and "names itself" in body["detail"]
    name = unique("self")
    error_of(post(f"{url}/v2/models/aliases", {"name": name, "fallback_models": [name]}), 400)
    assert get(f"{url}/v2/models/aliases/{first['id']}").json()["fallback_models"] == ["openai/gpt-4o-mini"]


@pytest.mark.parametrize("model_id", ["nope", "0" * 36, "x" * 300, "%00", "a%0Ab", "..%2F..%2Fetc"])
def test_unknown_or_odd_ids_are_404(server: ServerProcess, model_id: str) -> None:
    for kind in ("custom", "aliases"):
        error_of(get(f"{server.url}/v2/models/{kind}/{model_id}"), 404)
        error_of(request("PATCH", f"{server.url}/v2/models/{kind}/{model_id}", {}), 404)
        error_of(request("DELETE", f"{server.url}/v2/models/{kind}/{model_id}"), 404)
        error_of(get(f"{server.url}/v2/models/{kind}/by-name/{model_id}"), 404)


def test_the_endpoints_need_a_key(server: ServerProcess) -> None:
    for path in ("/v2/models", "/v2/models/custom", "/v2/models/aliases"):
        assert get(f"{server.url}{path}", key=None).status == 401


# ---- calls through the project's names

def test_calls_of_every_dialect_reach_a_custom_model_with_its_key(any_server: ServerProcess, fake: Any) -> None:
    url, name = any_server.url, unique("mine/served")
    custom(any_server, name, fake.openai_base_url, api_key=SECRET)
    v2 = post(f"{url}/v2/call", {"name": "custom-call", "input": "hi", "model": name})
    assert v2.status == 200 and v2.json()["message"].startswith("Hello from gpt-4o-mini")
    streamed = post(f"{url}/v2/call/stream", {"name": "custom-call", "input": "hi", "model": name})
    assert streamed.status == 200 and len(sse_events(streamed)) > 2
    v3 = post(f"{url}/v3/call", {"name": "custom-call-v3", "input": "hi", "model": {"name": name,
                                                                                    "options": {"seed": 3}}})
    assert v3.status == 200, v3.body
    compat = post(f"{url}/v3/compat/chat/completions", {"model": name, "messages": [{"role": "user",
                                                                                    "content": "hi"}]})
    assert compat.status == 200 and compat.json()["model"] == name
    assert len(fake.requests) == 4
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" and r.model == "gpt-4o-mini" for r in fake.requests)
    assert fake.requests[2].json["seed"] == 3
    span = get(f"{url}/v2/spans/{v2.json()['span_id']}")
    assert span.status == 200 and SECRET.encode() not in span.body


def test_an_alias_falls_back_from_a_failing_model_to_the_next(any_server: ServerProcess, fake: Any) -> None:
    url = any_server.url
    served = unique("mine/backup")
    custom(any_server, served, fake.openai_base_url, identifier="backup-model", api_key=SECRET)
    chain = alias(any_server, unique("team/chain"), "openai/flaky-model", served)
    outer = alias(any_server, unique("team/outer"), chain["name"])
    fake.script("flaky-model", Behaviour(status=500))
    reply = post(f"{url}/v2/call", {"name": "alias-call", "input": "hi", "model": outer["name"]})
    assert reply.status == 200, reply.body
    assert reply.json()["message"].startswith("Hello from backup-model")
    assert [r.model for r in fake.requests] == ["flaky-model", "backup-model"]
    assert reply.json()["cost"] is None  # a custom model has no known price
    fake.script("flaky-model", Behaviour(status=500))
    streamed = post(f"{url}/v3/compat/chat/completions", {"model": [outer["name"]], "stream": True,
                                                         "messages": [{"role": "user", "content": "hi"}]})
    assert streamed.status == 200
    chunks = [json.loads(event) for event in sse_events(streamed) if event != "[DONE]"]
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert text == fake.default_text("backup-model")
    assert [r.model for r in fake.requests][2:] == ["flaky-model", "backup-model"]


def test_a_custom_model_nobody_serves_is_a_clear_provider_error_and_falls_back(any_server: ServerProcess,
                                                                                fake: Any) -> None:
    url, dead = any_server.url, unique("mine/dead")
    custom(any_server, dead, CLOSED_PORT_BASE, api_key=SECRET)
    body = error_of(post(f"{url}/v2/call", {"name": "dead-call", "input": "hi", "model": dead}), 502)
    assert "cannot reach http://127.0.0.1:1/v1" in body["detail"] and SECRET not in json.dumps(body)
    rescued = post(f"{url}/v2/call", {"name": "dead-call", "input": "hi", "model": [dead, "openai/gpt-4o-mini"]})
    assert rescued.status == 200
    assert [r.model for r in fake.requests] == ["gpt-4o-mini"]


def test_a_deleted_name_is_no_longer_called(any_server: ServerProcess, fake: Any) -> None:
    url, name = any_server.url, unique("gone")
    record = alias(any_server, name, "openai/gpt-4o-mini")
    assert post(f"{url}/v2/call", {"name": "gone-call", "input": "hi", "model": name}).status == 200
    assert request("DELETE", f"{url}/v2/models/aliases/{record['id']}").status == 204
    error_of(post(f"{url}/v2/call", {"name": "gone-call", "input": "hi", "model": name}), 400)


@pytest.mark.parametrize(("path", "body"), [
    ("/v2/call", {"name": "t", "input": "x"}),
    ("/v3/call", {"name": "t", "input": "x"}),
    ("/v3/compat/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
    ("/v3/compat/embeddings", {"input": "x"}),
])
def test_a_name_that_is_no_model_alias_or_custom_model_is_still_a_400(server: ServerProcess, fake: Any, path: str,
                                                                      body: dict[str, Any]) -> None:
    detail = error_of(post(f"{server.url}{path}", {**body, "model": unique("gpt4")}), 400)["detail"]
    assert "must be written as 'provider/model'" in detail
    assert fake.requests == []


def test_embeddings_reach_a_custom_model_and_fall_back_through_an_alias(any_server: ServerProcess,
                                                                        fake: Any) -> None:
    url, served = any_server.url, unique("mine/embedder")
    custom(any_server, served, fake.openai_base_url, identifier="text-embedding-3-small", api_key=SECRET)
    chain = alias(any_server, unique("embedders"), "openai/x-emb",
                  served)
    fake.script("x-emb", Behaviour(status=500))
    reply = post(f"{url}/v3/compat/embeddings", {"model": chain["name"], "input": ["a", "b"],
                                                 "encoding_format": "float"})
    assert reply.status == 200, reply.body
    assert len(reply.json()["data"]) == 2 and reply.json()["model"] == chain["name"]
    assert [r.model for r in fake.requests] == ["x-emb", "text-embedding-3-small"]
    assert fake.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_a_changed_custom_model_is_not_answered_from_the_cache(any_server: ServerProcess, fake: Any) -> None:
    url, name = any_server.url, unique("mine/cached")
    record = custom(any_server, name, fake.openai_base_url, identifier="first-model", api_key=SECRET)
    body = {"name": unique("cached-call"), "input": "hi", "model": name, "configuration": {"invocation.cache.ttl": 60}}
    first, again = post(f"{url}/v2/call", body), post(f"{url}/v2/call", body)
    assert (first.json()["cached"], again.json()["cached"]) == (False, True)
    changed = request("PATCH", f"{url}/v2/models/custom/{record['id']}", {"identifier": "second-model"})
    assert changed.status == 200
    after = post(f"{url}/v2/call", body)
    assert after.json()["cached"] is False and after.json()["message"].startswith("Hello from second-model")
    assert [r.model for r in fake.requests] == ["first-model", "second-model"]


def test_a_server_with_another_secret_key_refuses_only_the_sealed_models(fake: Any, tmp_path: Path) -> None:
    with ServerProcess(fake, tmp_path) as first:
        key_file = tmp_path / "secret.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        custom(first, "sealed/model", fake.openai_base_url, api_key=SECRET)
        assert post(f"{first.url}/v2/call", {"name": "k", "input": "x", "model": "sealed/model"}).status == 200
    assert SECRET.encode() not in (tmp_path / "taskgate.db").read_bytes()
    other_key = Fernet.generate_key().decode()
    with ServerProcess(fake, tmp_path, env={"TASKGATE_SECRET_KEY": other_key}) as second:
        body = error_of(post(f"{second.url}/v2/call", {"name": "k", "input": "x", "model": "sealed/model"}), 400)
        assert "TASKGATE_SECRET_KEY" in body["detail"] and "sealed/model" in body["detail"]
        assert post(f"{second.url}/v2/call", {"name": "k", "input": "x", "model": "openai/gpt-4o-mini"}).status == 200
        assert get(f"{second.url}/v2/models/custom/by-name/sealed/model").status == 200
        record = get(f"{second.url}/v2/models/custom/by-name/sealed/model").json()
        assert request("PATCH", f"{second.url}/v2/models/custom/{record['id']}", {"api_key": SECRET}).status == 200
        assert post(f"{second.url}/v2/call", {"name": "k", "input": "x", "model": "sealed/model"}).status == 200

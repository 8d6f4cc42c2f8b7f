"""Custom models and aliases: their store family (SQLite and Postgres), the engine service that
writes and resolves them, and the sealed API keys (engine/model_names.py, engine/secret_box.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from cryptography.fernet import Fernet

from taskgate.config import Settings
from taskgate.engine import model_names as names_module
from taskgate.engine.model_names import ModelNames
from taskgate.engine.secret_box import SecretBox
from taskgate.engine.task import ModelChoice
from taskgate.errors import BadRequestError, ConflictError, NotFoundError, ProviderNotConfiguredError
from taskgate.providers.base import ChatRequest
from taskgate.providers.registry import ProviderRegistry
from taskgate.store import SqlStore
from taskgate.store.base import CustomModelRecord, ModelAliasRecord
from taskgate.store.tables import custom_models
from tests.harness import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")
BASE = "http://127.0.0.1:9/v1"


def custom_values(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "identifier": "gpt-x", "extra": {"api_base": BASE, **extra}, "api_key_sealed": None}


def alias_values(name: str, *models: str) -> dict[str, Any]:
    return {"name": name, "fallback_models": list(models), "description": None}


@pytest.fixture
async def service(store: SqlStore) -> Any:
    registry = ProviderRegistry(Settings())
    yield ModelNames(store, registry, SecretBox(Fernet.generate_key()))
    await registry.aclose()


# ---- the store family

async def test_custom_models_are_stored_read_listed_updated_and_deleted(store: SqlStore, project: str) -> None:
    created = await store.create_model_name("custom_model", project, custom_values("acme/m", api_version="v1"))
    assert isinstance(created, CustomModelRecord)
    assert created.extra == {"api_base": BASE, "api_version": "v1"}
    assert await store.get_model_name("custom_model", project, id=created.id) == created
    assert await store.get_model_name("custom_model", project, name="acme/m") == created
    changed = await store.update_model_name("custom_model", project, created.id, {"identifier": "gpt-y"})
    assert changed is not None and changed.identifier == "gpt-y" and changed.updated_at >= created.updated_at
    assert await store.delete_model_name("custom_model", project, created.id)
    assert await store.get_model_name("custom_model", project, id=created.id) is None
    assert not await store.delete_model_name("custom_model", project, created.id)
    assert await store.update_model_name("custom_model", project, created.id, {"identifier": "z"}) is None


async def test_lists_are_paged_by_name_with_their_total(store: SqlStore, project: str) -> None:
    for name in ("c", "a", "b"):
        await store.create_model_name("model_alias", project, alias_values(name, "openai/x"))
    page, total = await store.list_model_names("model_alias", project, 2, 1)
    assert total == 3
    assert [record.name for record in page] == ["b", "c"]
    assert all(isinstance(record, ModelAliasRecord) for record in page)
    with pytest.raises(BadRequestError):
        await store.list_model_names("model_alias", project, -1, 0)


async def test_custom_models_and_aliases_share_one_name_space(store: SqlStore, project: str) -> None:
    await store.create_model_name("custom_model", project, custom_values("shared"))
    with pytest.raises(ConflictError, match="custom model named 'shared'"):
        await store.create_model_name("model_alias", project, alias_values("shared", "openai/x"))
    alias = await store.create_model_name("model_alias", project, alias_values("other", "openai/x"))
    with pytest.raises(ConflictError):
        await store.update_model_name("model_alias", project, alias.id, {"name": "shared"})
    renamed = await store.update_model_name("model_alias", project, alias.id, {"name": "other"})  # its own name
    assert renamed is not None


async def test_two_writers_racing_for_a_name_get_one_row_and_one_conflict(store: SqlStore, project: str) -> None:
    results = await asyncio.gather(*(store.create_model_name("model_alias", project, alias_values("race", "o/x"))
                                     for _ in range(4)), return_exceptions=True)
    assert sum(isinstance(result, ModelAliasRecord) for result in results) == 1
    assert all(isinstance(result, ConflictError) for result in results if not isinstance(result, ModelAliasRecord))


async def test_another_projects_names_are_invisible(store: SqlStore, project: str) -> None:
    other = await store.ensure_project(f"{project}-other")
    mine = await store.create_model_name("custom_model", project, custom_values("same-name"))
    theirs = await store.create_model_name("custom_model", other, custom_values("same-name"))  # no conflict
    assert await store.get_model_name("custom_model", other, id=mine.id) is None
    assert await store.update_model_name("custom_model", other, mine.id, {"identifier": "x"}) is None
    assert not await store.delete_model_name("custom_model", other, mine.id)
    customs, aliases = await store.all_model_names(other)
    assert [c.id for c in customs] == [theirs.id] and aliases == []


# ---- the service: writing

async def test_the_api_key_is_stored_sealed_and_never_in_plain(service: ModelNames, store: SqlStore,
                                                               project: str) -> None:
    record = await service.create_custom(project, "sealed", "gpt-x", {"api_base": BASE}, "sk-very-secret")
    with store.database.engine.connect() as conn:
        row = conn.execute(sa.select(custom_models).where(custom_models.c.id == record.id)).mappings().one()
    assert "sk-very-secret" not in str(dict(row))
    assert row["api_key_sealed"] == record.api_key_sealed


@pytest.mark.parametrize(("extra", "needle"), [
    ({}, "api_base is required"),
    ({"api_base": "ftp://host/v1"}, "http:// or https://"),
    ({"api_base": "file:///etc/passwd"}, "http:// or https://"),
    ({"api_base": "http://"}, "with a host"),
    ({"api_base": "http://user:pw@host/v1"}, "must not hold credentials"),
    ({"api_base": "http://host:99999/v1"}, "not a valid URL"),
    ({"api_base": "http://host/v1?key=1"}, "query or fragment"),
    ({"api_base": "http://host/" + "a" * 3000}, "at most 2048"),
    ({"api_base": "http://ho st/v1"}, "printable"),
    ({"api_base": BASE, "api_version": 5}, "api_version"),
    ({"api_base": BASE, "headers": {"x": "y"}}, "unsupported keys"),
])
async def test_a_custom_models_endpoint_is_checked(service: ModelNames, project: str, extra: dict[str, Any],
                                                   needle: str) -> None:
    with pytest.raises(BadRequestError, match=needle):
        await service.create_custom(project, "m", "gpt-x", extra, None)


@pytest.mark.parametrize("key", ["", "a\r\nx-injected: 1", "k" * 5000])
async def test_an_api_key_that_cannot_be_a_header_is_refused(service: ModelNames, project: str, key: str) -> None:
    with pytest.raises(BadRequestError, match="api_key"):
        await service.create_custom(project, "m", "gpt-x", {"api_base": BASE}, key)


async def test_an_alias_must_name_models_or_the_projects_names(service: ModelNames, project: str) -> None:
    with pytest.raises(BadRequestError, match="neither a model"):
        await service.create_alias(project, "typo", ["gpt4"], None)
    await service.create_custom(project, "mine", "gpt-x", {"api_base": BASE}, None)
    alias = await service.create_alias(project, "ok", ["mine", "openai/gpt-4o"], "d")
    assert alias.fallback_models == ["mine", "openai/gpt-4o"]


async def test_an_update_that_would_make_a_loop_is_refused(service: ModelNames, project: str) -> None:
    first = await service.create_alias(project, "first", ["openai/a"], None)
    await service.create_alias(project, "second", ["first"], None)
    with pytest.raises(BadRequestError, match="names itself"):
        await service.update_alias(project, first.id, {"fallback_models": ["second"]})
    with pytest.raises(BadRequestError, match="names itself"):
        await service.create_alias(project, "self", ["self"], None)
    unchanged = await service.get("model_alias", project, id=first.id)
    assert isinstance(unchanged, ModelAliasRecord) and unchanged.fallback_models == ["openai/a"]


async def test_a_project_has_a_bounded_number_of_names(service: ModelNames, project: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names_module, "MAX_PER_PROJECT", 2)
    await service.create_alias(project, "one", ["openai/a"], None)
    await service.create_alias(project, "two", ["openai/a"], None)
    with pytest.raises(BadRequestError, match="at most 2"):
        await service.create_alias(project, "three", ["openai/a"], None)
    await service.create_custom(project, "custom-one", "m", {"api_base": BASE}, None)  # counted apart


async def test_unknown_ids_are_not_found(service: ModelNames, project: str) -> None:
    for call in (service.get("custom_model", project, id="nope"), service.delete("model_alias", project, "nope"),
                 service.update_custom(project, "nope", {}), service.update_alias(project, "nope", {})):
        with pytest.raises(NotFoundError):
            await call


# ---- the service: resolution

async def test_resolution_expands_aliases_and_targets_custom_models(service: ModelNames, project: str) -> None:
    await service.create_custom(project, "mine", "served-id", {"api_base": BASE}, "sk-1")
    await service.create_alias(project, "fast", ["openai/a", "mine"], None)
    chain = await service.resolve(project, [ModelChoice("fast", options={"temperature": 0})])
    assert [c.name for c in chain] == ["openai/a", "mine"]
    assert chain[0].custom is None
    assert chain[1].custom is not None and chain[1].custom.identifier == "served-id"
    assert chain[1].options == {"temperature": 0}
    again = await service.resolve(project, [ModelChoice("mine")])
    assert again[0].custom is not None and again[0].custom.adapter is chain[1].custom.adapter  # built once


async def test_a_change_is_seen_at_once_and_closes_the_old_adapter(service: ModelNames, project: str) -> None:
    record = await service.create_custom(project, "mine", "v1", {"api_base": BASE}, None)
    before = (await service.resolve(project, [ModelChoice("mine")]))[0].custom
    assert before is not None
    closed: list[bool] = []
    original = before.adapter.aclose

    async def tracked() -> None:
        closed.append(True)
        await original()

    before.adapter.aclose = tracked  # type: ignore[method-assign]
    await service.update_custom(project, record.id, {"identifier": "v2"})
    after = (await service.resolve(project, [ModelChoice("mine")]))[0].custom
    assert after is not None and after.identifier == "v2" and after.adapter is not before.adapter
    assert closed == [True]
    await service.delete("custom_model", project, record.id)
    assert (await service.resolve(project, [ModelChoice("mine")]))[0].custom is None


async def test_another_replicas_writes_are_seen_after_the_snapshot_expires(
        store: SqlStore, project: str, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ProviderRegistry(Settings())
    box = SecretBox(Fernet.generate_key())
    here, there = ModelNames(store, registry, box), ModelNames(store, registry, box)
    assert (await here.resolve(project, [ModelChoice("later")]))[0].name == "later"
    await there.create_alias(project, "later", ["openai/a"], None)
    monkeypatch.setattr(names_module, "SNAPSHOT_SECONDS", 0.0)
    assert [c.name for c in await here.resolve(project, [ModelChoice("later")])] == ["openai/a"]
    await registry.aclose()


async def test_a_key_sealed_under_another_secret_is_a_clear_error(store: SqlStore, project: str) -> None:
    registry = ProviderRegistry(Settings())
    writer = ModelNames(store, registry, SecretBox(Fernet.generate_key()))
    await writer.create_custom(project, "locked", "gpt-x", {"api_base": BASE}, "sk-1")
    reader = ModelNames(store, registry, SecretBox(Fernet.generate_key()))
    with pytest.raises(ProviderNotConfiguredError, match="TASKGATE_SECRET_KEY") as caught:
        await reader.resolve(project, [ModelChoice("locked")])
    assert "sk-1" not in caught.value.detail
    assert [c.name for c in await reader.resolve(project, [ModelChoice("openai/a")])] == ["openai/a"]
    await registry.aclose()


async def test_a_custom_model_sends_its_key_and_api_version_only_to_its_endpoint(service: ModelNames,
                                                                                  project: str) -> None:
    seen: list[tuple[str, str | None, str]] = []

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path_qs, request.headers.get("authorization"), body["model"]))
        return web.json_response({"id": "x", "object": "chat.completion", "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": "hi"}}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    app = web.Application()
    app.router.add_post("/base/v1/chat/completions", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await service.create_custom(project, "azure-ish", "deployment-1",
                                    {"api_base": f"http://127.0.0.1:{port}/base/v1/", "api_version": "2024-06-01"},
                                    "sk-endpoint")
        target = (await service.resolve(project, [ModelChoice("azure-ish")]))[0].custom
        assert target is not None
        response = await target.adapter.complete(ChatRequest(model=target.identifier, messages=[
            {"role": "user", "content": "hello"}]))
        assert response.text == "hi"
        assert seen == [("/base/v1/chat/completions?api-version=2024-06-01", "Bearer sk-endpoint", "deployment-1")]
    finally:
        await runner.cleanup()

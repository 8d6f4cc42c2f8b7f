"""A project's own model names: custom models (its OpenAI-compatible endpoints) and aliases (named
fallback chains), written through here and resolved here for every call.

Resolution reads a per-project snapshot of both: the service drops a project's snapshot whenever
it writes one of its names, so this replica sees its own writes at once, and announces the write
(`replicas.notices`), so the other replicas drop theirs at once too. Without notices (no Redis, or
its subscription lost) a snapshot is kept for `SNAPSHOT_SECONDS`, and another replica's writes are
seen within those seconds. A custom model's adapter comes from the provider
registry, built once per model and closed when the model changes or goes; its API key is stored
sealed (engine/secret_box.py), opened only to build that adapter, and never shown.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import urlsplit

from taskgate.engine.model_chains import expand_chain
from taskgate.engine.secret_box import SecretBox
from taskgate.engine.task import CustomTarget, ModelChoice
from taskgate.errors import BadRequestError, NotFoundError
from taskgate.lru import BoundedLRU
from taskgate.providers.catalog import ProviderPreset, ResolvedProvider
from taskgate.providers.registry import ProviderRegistry
from taskgate.replicas.notices import ChangeNotices
from taskgate.store.base import CustomModelRecord, ModelAliasRecord, ModelNameKind, ModelNameRecord, Store

SNAPSHOT_SECONDS = 2.0
SNAPSHOT_PROJECTS = 1024
SNAPSHOT_BYTES = 64 * 1024 * 1024
MAX_URL_CHARS = 2048
MAX_API_KEY_CHARS = 4096
MAX_PER_PROJECT = 1000  # of each kind: every call naming a model reads them all into the snapshot
CUSTOM_EXTRA_KEYS = ("api_base", "api_version")
KIND_WORDS: dict[ModelNameKind, str] = {"custom_model": "custom model", "model_alias": "model alias"}


@dataclass(slots=True)
class _Snapshot:
    """A project's names as read at `read_at`, and the custom models' targets built so far."""

    read_at: float
    customs: dict[str, CustomModelRecord]
    aliases: dict[str, list[str]]
    targets: dict[str, CustomTarget] = field(default_factory=dict)


def _snapshot_bytes(_: str, snapshot: _Snapshot) -> int:
    names = sum(len(name) + 300 for name in snapshot.customs)
    return names + sum(len(name) + sum(len(entry) + 60 for entry in chain) for name, chain in snapshot.aliases.items())


class ModelNames:
    def __init__(self, store: Store, registry: ProviderRegistry, secrets: SecretBox,
                 notices: ChangeNotices | None = None) -> None:
        self._store = store
        self._notices = notices or ChangeNotices()
        self._notices.on("model_names", self._changed_elsewhere)
        self._notices.on_reset(self._forget_all)
        self._registry = registry
        self._secrets = secrets
        self._snapshots: BoundedLRU[str, _Snapshot] = BoundedLRU(SNAPSHOT_PROJECTS, SNAPSHOT_BYTES, _snapshot_bytes)
        self._writes = 0  # this service's writes so far: a snapshot read across one of them is not kept

    # ------------------------------------------------------------------ resolution

    async def resolve(self, project_id: str, choices: list[ModelChoice]) -> list[ModelChoice]:
        """The chain with the project's aliases expanded and its custom models given their targets;
        any other name is left for the router (`provider/model`)."""
        if not choices:
            return choices
        snapshot = await self._snapshot(project_id)
        if not snapshot.customs and not snapshot.aliases:
            return choices
        chain = expand_chain(choices, snapshot.aliases)
        resolved = []
        for choice in chain:
            record = snapshot.customs.get(choice.name)
            resolved.append(choice if record is None else replace(choice, custom=await self._target(snapshot, record)))
        return resolved

    async def names(self, project_id: str) -> list[str]:
        """The project's custom model and alias names: what a key's model list may name besides `provider/model`."""
        snapshot = await self._snapshot(project_id)
        return [*snapshot.customs, *snapshot.aliases]

    async def _snapshot(self, project_id: str) -> _Snapshot:
        snapshot = self._snapshots.get(project_id)
        now = time.monotonic()
        if snapshot is None or now - snapshot.read_at > self._notices.window(SNAPSHOT_SECONDS):
            writes = self._writes
            customs, aliases = await self._store.all_model_names(project_id)
            snapshot = _Snapshot(now, {c.name: c for c in customs}, {a.name: a.fallback_models for a in aliases})
            if writes == self._writes:  # else it may predate a write whose invalidation it would undo
                self._snapshots.put(project_id, snapshot)
        return snapshot

    async def _forget(self, project_id: str) -> None:
        """After a write of the project's names: the next resolution reads them again, here and on
        the other replicas."""
        self._writes += 1
        self._snapshots.pop(project_id)
        await self._notices.announce("model_names", project_id, project_id)

    async def _changed_elsewhere(self, project_id: str, _subject: str) -> None:
        self._writes += 1
        self._snapshots.pop(project_id)

    def _forget_all(self) -> None:
        self._writes += 1
        self._snapshots.drain()

    async def _target(self, snapshot: _Snapshot, record: CustomModelRecord) -> CustomTarget:
        target = snapshot.targets.get(record.name)
        if target is None:
            target = CustomTarget(await self._registry.custom_adapter(record.id, self._endpoint(record)),
                                  record.identifier, f"{record.id}@{record.updated_at.isoformat()}")
            snapshot.targets[record.name] = target
        return target

    def _endpoint(self, record: CustomModelRecord) -> ResolvedProvider:
        """Everything the OpenAI-compatible adapter needs to reach the custom model's endpoint."""
        api_key = None
        if record.api_key_sealed is not None:
            api_key = self._secrets.open(record.api_key_sealed, f"custom model '{record.name}'")
        preset = ProviderPreset(name=record.name, kind="openai", base_url=record.extra["api_base"], key_env=None,
                                key_required=False)
        version = record.extra.get("api_version")
        return ResolvedProvider(preset=preset, base_url=preset.base_url.rstrip("/"), api_key=api_key,
                                query=(("api-version", version),) if version else ())

    # ------------------------------------------------------------------ reading

    async def get(self, kind: ModelNameKind, project_id: str, *, id: str | None = None,
                  name: str | None = None) -> ModelNameRecord:
        record = await self._store.get_model_name(kind, project_id, id=id, name=name)
        if record is None:
            shown = f"'{name}'" if id is None else id
            raise NotFoundError(f"{KIND_WORDS[kind]} {shown} not found")
        return record

    async def page(self, kind: ModelNameKind, project_id: str, limit: int,
                   offset: int) -> tuple[list[ModelNameRecord], int]:
        return await self._store.list_model_names(kind, project_id, limit, offset)

    # ------------------------------------------------------------------ writing

    async def create(self, kind: ModelNameKind, project_id: str, fields: Mapping[str, Any]) -> ModelNameRecord:
        """A new custom model (name, identifier, extra, api_key) or alias (name, fallback_models,
        description) from the fields given."""
        if kind == "custom_model":
            return await self.create_custom(project_id, fields["name"], fields["identifier"],
                                            fields.get("extra", {}), fields.get("api_key"))
        return await self.create_alias(project_id, fields["name"], fields["fallback_models"],
                                       fields.get("description"))

    async def update(self, kind: ModelNameKind, project_id: str, id: str,
                     changes: Mapping[str, Any]) -> ModelNameRecord:
        if kind == "custom_model":
            return await self.update_custom(project_id, id, changes)
        return await self.update_alias(project_id, id, changes)

    async def create_custom(self, project_id: str, name: str, identifier: str, extra: dict[str, Any],
                            api_key: str | None) -> CustomModelRecord:
        values = {"name": name, "identifier": identifier, "extra": _custom_extra(extra),
                  "api_key_sealed": self._seal(api_key)}
        await self._refuse_too_many("custom_model", project_id)
        record = await self._store.create_model_name("custom_model", project_id, values)
        await self._forget(project_id)
        return cast(CustomModelRecord, record)

    async def update_custom(self, project_id: str, model_id: str, changes: Mapping[str, Any]) -> CustomModelRecord:
        """`changes` holds the fields given: name, identifier, extra (replacing the old one) and
        api_key (None removes it)."""
        values = {key: changes[key] for key in ("name", "identifier") if key in changes}
        if "extra" in changes:
            values["extra"] = _custom_extra(changes["extra"])
        if "api_key" in changes:
            values["api_key_sealed"] = self._seal(changes["api_key"])
        record = await self._write("custom_model", project_id, model_id, values)
        await self._registry.release_custom(model_id)
        return cast(CustomModelRecord, record)

    async def create_alias(self, project_id: str, name: str, fallback_models: list[str],
                           description: str | None) -> ModelAliasRecord:
        await self._check_alias(project_id, None, name, fallback_models)
        values = {"name": name, "fallback_models": fallback_models, "description": description}
        await self._refuse_too_many("model_alias", project_id)
        record = await self._store.create_model_name("model_alias", project_id, values)
        await self._forget(project_id)
        return cast(ModelAliasRecord, record)

    async def update_alias(self, project_id: str, alias_id: str, changes: Mapping[str, Any]) -> ModelAliasRecord:
        """`changes` holds the fields given: name, fallback_models, description (None clears it)."""
        current = cast(ModelAliasRecord, await self.get("model_alias", project_id, id=alias_id))
        if "name" in changes or "fallback_models" in changes:
            await self._check_alias(project_id, current, changes.get("name", current.name),
                                    changes.get("fallback_models", current.fallback_models))
        return cast(ModelAliasRecord, await self._write("model_alias", project_id, alias_id, dict(changes)))

    async def delete(self, kind: ModelNameKind, project_id: str, id: str) -> None:
        if not await self._store.delete_model_name(kind, project_id, id):
            raise NotFoundError(f"{KIND_WORDS[kind]} {id} not found")
        await self._forget(project_id)
        if kind == "custom_model":
            await self._registry.release_custom(id)

    async def _write(self, kind: ModelNameKind, project_id: str, id: str, values: dict[str, Any]) -> ModelNameRecord:
        record = await self._store.update_model_name(kind, project_id, id, values)
        if record is None:
            raise NotFoundError(f"{KIND_WORDS[kind]} {id} not found")
        await self._forget(project_id)
        return record

    async def _refuse_too_many(self, kind: ModelNameKind, project_id: str) -> None:
        _, total = await self._store.list_model_names(kind, project_id, 0, 0)
        if total >= MAX_PER_PROJECT:
            raise BadRequestError(f"a project may have at most {MAX_PER_PROJECT} of each: delete a {KIND_WORDS[kind]} "
                                  "it no longer uses first")

    def _seal(self, api_key: str | None) -> str | None:
        """The key as stored. It goes out in a header, so it must be printable on one line."""
        if api_key is None:
            return None
        if not 0 < len(api_key) <= MAX_API_KEY_CHARS or not api_key.isprintable():
            raise BadRequestError(f"api_key must be 1 to {MAX_API_KEY_CHARS} printable characters")
        return self._secrets.seal(api_key)

    async def _check_alias(self, project_id: str, current: ModelAliasRecord | None, name: str,
                           fallback_models: list[str]) -> None:
        """Refuse an alias that would name itself (directly or through other aliases), grow a chain
        past its limit, or name something that is neither a model (`provider/model`) nor one of the
        project's names: a typo found now, not at the first call."""
        customs, aliases = await self._store.all_model_names(project_id)
        chains = {alias.name: alias.fallback_models for alias in aliases if current is None or alias.id != current.id}
        chains[name] = fallback_models
        known = chains.keys() | {custom.name for custom in customs}
        for position, entry in enumerate(fallback_models):
            if entry not in known and not _is_provider_model(entry):
                raise BadRequestError(f"fallback_models[{position}] '{entry}' is neither a model written as "
                                      "'provider/model' nor a custom model or alias of this project")
        expand_chain([ModelChoice(name=name)], chains)


def _is_provider_model(name: str) -> bool:
    provider, sep, model = name.partition("/")
    return bool(sep and provider and model)


def _custom_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """The custom model's `extra`, checked: an endpoint (`api_base`, http or https) and optionally
    an `api_version` sent as Azure's `api-version` query parameter. Other keys would be ignored,
    so they are refused."""
    unknown = sorted(set(extra) - set(CUSTOM_EXTRA_KEYS))
    if unknown:
        raise BadRequestError(f"extra has unsupported keys {unknown}; supported: {', '.join(CUSTOM_EXTRA_KEYS)}")
    base = extra.get("api_base")
    if not isinstance(base, str) or not base.strip():
        raise BadRequestError("extra.api_base is required: the base URL of the OpenAI-compatible endpoint, "
                              "e.g. https://llm.example.com/v1")
    _check_url(base.strip())
    checked: dict[str, Any] = {"api_base": base.strip()}
    version = extra.get("api_version")
    if version is not None:
        if not isinstance(version, str) or not 0 < len(version) <= 64 or not version.isprintable():
            raise BadRequestError("extra.api_version must be 1 to 64 printable characters")
        checked["api_version"] = version
    return checked


def _check_url(url: str) -> None:
    """Only an http or https URL with a host, and no credentials in it: the URL is shown back to
    every caller of the project, so a secret belongs in api_key, which never is."""
    if len(url) > MAX_URL_CHARS or not url.isprintable() or any(ch.isspace() for ch in url):
        raise BadRequestError(f"extra.api_base must be a URL of at most {MAX_URL_CHARS} printable characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise BadRequestError(f"extra.api_base is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequestError("extra.api_base must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise BadRequestError("extra.api_base must not hold credentials: give the key as api_key")
    if parts.query or parts.fragment:
        raise BadRequestError("extra.api_base must not have a query or fragment (the API version is extra.api_version)")

"""Managing keys and their limits, for the admin API and the CLI alike: what may be set, checked
once here, and the usage of a key or project.

An admin key may not carry limits of its own: it can change any key of its project, its own
included, so a limit on it would bind nobody. A key with limits is therefore never an admin, and
cannot reach the admin API to lift them. A revoked key cannot be changed (409): it stays listed,
with its usage, for the record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from taskgate.engine.quotas.caller import key_subject, project_subject
from taskgate.engine.quotas.gate import QuotaGate
from taskgate.engine.quotas.rules import (
    check_budget,
    check_models,
    check_period,
    check_rpm,
    check_tpm,
    quota_of,
)
from taskgate.errors import ConflictError, NotFoundError, RequestValidationError
from taskgate.store.base import KeyStore
from taskgate.store.key_records import KeyRecord, StoredLimits

LIMIT_FIELDS = ("rpm", "tpm", "budget_usd", "period", "models")
KEY_FIELDS = ("name", "admin", *LIMIT_FIELDS)
MAX_NAME_CHARS = 200
ProjectNames = Callable[[str], Awaitable[list[str]]]  # a project's custom model and alias names


class KeyService:
    def __init__(self, store: KeyStore, gate: QuotaGate, providers: Iterable[str], project_names: ProjectNames,
                 on_change: Callable[[], None] = lambda: None) -> None:
        """`on_change`: told after any key or project limit changes (authentication forgets what it read)."""
        self._store = store
        self._gate = gate
        self._providers = tuple(providers)
        self._project_names = project_names
        self._on_change = on_change

    # ------------------------------------------------------------------ keys

    async def create(self, project_id: str, body: Mapping[str, Any]) -> tuple[KeyRecord, str]:
        """A new key and its secret, shown this once."""
        _known(body, KEY_FIELDS)
        limits = await self._limits(project_id, body)
        admin = _admin(body.get("admin", False))
        name = _name(body.get("name"))
        if admin and any(value is not None for value in limits.values()):
            raise RequestValidationError("an admin key cannot have limits: it could lift them itself; "
                                         "create a key without 'admin' to limit it")
        created = await self._store.create(project_id, name, admin, limits)
        self._on_change()
        return created

    async def list(self, project_id: str, include_revoked: bool) -> list[KeyRecord]:
        return await self._store.list(project_id, include_revoked)

    async def get(self, project_id: str, key_id: str) -> KeyRecord:
        record = await self._store.get(project_id, key_id)
        if record is None:
            raise NotFoundError(f"the project has no API key '{key_id[:64]}'")
        return record

    async def update(self, project_id: str, key_id: str, body: Mapping[str, Any]) -> KeyRecord:
        _known(body, KEY_FIELDS)
        current = await self.get(project_id, key_id)
        if current.revoked_at is not None:
            raise ConflictError(f"API key '{key_id}' is revoked: it can no longer be changed")
        changes: dict[str, Any] = await self._limits(project_id, body)
        if "name" in body:
            changes["name"] = _name(body["name"])
        if "admin" in body:
            changes["admin"] = _admin(body["admin"])
        merged = {name: getattr(current.limits, name) for name in ("rpm", "tpm", "budget_usd", "models")}
        merged.update({name: value for name, value in changes.items() if name in merged})
        if changes.get("admin", current.admin) and any(value is not None for value in merged.values()):
            raise RequestValidationError("an admin key cannot have limits: it could lift them itself")
        record = await self._store.update(project_id, key_id, changes)
        if record is None:  # revoked meanwhile
            raise ConflictError(f"API key '{key_id}' is revoked: it can no longer be changed")
        self._on_change()
        return record

    async def revoke(self, project_id: str, key_id: str) -> KeyRecord:
        record = await self._store.revoke(project_id, key_id)
        if record is None:
            raise NotFoundError(f"the project has no API key '{key_id[:64]}'")
        self._on_change()
        return record

    async def key_usage(self, project_id: str, key_id: str) -> dict[str, Any]:
        record = await self.get(project_id, key_id)
        return await self._gate.usage_of(key_subject(record.id), quota_of(record.limits))

    # ------------------------------------------------------------------ projects

    async def ensure_project(self, name: str) -> str:
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise RequestValidationError(f"a project name must be printable text of 1 to {MAX_NAME_CHARS} characters")
        return await self._store.ensure_project(name)

    async def project_id(self, name: str) -> str:
        """The id of an existing project (the CLI names projects)."""
        found = await self._store.project_id(name)
        if found is None:
            raise NotFoundError(f"there is no project '{name[:200]}'")
        return found

    async def project_limits(self, project_id: str) -> StoredLimits:
        return await self._store.project_limits(project_id)

    async def set_project_limits(self, project_id: str, body: Mapping[str, Any]) -> StoredLimits:
        _known(body, LIMIT_FIELDS)
        limits = await self._store.set_project_limits(project_id, await self._limits(project_id, body))
        self._on_change()
        return limits

    async def project_usage(self, project_id: str) -> dict[str, Any]:
        limits = await self._store.project_limits(project_id)
        return await self._gate.usage_of(project_subject(project_id), quota_of(limits))

    # ------------------------------------------------------------------ checking

    async def _limits(self, project_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The limit fields of `body`, checked, under their stored names; a null clears a limit."""
        checks: dict[str, Callable[[Any], Any]] = {"rpm": check_rpm, "tpm": check_tpm, "budget_usd": check_budget,
                                                   "period": check_period}
        changes: dict[str, Any] = {}
        for name, check in checks.items():
            if name in body:
                value = body[name]
                if name == "period" and value is None:
                    raise RequestValidationError("'period' must be one of day, month")
                changes["budget_period" if name == "period" else name] = None if value is None else check(value)
        if "models" in body:
            models = body["models"]
            changes["models"] = None if models is None else check_models(
                models, self._providers, await self._project_names(project_id))
        return changes


def _known(body: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    unknown = sorted(str(name)[:60] for name in set(body) - set(fields))
    if unknown:
        raise RequestValidationError(f"unknown fields {unknown}; the body may have {', '.join(fields)}")


def _admin(value: Any) -> bool:
    if not isinstance(value, bool):
        raise RequestValidationError("'admin' must be true or false")
    return value


def _name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or not value.isprintable():
        raise RequestValidationError(f"'name' must be printable text of at most {MAX_NAME_CHARS} characters")
    return value


def key_body(record: KeyRecord) -> dict[str, Any]:
    """A key as the admin API and the CLI show it: never its secret, which is shown once at creation."""
    limits = record.limits
    return {"id": record.id, "name": record.name, "project_id": record.project_id, "admin": record.admin,
            "created_at": record.created_at.isoformat(),
            "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
            "limits": limits_body(limits)}


def limits_body(limits: StoredLimits) -> dict[str, Any]:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "budget_usd": limits.budget_usd,
            "period": limits.budget_period or "month", "models": list(limits.models) if limits.models else None}



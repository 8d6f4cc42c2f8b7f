"""API keys with their limits, projects' limits, and the usage totals budgets are counted from.

Keys are stored as their sha256 only (`accounts.key_hash`). A revoked key keeps its row (its usage
stays readable) but no longer authenticates. Usage totals are added to in place
(`INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`), so replicas writing at once never lose
each other's counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from taskgate.ids import new_id
from taskgate.store.accounts import ensure_project, key_hash, new_key
from taskgate.store.codec import utcnow
from taskgate.store.database import Database
from taskgate.store.key_records import KeyRecord, StoredLimits, UsageDelta, UsageTotals
from taskgate.store.tables import api_keys, projects, usage_totals

LIMIT_FIELDS = ("rpm", "tpm", "budget_usd", "budget_period", "models")


def _limits(row: Row[Any]) -> StoredLimits:
    models = row.models
    return StoredLimits(row.rpm, row.tpm, row.budget_usd, row.budget_period,
                        tuple(models) if models is not None else None)


def _key(row: Row[Any]) -> KeyRecord:
    return KeyRecord(row.id, row.project_id, row.name, bool(row.admin), row.created_at, row.revoked_at, _limits(row))


def _limit_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: (list(value) if name == "models" and value is not None else value)
            for name, value in changes.items() if name in LIMIT_FIELDS}


class SqlKeyStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    # ---- keys
    async def create(self, project_id: str, name: str | None, admin: bool,
                     limits: Mapping[str, Any]) -> tuple[KeyRecord, str]:
        """A new key of the project; the plaintext is returned once."""

        def create(conn: Connection) -> tuple[KeyRecord, str]:
            secret, key_id = new_key(), new_id()
            conn.execute(api_keys.insert().values(id=key_id, project_id=project_id, key_hash=key_hash(secret),
                                                  created_at=utcnow(), name=name, admin=admin,
                                                  **_limit_values(limits)))
            return _key(conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()), secret

        return await self._db.write(create)

    async def grant(self, digest: str) -> tuple[KeyRecord, StoredLimits] | None:
        """The live key with this hash and its project's limits: what authenticating a request needs."""

        def read(conn: Connection) -> tuple[KeyRecord, StoredLimits] | None:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest,
                                                         api_keys.c.revoked_at.is_(None))).one_or_none()
            if row is None:
                return None
            return _key(row), _project_limits(conn, row.project_id)

        return await self._db.read(read)

    async def list(self, project_id: str, include_revoked: bool) -> list[KeyRecord]:
        query = sa.select(api_keys).where(api_keys.c.project_id == project_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        query = query.order_by(api_keys.c.created_at, api_keys.c.id)
        return await self._db.read(lambda conn: [_key(row) for row in conn.execute(query)])

    async def get(self, project_id: str, key_id: str) -> KeyRecord | None:
        query = sa.select(api_keys).where(api_keys.c.project_id == project_id, api_keys.c.id == key_id)
        return await self._db.read(lambda conn: _optional_key(conn.execute(query).one_or_none()))

    async def update(self, project_id: str, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change a live key's name, admin flag or limits; None when there is no such live key."""
        values = {**_limit_values(changes), **{k: v for k, v in changes.items() if k in ("name", "admin")}}
        where = (api_keys.c.project_id == project_id, api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))

        def update(conn: Connection) -> KeyRecord | None:
            if values:
                conn.execute(api_keys.update().where(*where).values(**values))
            return _optional_key(conn.execute(sa.select(api_keys).where(*where)).one_or_none())

        return await self._db.write(update)

    async def revoke(self, project_id: str, key_id: str) -> KeyRecord | None:
        """Revoke the key (again is a no-op); None when the project has no such key."""
        where = (api_keys.c.project_id == project_id, api_keys.c.id == key_id)

        def revoke(conn: Connection) -> KeyRecord | None:
            conn.execute(api_keys.update().where(*where, api_keys.c.revoked_at.is_(None)).values(revoked_at=utcnow()))
            return _optional_key(conn.execute(sa.select(api_keys).where(*where)).one_or_none())

        return await self._db.write(revoke)

    # ---- projects
    async def project_id(self, name: str) -> str | None:
        query = sa.select(projects.c.id).where(projects.c.name == name)
        return await self._db.read(lambda conn: conn.execute(query).scalar_one_or_none())

    async def ensure_project(self, name: str) -> str:
        return await self._db.write(lambda conn: ensure_project(conn, name))

    async def project_limits(self, project_id: str) -> StoredLimits:
        return await self._db.read(lambda conn: _project_limits(conn, project_id))

    async def set_project_limits(self, project_id: str, changes: Mapping[str, Any]) -> StoredLimits:
        values = _limit_values(changes)

        def write(conn: Connection) -> StoredLimits:
            if values:
                conn.execute(projects.update().where(projects.c.id == project_id).values(**values))
            return _project_limits(conn, project_id)

        return await self._db.write(write)

    # ---- usage
    async def add_usage(self, deltas: Sequence[UsageDelta]) -> None:
        """Add to the totals, creating rows on first use, in one transaction; in the background
        (no request waits for it)."""
        if deltas:
            await self._db.write(lambda conn: _add_usage(conn, deltas), background=True)

    async def usage(self, subjects: Iterable[str], period_keys: Iterable[str]) -> dict[tuple[str, str], UsageTotals]:
        """The stored totals of each (subject, period) that has any."""
        query = sa.select(usage_totals).where(usage_totals.c.subject.in_(list(subjects)),
                                              usage_totals.c.period_key.in_(list(period_keys)))

        def read(conn: Connection) -> dict[tuple[str, str], UsageTotals]:
            return {(row.subject, row.period_key): UsageTotals(row.requests, row.tokens, row.cost_nano_usd)
                    for row in conn.execute(query)}

        return await self._db.read(read)


def _optional_key(row: Row[Any] | None) -> KeyRecord | None:
    return None if row is None else _key(row)


def _project_limits(conn: Connection, project_id: str) -> StoredLimits:
    row = conn.execute(sa.select(projects).where(projects.c.id == project_id)).one_or_none()
    return StoredLimits() if row is None else _limits(row)


def _adding_upsert(dialect: Any) -> Any:
    insert = dialect.insert(usage_totals)
    table = usage_totals.c
    return insert.on_conflict_do_update(
        index_elements=["subject", "period_key"],
        set_={"requests": table.requests + insert.excluded.requests,
              "tokens": table.tokens + insert.excluded.tokens,
              "cost_nano_usd": table.cost_nano_usd + insert.excluded.cost_nano_usd})


# Built once per dialect: a statement built per flush leaves SQLAlchemy's reference cycles (the
# `excluded` alias and its columns) for the collector on every flush.
_ADD_USAGE = {"postgresql": _adding_upsert(postgresql), "sqlite": _adding_upsert(sqlite)}


def _add_usage(conn: Connection, deltas: Sequence[UsageDelta]) -> None:
    statement = _ADD_USAGE[conn.dialect.name]
    # One row per (subject, period) per statement: Postgres refuses to update a row twice in one.
    merged: dict[tuple[str, str], list[int]] = {}
    for delta in deltas:
        totals = merged.setdefault((delta.subject, delta.period_key), [0, 0, 0])
        totals[0] += delta.requests
        totals[1] += delta.tokens
        totals[2] += delta.cost_nano_usd
    conn.execute(statement, [{"subject": subject, "period_key": period, "requests": requests, "tokens": tokens,
                              "cost_nano_usd": cost} for (subject, period), (requests, tokens, cost) in merged.items()])

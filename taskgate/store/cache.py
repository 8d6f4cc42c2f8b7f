"""The result cache: payloads by (project, key) with an expiry. Expired rows are ignored on read
and swept now and then on write, so the table does not grow without bound."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.store.codec import utcnow
from taskgate.store.database import upsert
from taskgate.store.tables import cache_entries

MAX_TTL_SECONDS = 365 * 24 * 3600  # a year; callers refuse more (far beyond it, expires_at overflows a datetime)


def cache_get(conn: Connection, project_id: str, key: str) -> dict[str, Any] | None:
    query = sa.select(cache_entries.c.payload).where(
        cache_entries.c.project_id == project_id, cache_entries.c.key == key,
        cache_entries.c.expires_at > utcnow())
    payload = conn.execute(query).scalar_one_or_none()
    return payload if isinstance(payload, dict) else None


def cache_put(conn: Connection, project_id: str, key: str, payload: dict[str, Any], ttl_seconds: int,
              sweep: bool) -> None:
    now = utcnow()
    if sweep:
        conn.execute(cache_entries.delete().where(cache_entries.c.expires_at <= now))
    row = {"project_id": project_id, "key": key, "payload": payload,
           "expires_at": now + timedelta(seconds=ttl_seconds)}
    upsert(conn, cache_entries, [row], keys=("project_id", "key"))

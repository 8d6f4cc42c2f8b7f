"""Raw provider exchanges (v3 generations). Blocking calls on one connection."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskgate.store.base import GenerationRecord
from taskgate.store.codec import strip_nul
from taskgate.store.tables import generations

_FIELDS = tuple(field.name for field in fields(GenerationRecord))


_INSERT = (f"INSERT INTO generations ({', '.join(_FIELDS)}) VALUES "
           f"({', '.join(['?'] * len(_FIELDS))})")


def _row(record: GenerationRecord, postgres: bool) -> tuple[Any, ...]:
    """The driver's parameters, in column order. SQLite keeps times as the text SQLAlchemy's
    DateTime reads back ("YYYY-MM-DD HH:MM:SS.ffffff", UTC); Postgres text refuses NUL, so a stray
    one in a body is dropped rather than the batch."""
    values = []
    for name in _FIELDS:
        value = getattr(record, name)
        if isinstance(value, datetime) and not postgres:
            value = value.astimezone(UTC).isoformat(" ", "microseconds")[:26]
        elif isinstance(value, str):
            value = strip_nul(value)
        values.append(value)
    return tuple(values)


def write_generations(conn: Connection, records: list[GenerationRecord]) -> None:
    """One prepared INSERT run for the batch with plain driver parameters: SQLAlchemy's per-row
    processing would cost more CPU than the rows (bench.inprocess counts every thread)."""
    if not records:
        return
    postgres = conn.dialect.name == "postgresql"
    statement = _INSERT.replace("?", "%s") if postgres else _INSERT
    conn.exec_driver_sql(statement, [_row(record, postgres) for record in records])


def _record(row: RowMapping) -> GenerationRecord:
    return GenerationRecord(**{name: row[name] for name in _FIELDS})


def list_generations(conn: Connection, project_id: str, query: str | None, limit: int,
                     offset: int) -> tuple[list[GenerationRecord], int]:
    conditions = [generations.c.project_id == project_id]
    if query:
        conditions.append(sa.or_(*(column.icontains(query, autoescape=True) for column in (
            generations.c.model, generations.c.request, generations.c.response, generations.c.error))))
    total = conn.execute(sa.select(sa.func.count()).select_from(generations).where(*conditions)).scalar_one()
    page = (sa.select(generations).where(*conditions)
            .order_by(generations.c.created_at.desc(), generations.c.id).limit(limit).offset(offset))
    return [_record(row) for row in conn.execute(page).mappings()], total


def get_generation(conn: Connection, project_id: str, generation_id: str) -> GenerationRecord | None:
    row = conn.execute(sa.select(generations).where(generations.c.project_id == project_id,
                                                    generations.c.id == generation_id)).mappings().first()
    return _record(row) if row else None


def delete_generation(conn: Connection, project_id: str, generation_id: str) -> bool:
    result = conn.execute(generations.delete().where(generations.c.project_id == project_id,
                                                     generations.c.id == generation_id))
    return result.rowcount > 0

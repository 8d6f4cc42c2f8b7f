"""Raw provider exchanges (v3 generations). Blocking calls on one connection."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskgate.store.base import GenerationRecord
from taskgate.store.tables import generations

_FIELDS = tuple(field.name for field in fields(GenerationRecord))


_COLUMNS = ("id", "project_id", "span_id", "trace_id", "provider", "model", "path", "stream", "status_code", "error",
            "request", "response", "request_truncated", "response_truncated", "duration_ms", "created_at")  # as _row
_INSERT = f"INSERT INTO generations ({', '.join(_COLUMNS)}) VALUES ({', '.join(['?'] * len(_COLUMNS))})"


def _text(value: str | None) -> str | None:
    return value.replace("\x00", "") if value is not None and "\x00" in value else value


def _row(record: GenerationRecord, postgres: bool) -> tuple[Any, ...]:
    """The driver's parameters, in _COLUMNS order, written out: a loop over the fields cost more than
    the row's insert. SQLite keeps times as the text SQLAlchemy's DateTime reads back
    ("YYYY-MM-DD HH:MM:SS.ffffff", UTC). Only the free texts (the bodies, an error, the names the
    upstream echoed) can hold a NUL, which Postgres text refuses: it is dropped rather than the batch."""
    created = record.created_at if postgres else record.created_at.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    return (record.id, record.project_id, record.span_id, record.trace_id, record.provider, _text(record.model),
            _text(record.path), record.stream, record.status_code, _text(record.error), _text(record.request),
            _text(record.response), record.request_truncated, record.response_truncated, record.duration_ms, created)


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

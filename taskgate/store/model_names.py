"""Custom models and model aliases: the names a project gives models. Blocking calls on one
connection; `SqlStore` runs them in its pool.

Both kinds share one name space per project (a call names either the same way), so a write checks
the other kind's table too; each table's own unique index settles a race within it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from taskgate.errors import ConflictError
from taskgate.ids import new_id
from taskgate.store.base import CustomModelRecord, ModelAliasRecord, ModelNameKind, ModelNameRecord
from taskgate.store.codec import utcnow
from taskgate.store.tables import custom_models, model_aliases


def _custom_model(row: RowMapping) -> CustomModelRecord:
    return CustomModelRecord(id=row["id"], project_id=row["project_id"], name=row["name"],
                             identifier=row["identifier"], extra=dict(row["extra"]),
                             api_key_sealed=row["api_key_sealed"], created_at=row["created_at"],
                             updated_at=row["updated_at"])


def _model_alias(row: RowMapping) -> ModelAliasRecord:
    return ModelAliasRecord(id=row["id"], project_id=row["project_id"], name=row["name"],
                            fallback_models=list(row["fallback_models"]), description=row["description"],
                            created_at=row["created_at"], updated_at=row["updated_at"])


TABLES: dict[ModelNameKind, tuple[sa.Table, Callable[[RowMapping], ModelNameRecord]]] = {
    "custom_model": (custom_models, _custom_model),
    "model_alias": (model_aliases, _model_alias),
}


def _refuse_taken(conn: Connection, project_id: str, name: str, keep_id: str | None = None) -> None:
    """ConflictError when another custom model or alias of the project is called `name`."""
    for table in (custom_models, model_aliases):
        query = sa.select(table.c.id).where(table.c.project_id == project_id, table.c.name == name)
        if keep_id is not None:
            query = query.where(table.c.id != keep_id)
        if conn.execute(query).first() is not None:
            kind = "custom model" if table is custom_models else "model alias"
            raise ConflictError(f"a {kind} named '{name}' already exists in this project")


def create(conn: Connection, kind: ModelNameKind, project_id: str, values: Mapping[str, Any]) -> ModelNameRecord:
    table, _ = TABLES[kind]
    _refuse_taken(conn, project_id, values["name"])
    now = utcnow()
    new = new_id()
    conn.execute(table.insert().values(id=new, project_id=project_id, created_at=now, updated_at=now, **values))
    record = get(conn, kind, project_id, id=new)
    assert record is not None
    return record


def get(conn: Connection, kind: ModelNameKind, project_id: str, *, id: str | None = None,
        name: str | None = None) -> ModelNameRecord | None:
    table, record_of = TABLES[kind]
    query = sa.select(table).where(table.c.project_id == project_id)
    query = query.where(table.c.id == id) if id is not None else query.where(table.c.name == name)
    row = conn.execute(query).mappings().first()
    return record_of(row) if row else None


def list_page(conn: Connection, kind: ModelNameKind, project_id: str, limit: int,
              offset: int) -> tuple[list[ModelNameRecord], int]:
    table, record_of = TABLES[kind]
    mine = table.c.project_id == project_id
    total = conn.execute(sa.select(sa.func.count()).select_from(table).where(mine)).scalar_one()
    rows = conn.execute(sa.select(table).where(mine).order_by(table.c.name, table.c.id).limit(limit).offset(offset))
    return [record_of(row) for row in rows.mappings()], total


def update(conn: Connection, kind: ModelNameKind, project_id: str, id: str,
           changes: Mapping[str, Any]) -> ModelNameRecord | None:
    if get(conn, kind, project_id, id=id) is None:
        return None
    if "name" in changes:
        _refuse_taken(conn, project_id, changes["name"], keep_id=id)
    table, _ = TABLES[kind]
    conn.execute(table.update().where(table.c.id == id, table.c.project_id == project_id)
                 .values(updated_at=utcnow(), **changes))
    return get(conn, kind, project_id, id=id)


def delete(conn: Connection, kind: ModelNameKind, project_id: str, id: str) -> bool:
    table, _ = TABLES[kind]
    return conn.execute(table.delete().where(table.c.id == id, table.c.project_id == project_id)).rowcount > 0


def everything(conn: Connection, project_id: str) -> tuple[list[CustomModelRecord], list[ModelAliasRecord]]:
    customs = conn.execute(sa.select(custom_models).where(custom_models.c.project_id == project_id)).mappings()
    aliases = conn.execute(sa.select(model_aliases).where(model_aliases.c.project_id == project_id)).mappings()
    return [_custom_model(row) for row in customs], [_model_alias(row) for row in aliases]

"""v2 functions by id, and their datasets' entries. Blocking calls on one connection.

`store/functions.py` works by name, as `/call` and v3 do; the v2 function API names functions by
id and datasets by dataset id, so these are the id-keyed reads and writes on the same rows (one
revision history). A dataset entry is an example row (`store/examples.py`) with `expected` and,
for semantic search, its input's vector and the model that made it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.errors import ConflictError
from taskgate.store.base import ExampleRecord, FunctionDefinition, FunctionRecord, RevisionRecord
from taskgate.store.codec import (
    definition_to_json,
    example_from_row,
    function_from_row,
    revision_from_row,
    search_text,
    utcnow,
)
from taskgate.store.examples import ENTRY_COLUMNS
from taskgate.store.functions import get_function, insert_function, set_few_shot_count, upsert_function
from taskgate.store.tables import examples, functions
from taskgate.store.tables import function_revisions as revisions

SORTS = {"name": functions.c.name, "created_at": functions.c.created_at}
ENTRY_FIELDS = frozenset({"input", "output", "expected", "comment"})

_CURRENT = sa.select(functions, revisions.c.definition).join(
    revisions, revisions.c.id == functions.c.current_revision_id
)


def _live(project_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(functions.c.project_id == project_id, functions.c.deleted_at.is_(None))


def _one(conn: Connection, condition: sa.ColumnElement[bool]) -> FunctionRecord | None:
    row = conn.execute(_CURRENT.where(condition)).mappings().first()
    return function_from_row(row) if row else None


def function_by_id(conn: Connection, project_id: str, function_id: str) -> FunctionRecord | None:
    return _one(conn, sa.and_(_live(project_id), functions.c.id == function_id))


def function_by_dataset(conn: Connection, project_id: str, dataset_id: str) -> FunctionRecord | None:
    return _one(conn, sa.and_(_live(project_id), functions.c.dataset_id == dataset_id))


def list_functions_page(conn: Connection, project_id: str, name: str | None, sort: str, limit: int,
                        offset: int) -> tuple[list[FunctionRecord], int]:
    """A page of live functions whose name contains `name` (any case), ordered by `sort` (a key of
    SORTS, `-` first for descending), and how many match in all."""
    condition = _live(project_id)
    if name:
        condition = sa.and_(condition, functions.c.name.icontains(name, autoescape=True))
    column = SORTS[sort.removeprefix("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    query = _CURRENT.where(condition).order_by(order, functions.c.id).limit(limit).offset(offset)
    total = conn.execute(sa.select(sa.func.count()).select_from(functions).where(condition)).scalar_one()
    return [function_from_row(row) for row in conn.execute(query).mappings()], total


def create_function(conn: Connection, project_id: str, name: str, definition: FunctionDefinition,
                    few_shot_count: int) -> FunctionRecord:
    """A new function; ConflictError when a live one has the name (a racing creator's insert fails on
    the live-name index instead, and the retry lands here)."""
    if get_function(conn, project_id, name) is not None:
        raise ConflictError(f"a function named '{name}' already exists")
    insert_function(conn, project_id, name, definition_to_json(definition))
    set_few_shot_count(conn, project_id, name, few_shot_count)
    created = get_function(conn, project_id, name)
    assert created is not None
    return created


def update_function(conn: Connection, project_id: str, function_id: str, name: str,
                    definition: FunctionDefinition, few_shot_count: int) -> FunctionRecord | None:
    """Rename (ConflictError when the name is taken), then a new revision when the definition
    changed; None when there is no such function."""
    current = function_by_id(conn, project_id, function_id)
    if current is None:
        return None
    if name != current.name:
        if get_function(conn, project_id, name) is not None:
            raise ConflictError(f"a function named '{name}' already exists")
        conn.execute(functions.update().where(functions.c.id == function_id).values(name=name, updated_at=utcnow()))
    upsert_function(conn, project_id, name, definition)
    set_few_shot_count(conn, project_id, name, few_shot_count)
    return function_by_id(conn, project_id, function_id)


def revisions_page(conn: Connection, project_id: str, function_id: str, limit: int,
                   offset: int) -> tuple[list[RevisionRecord], int] | None:
    """The function's revisions, newest first, and their count; None when there is no such function."""
    current = function_by_id(conn, project_id, function_id)
    if current is None:
        return None
    scope = revisions.c.function_id == function_id
    rows = conn.execute(sa.select(revisions).where(scope).order_by(revisions.c.number.desc())
                        .limit(limit).offset(offset)).mappings()
    total = conn.execute(sa.select(sa.func.count()).select_from(revisions).where(scope)).scalar_one()
    return [revision_from_row(row, current.revision_id) for row in rows], total


def revision_by_id(conn: Connection, project_id: str, function_id: str, revision_id: str) -> RevisionRecord | None:
    current = function_by_id(conn, project_id, function_id)
    if current is None:
        return None
    row = conn.execute(sa.select(revisions).where(revisions.c.function_id == function_id,
                                                  revisions.c.id == revision_id)).mappings().first()
    return revision_from_row(row, current.revision_id) if row else None


# ---- entries


def _entries(project_id: str, function_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(examples.c.project_id == project_id, examples.c.function_id == function_id)


def get_entry(conn: Connection, project_id: str, function_id: str, entry_id: str) -> ExampleRecord | None:
    row = conn.execute(sa.select(*ENTRY_COLUMNS).where(_entries(project_id, function_id),
                                                       examples.c.id == entry_id)).mappings().first()
    return example_from_row(row) if row else None


def count_entries(conn: Connection, project_id: str, function_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(examples).where(_entries(project_id, function_id))
    return int(conn.execute(query).scalar_one())


def update_entry(conn: Connection, project_id: str, function_id: str, entry_id: str,
                 changes: dict[str, Any]) -> ExampleRecord | None:
    """Set the given fields (keys of ENTRY_FIELDS); a new input is indexed again and loses its
    vector, which was made from the old one. None when there is no such entry."""
    values = {key: value for key, value in changes.items() if key in ENTRY_FIELDS}
    if "input" in values:
        values.update(search_text=search_text(values["input"]), embedding=None, embedding_model=None)
    if values:
        conn.execute(examples.update().where(_entries(project_id, function_id), examples.c.id == entry_id)
                     .values(**values))
    return get_entry(conn, project_id, function_id, entry_id)


def set_embeddings(conn: Connection, project_id: str, vectors: list[tuple[str, list[float]]], model: str) -> None:
    """Each (entry id, vector) stored with the model that made it, in one statement."""
    if vectors:
        statement = (examples.update()
                     .where(examples.c.project_id == project_id, examples.c.id == sa.bindparam("entry_id"))
                     .values(embedding=sa.bindparam("vector"), embedding_model=model))
        conn.execute(statement, [{"entry_id": entry_id, "vector": vector} for entry_id, vector in vectors])


def embedded_entries(conn: Connection, project_id: str, function_id: str, model: str,
                     limit: int) -> list[tuple[str, list[float]]]:
    """(id, vector) of the newest `limit` entries embedded with `model`."""
    query = (sa.select(examples.c.id, examples.c.embedding)
             .where(_entries(project_id, function_id), examples.c.embedding_model == model)
             .order_by(examples.c.created_at.desc()).limit(limit))
    return [(row.id, row.embedding) for row in conn.execute(query)]


def entries_by_ids(conn: Connection, project_id: str, function_id: str, ids: list[str]) -> list[ExampleRecord]:
    """The entries with these ids, in the order of `ids`."""
    if not ids:
        return []
    rows = conn.execute(sa.select(*ENTRY_COLUMNS).where(_entries(project_id, function_id),
                                                        examples.c.id.in_(ids))).mappings()
    found = {row["id"]: example_from_row(row) for row in rows}
    return [found[entry_id] for entry_id in ids if entry_id in found]

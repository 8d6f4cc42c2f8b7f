"""Functions and their revisions. Blocking calls on one connection; `SqlStore` runs them in its pool.

A function row points at its current revision, which holds the definition. A new revision is added
only when the definition really changed (compared as canonical JSON), so repeating the same call
does not grow the history. Deleting is soft: the row stays (its spans and examples still refer to
it) and the name becomes free for a new function.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.ids import new_id
from taskgate.store.base import FunctionDefinition, FunctionRecord, RevisionRecord
from taskgate.store.codec import (
    definition_from_json,
    definition_to_json,
    function_from_row,
    revision_from_row,
    same_definition,
    schema_hash,
    utcnow,
)
from taskgate.store.tables import function_revisions as revisions
from taskgate.store.tables import functions

_CURRENT = sa.select(functions, revisions.c.definition).join(
    revisions, revisions.c.id == functions.c.current_revision_id
)


def _live(project_id: str, name: str) -> sa.ColumnElement[bool]:
    return sa.and_(functions.c.project_id == project_id, functions.c.name == name,
                   functions.c.deleted_at.is_(None))


def get_function(conn: Connection, project_id: str, name: str) -> FunctionRecord | None:
    row = conn.execute(_CURRENT.where(_live(project_id, name))).mappings().first()
    return function_from_row(row) if row else None


def list_functions(conn: Connection, project_id: str, limit: int, offset: int) -> list[FunctionRecord]:
    query = (_CURRENT.where(functions.c.project_id == project_id, functions.c.deleted_at.is_(None))
             .order_by(functions.c.name).limit(limit).offset(offset))
    return [function_from_row(row) for row in conn.execute(query).mappings()]


def upsert_function(conn: Connection, project_id: str, name: str,
                    definition: FunctionDefinition) -> FunctionRecord:
    """Create, or add a revision when the definition differs. A concurrent writer of the same name
    surfaces as an IntegrityError (live-name index or revision number); the caller retries."""
    current = get_function(conn, project_id, name)
    data = definition_to_json(definition)
    if current is None:
        return insert_function(conn, project_id, name, data)
    if same_definition(definition_to_json(current.definition), data):
        return current
    return _add_revision(conn, current, data)


def insert_function(conn: Connection, project_id: str, name: str, data: dict[str, Any]) -> FunctionRecord:
    """A new function with revision 1 holding `data` (a definition as JSON); a live function of that
    name makes the insert fail on the live-name index (IntegrityError)."""
    now = utcnow()
    function_id, revision_id = new_id(), new_id()
    digest = schema_hash(definition_from_json(data))
    conn.execute(functions.insert().values(
        id=function_id, project_id=project_id, name=name, current_revision_id=revision_id,
        revision_number=1, schema_hash=digest, hit_count=0, few_shot_count=3, dataset_id=new_id(),
        created_at=now, updated_at=now,
    ))
    conn.execute(revisions.insert().values(id=revision_id, function_id=function_id, number=1,
                                           definition=data, schema_hash=digest, created_at=now))
    record = get_function(conn, project_id, name)
    assert record is not None
    return record


def _add_revision(conn: Connection, current: FunctionRecord, data: dict[str, Any]) -> FunctionRecord:
    now = utcnow()
    revision_id = new_id()
    number = current.revision_number + 1
    digest = schema_hash(definition_from_json(data))
    conn.execute(revisions.insert().values(id=revision_id, function_id=current.id, number=number,
                                           definition=data, schema_hash=digest, created_at=now))
    conn.execute(functions.update().where(functions.c.id == current.id).values(
        current_revision_id=revision_id, revision_number=number, schema_hash=digest, updated_at=now))
    record = get_function(conn, current.project_id, current.name)
    assert record is not None
    return record


def delete_function(conn: Connection, project_id: str, name: str) -> bool:
    result = conn.execute(functions.update().where(_live(project_id, name)).values(deleted_at=utcnow()))
    return result.rowcount > 0


def list_revisions(conn: Connection, project_id: str, name: str) -> list[RevisionRecord]:
    current = get_function(conn, project_id, name)
    if current is None:
        return []
    rows = conn.execute(sa.select(revisions).where(revisions.c.function_id == current.id)
                        .order_by(revisions.c.number)).mappings()
    return [revision_from_row(row, current.revision_id) for row in rows]


def get_revision(conn: Connection, project_id: str, name: str, number: int) -> RevisionRecord | None:
    current = get_function(conn, project_id, name)
    if current is None:
        return None
    row = conn.execute(sa.select(revisions).where(revisions.c.function_id == current.id,
                                                  revisions.c.number == number)).mappings().first()
    return revision_from_row(row, current.revision_id) if row else None


def revert_function(conn: Connection, project_id: str, name: str, number: int) -> FunctionRecord | None:
    """A new revision carrying revision `number`'s definition (history is never rewritten). When the
    current definition is already that one, nothing is added, as with any unchanged upsert."""
    target = get_revision(conn, project_id, name, number)
    if target is None:
        return None
    return upsert_function(conn, project_id, name, target.definition)


# Built once, run with bound values: a statement built per flush leaves SQLAlchemy's reference
# cycles (bind parameters, aliases) for the collector on every periodic chore.
_ADD_HITS = (functions.update()
             .where(functions.c.project_id == sa.bindparam("p_project"), functions.c.name == sa.bindparam("p_name"),
                    functions.c.deleted_at.is_(None))
             .values(hit_count=functions.c.hit_count + sa.bindparam("p_count", type_=sa.Integer)))


def record_hits(conn: Connection, project_id: str, name: str, count: int) -> None:
    conn.execute(_ADD_HITS, {"p_project": project_id, "p_name": name, "p_count": count})


def set_few_shot_count(conn: Connection, project_id: str, name: str, count: int) -> None:
    conn.execute(functions.update().where(_live(project_id, name)).values(few_shot_count=count))


def function_in_project(conn: Connection, project_id: str, function_id: str) -> bool:
    """Whether `function_id` is a live function of the project: guards example writes."""
    query = sa.select(functions.c.id).where(functions.c.id == function_id, functions.c.project_id == project_id,
                                            functions.c.deleted_at.is_(None))
    return conn.execute(query).first() is not None

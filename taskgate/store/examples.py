"""Few-shot examples and their ranked search. Blocking calls on one connection.

Each example keeps its input's words in `search_text`. SQLite indexes them in the FTS5 table
`examples_fts` (filled by triggers) and ranks with bm25(); Postgres ranks `to_tsvector` matches with
ts_rank. The query's words are OR-ed, so an example sharing only some of them still ranks, and each
word goes in as a quoted string or a bind parameter, so no user text is ever read as query syntax.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import reduce
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from taskgate.ids import new_id
from taskgate.store.base import ExampleRecord
from taskgate.store.codec import example_from_row, search_text, utcnow
from taskgate.store.tables import examples

MAX_QUERY_TERMS = 64
_WORD = re.compile(r"\w+", re.UNICODE)
_FTS = sa.table("examples_fts", sa.column("example_id"), sa.column("function_id"))
_FTS_TABLE: sa.ColumnClause[str] = sa.literal_column("examples_fts")
_PG_CONFIG: sa.ColumnClause[str] = sa.literal_column("'simple'")  # must match the index expression of migration 0001
# Every column but the vector: kilobytes a row that only semantic ranking reads (taskgate.store.datasets).
ENTRY_COLUMNS = [column for column in examples.c if column.name not in ("embedding", "embedding_model")]


def query_terms(query: str) -> list[str]:
    """The distinct lower-cased words of `query`, at most MAX_QUERY_TERMS of them."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        seen.setdefault(word, None)
        if len(seen) == MAX_QUERY_TERMS:
            break
    return list(seen)


def fts5_query(terms: list[str]) -> str:
    """`"a" OR "b"`: each term a quoted string (quotes doubled), so FTS5 operators in the text are inert."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def add_examples(conn: Connection, project_id: str, function_id: str,
                 records: list[ExampleRecord]) -> list[ExampleRecord]:
    now = utcnow()
    saved = []
    for position, record in enumerate(records):
        # A microsecond apart, so a batch lists in the order it was given.
        created = record.created_at or now + timedelta(microseconds=position)
        saved.append(ExampleRecord(id=record.id or new_id(), function_id=function_id, input=record.input,
                                   output=record.output, tag=record.tag, comment=record.comment,
                                   created_at=created, expected=record.expected))
    if saved:
        conn.execute(examples.insert(), [
            {"id": r.id, "project_id": project_id, "function_id": function_id, "input": r.input,
             "output": r.output, "search_text": search_text(r.input), "tag": r.tag, "comment": r.comment,
             "created_at": r.created_at, "expected": r.expected}
            for r in saved
        ])
    return saved


def _scope(project_id: str, function_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(examples.c.project_id == project_id, examples.c.function_id == function_id)


def list_examples(conn: Connection, project_id: str, function_id: str, limit: int, offset: int,
                  tag: str | None) -> list[ExampleRecord]:
    """Newest first."""
    query = sa.select(*ENTRY_COLUMNS).where(_scope(project_id, function_id))
    if tag is not None:
        query = query.where(examples.c.tag == tag)
    query = query.order_by(examples.c.created_at.desc(), examples.c.id).limit(limit).offset(offset)
    return [example_from_row(row) for row in conn.execute(query).mappings()]


def delete_example(conn: Connection, project_id: str, function_id: str, example_id: str) -> bool:
    result = conn.execute(examples.delete().where(_scope(project_id, function_id),
                                                  examples.c.id == example_id))
    return result.rowcount > 0


def search_examples(conn: Connection, project_id: str, function_id: str, query: str,
                    limit: int) -> list[ExampleRecord]:
    """Best matches first; when nothing shares a word with `query`, the newest examples instead,
    so few-shot prompting still gets demonstrations."""
    if limit <= 0:
        return []
    terms = query_terms(query)
    found: list[ExampleRecord] = []
    if terms:
        ranked = _pg_ranked if conn.dialect.name == "postgresql" else _sqlite_ranked
        found = ranked(conn, project_id, function_id, terms, limit)
    return found or list_examples(conn, project_id, function_id, limit, 0, None)


def _sqlite_ranked(conn: Connection, project_id: str, function_id: str, terms: list[str],
                   limit: int) -> list[ExampleRecord]:
    score = sa.func.bm25(_FTS_TABLE)  # lower is better
    query = (
        sa.select(*ENTRY_COLUMNS)
        .select_from(_FTS.join(examples, examples.c.id == _FTS.c.example_id))
        .where(_FTS_TABLE.op("MATCH")(fts5_query(terms)), _FTS.c.function_id == function_id,
               examples.c.project_id == project_id)
        .order_by(score, examples.c.created_at.desc())
        .limit(limit)
    )
    return [example_from_row(row) for row in conn.execute(query).mappings()]


def _pg_ranked(conn: Connection, project_id: str, function_id: str, terms: list[str],
               limit: int) -> list[ExampleRecord]:
    # tsquery `||` is OR; each term is its own bind parameter through plainto_tsquery.
    parts: list[sa.ColumnElement[Any]] = [sa.func.plainto_tsquery(_PG_CONFIG, term) for term in terms]
    tsquery = reduce(lambda a, b: a.op("||")(b), parts)
    vector = sa.func.to_tsvector(_PG_CONFIG, examples.c.search_text)
    query = (
        sa.select(*ENTRY_COLUMNS)
        .where(_scope(project_id, function_id), vector.op("@@")(tsquery))
        .order_by(sa.func.ts_rank(vector, tsquery).desc(), examples.c.created_at.desc())
        .limit(limit)
    )
    return [example_from_row(row) for row in conn.execute(query).mappings()]

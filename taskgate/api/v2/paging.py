"""Paging as every v2 list answers it: `?offset=&limit=` in, `{meta: {total_count}, data}` out.

`limit` is capped at `MAX_LIMIT` rather than refused above it, so a client asking for "everything"
gets the first page and reads `total_count` to go on; a value that is not a non-negative integer
is a 400 naming the parameter (`query_int`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from taskgate.server.request_io import MAX_SQL_INT, query_int

MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Page:
    offset: int
    limit: int


def page_of(request: Request, default_limit: int = MAX_LIMIT) -> Page:
    """The page a list request asks for; a limit above `MAX_LIMIT` is read as `MAX_LIMIT`."""
    offset = query_int(request, "offset", 0)
    limit = query_int(request, "limit", default_limit, maximum=MAX_SQL_INT)
    return Page(offset=offset, limit=min(limit, MAX_LIMIT))


def paged(data: Sequence[Any], total: int) -> dict[str, Any]:
    """The v2 list body: the page's items and how many there are in all."""
    return {"meta": {"total_count": total}, "data": list(data)}

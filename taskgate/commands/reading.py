"""What the read-only commands ask of a server or of a data directory: one protocol, two answers.

Both give the wire bodies the server's public API answers (traces and spans as v3 shows them,
functions and usage as v2 does), so a command renders them the same way wherever they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class UsageParams:
    """`GET /v2/analytics/usage`'s query: the range, the bucket size, the group keys and extra counters."""

    start: datetime
    end: datetime
    granularity: str
    group_by: tuple[str, ...]
    fields: tuple[str, ...]


class Reader(Protocol):
    @property
    def where(self) -> str:
        """The server's URL or the data directory: named in messages."""
        ...

    async def traces(self, name: str | None, limit: int, offset: int) -> dict[str, Any]:
        """`GET /v3/traces`: `{data: [trace], meta: {total_count, ...}}`, newest first."""
        ...

    async def trace(self, trace_id: str) -> dict[str, Any]:
        """`GET /v3/traces/{id}`: the trace with its spans and events (NotFound when unknown)."""
        ...

    async def trace_of_span(self, span_id: str) -> str | None:
        """The id of the trace holding span `span_id`, None when there is no such span."""
        ...

    async def usage(self, query: UsageParams) -> list[dict[str, Any]]:
        """`GET /v2/analytics/usage`: one item per time bucket and group with usage."""
        ...

    async def functions(self, limit: int, offset: int) -> dict[str, Any]:
        """`GET /v2/functions`: `{meta: {total_count}, data: [function]}` by name."""
        ...

    async def close(self) -> None: ...

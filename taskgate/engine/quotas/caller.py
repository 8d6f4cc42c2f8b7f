"""Who is calling, carried through one request: set by authentication, read where a model is called.

A context variable rather than a parameter: a model is called from every dialect (v2, v3, compat),
through the engine, embeddings, rerank, OCR and knowledge queries, and threading the key through
each of them would touch every signature on the way for one value that only the limit check reads.
Each request runs in a task of its own, so the value never leaks from one request to another; a
task a request starts (a knowledge file's ingestion) carries it on, and is charged to the same key.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field

from taskgate.engine.quotas.rules import Quota


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated key: its project, its rights and the limits that apply to its calls.

    `key_id` is None for a bootstrap key (TASKGATE_API_KEYS), which is never stored. `operator`:
    a bootstrap key, the server's own; `admin`: may use the admin API for its project."""

    key_id: str | None
    project_id: str
    admin: bool
    operator: bool
    key_quota: Quota
    project_quota: Quota
    # Asked on every model call, and a caller is kept for many requests: worked out once, here.
    limited: bool = field(init=False, repr=False, compare=False)  # any limit is set: its calls are checked
    counting: bool = field(init=False, repr=False, compare=False)  # a quota of its own counts tokens or cost
    subjects: tuple[str, ...] = field(init=False, repr=False, compare=False)  # whose usage totals it adds to

    def __post_init__(self) -> None:
        object.__setattr__(self, "limited", self.key_quota.limits_anything or self.project_quota.limits_anything)
        object.__setattr__(self, "counting", self.project_quota.counts
                           or (self.key_id is not None and self.key_quota.counts))  # a bootstrap key has none
        object.__setattr__(self, "subjects", (project_subject(self.project_id),) if self.key_id is None
                           else (project_subject(self.project_id), key_subject(self.key_id)))


def key_subject(key_id: str) -> str:
    return f"key:{key_id}"


def project_subject(project_id: str) -> str:
    return f"project:{project_id}"


@dataclass(slots=True)
class Admission:
    """One request's caller, whether the request was already counted against the requests per
    minute (a request that makes several model calls counts once), and the counter updates still
    on their way (awaited before a non-streamed answer goes out: see `unsettled`)."""

    caller: Caller
    counted: bool = False
    pending: set[asyncio.Task[None]] = field(default_factory=set)


current: contextvars.ContextVar[Admission | None] = contextvars.ContextVar("taskgate_admission", default=None)


def admit_caller(caller: Caller) -> None:
    """Make `caller` the current request's caller (a handler that authenticates twice keeps its
    admission, and with it whether the request was counted)."""
    admission = current.get()
    if admission is None or admission.caller is not caller:
        current.set(Admission(caller))


def unsettled() -> set[asyncio.Task[None]] | None:
    """The current request's counter updates still on their way, for `settle`; None when there are
    none (a single node's counters, or no key): a plain call, so most requests await nothing."""
    admission = current.get()
    return admission.pending if admission is not None and admission.pending else None


async def settle(updates: set[asyncio.Task[None]]) -> None:
    """Wait for the request's `unsettled()` counter updates: another replica must see this call's
    spend before its client can send the next one."""
    await asyncio.gather(*updates, return_exceptions=True)

"""What the key store holds: keys with their limits, projects' limits, and usage totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class StoredLimits:
    """Limits as stored; None is no limit (the engine reads them as `quotas.rules.Quota`)."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str | None = None
    models: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    project_id: str
    name: str | None
    admin: bool
    created_at: datetime
    revoked_at: datetime | None
    limits: StoredLimits


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int = 0
    tokens: int = 0
    cost_nano_usd: int = 0


@dataclass(frozen=True, slots=True)
class UsageDelta:
    """What to add to one subject's totals for one period (`usage_totals`)."""

    subject: str
    period_key: str
    requests: int
    tokens: int
    cost_nano_usd: int

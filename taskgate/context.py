"""What every HTTP dialect gets to work with: wired once in `taskgate.app.create_app`.

Handlers reach functions, examples, spans and providers only through the engine, whose services
keep their own caches and unwritten spans in step; the store and recorder are not handed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskgate.config import Settings
    from taskgate.engine.engine import Engine
    from taskgate.engine.quotas.keys import KeyService
    from taskgate.replicas.wiring import Replication
    from taskgate.server.auth import Authenticator
    from taskgate.telemetry.health_report import HealthReport


@dataclass(slots=True)
class AppContext:
    settings: Settings
    auth: Authenticator
    engine: Engine
    health: HealthReport
    keys: KeyService
    replication: Replication | None = None  # `replication.link`: the process's one Redis connection, if any

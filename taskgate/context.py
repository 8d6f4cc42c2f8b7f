"""What every HTTP dialect gets to work with: wired once in `taskgate.app.create_app`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskgate.config import Settings
    from taskgate.engine.engine import Engine
    from taskgate.providers.registry import ProviderRegistry
    from taskgate.server.auth import Authenticator
    from taskgate.store.base import Store
    from taskgate.telemetry.recorder import SpanRecorder


@dataclass(slots=True)
class AppContext:
    settings: Settings
    store: Store
    auth: Authenticator
    recorder: SpanRecorder
    providers: ProviderRegistry
    engine: Engine

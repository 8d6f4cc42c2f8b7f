"""Guards: personal data, secrets and the caller's own patterns, found in what a call sends to its
provider and in what comes back, then flagged, blocked or redacted (see `call`)."""

from taskgate.engine.guards.call import CallGuard
from taskgate.engine.guards.spec import GuardRule, Guards, guard_rule

__all__ = ["CallGuard", "GuardRule", "Guards", "guard_rule"]
